"""The job contract every backend implements, and the plain data it moves around.

A job is one file to transcribe. Its life::

    queued ──claim──► running ──complete──► succeeded
      │                 │  └────fail──────► failed ───retry──► queued
      └──cancel──► cancelled ◄──cancel (the worker notices the flag)
                        └────────────────────────retry──► queued

Execution is at least once: a job whose worker stops heartbeating its lease is claimed again and re-run, and a
re-run overwrites the result (results are idempotent). Only the worker holding the lease may finish a job, so
exactly one result is stored. Backends: :mod:`~auricle.jobs.memory` (test stand-in),
:mod:`~auricle.jobs.sqlite` (embedded default) and :mod:`~auricle.jobs.redis` (scale-out with Dramatiq).
"""

from __future__ import annotations

import abc
import contextlib
import shutil
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from auricle import errors

__all__ = [
    "ACTIVE",
    "STATES",
    "TERMINAL",
    "Job",
    "JobEvent",
    "JobQueue",
    "JobStatus",
    "error_from",
    "new_job_id",
    "remove_file",
    "spool_name",
]

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE: frozenset[str] = frozenset({"queued", "running"})

JobEvent = dict[str, Any]
"""An event of a job: ``{"type": "state"|"stage"|"language"|"segment"|"done"|"failed"|"cancelled", ...}``."""


def new_job_id() -> str:
    """A fresh job id: 32 hex characters."""
    return uuid.uuid4().hex


def spool_name(job_id: str, filename: str | None) -> str:
    """The spool file name of a job's audio (``job-<id><suffix>``); the orphan sweep relies on this shape."""
    suffix = Path(filename or "").suffix[:12]
    if not suffix.replace(".", "").isalnum():
        suffix = ""
    return f"job-{job_id}{suffix}"


def error_from(error_type: str | None, message: str) -> errors.AuricleError:
    """Rebuild the domain error a worker stored (by class name), so the sync API answers with the same status."""
    cls = getattr(errors, error_type or "", None)
    if not (isinstance(cls, type) and issubclass(cls, errors.AuricleError)):
        cls = errors.AuricleError
    exc = cls.__new__(cls)
    errors.AuricleError.__init__(exc, message)
    return exc


@dataclass
class Job:
    """One job as stored. Times are Unix seconds; ``progress`` is 0–100 of the audio processed."""

    id: str
    status: JobStatus = "queued"
    filename: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    session: str | None = None
    ephemeral: bool = False
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    stage: str | None = None
    progress: float = 0.0
    error: str | None = None
    error_type: str | None = None
    audio_path: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    worker: str | None = None
    lease_until: float | None = None
    cancel_requested: bool = False

    @property
    def finished(self) -> bool:
        """Whether the job reached a terminal state."""
        return self.status in TERMINAL

    def to_public(self) -> dict[str, Any]:
        """What the API shows: no lease or worker internals, no server paths."""
        stats = self.stats or {}
        return {
            "id": self.id,
            "status": self.status,
            "stage": self.stage,
            "progress": round(self.progress, 1),
            "filename": self.filename,
            "model": stats.get("model") or self.options.get("model"),
            "options": self.options,
            "session": self.session,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "processing_seconds": stats.get("processing_seconds"),
            "real_time_factor": stats.get("real_time_factor"),
            "first_segment_seconds": stats.get("first_segment_seconds"),
            "audio_seconds": stats.get("audio_seconds"),
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable (for storage)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Inverse of :meth:`to_dict`, ignoring unknown keys."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


class JobQueue(abc.ABC):
    """Durable job storage and hand-out. Thread-safe; every method may be called from any thread.

    Producers call :meth:`enqueue`, :meth:`get`, :meth:`list`, :meth:`result`, :meth:`cancel`, :meth:`retry`,
    :meth:`delete` and :meth:`read_events`; workers call :meth:`claim`, :meth:`heartbeat`, :meth:`report`,
    :meth:`complete` and :meth:`fail`.
    """

    spool_dir: Path

    # -- producer side ------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def enqueue(
        self,
        audio: Path,
        *,
        filename: str | None,
        options: dict[str, Any],
        session: str | None = None,
        ephemeral: bool = False,
    ) -> Job:
        """Store a new queued job. The queue takes ownership of ``audio`` (moving it into its spool).

        Args:
            audio: the spooled upload.
            filename: the client's file name (shown, never used as a path).
            options: :meth:`TranscribeOptions.to_dict` of what the client asked for.
            session: a free-form client tag to filter listings by.
            ephemeral: a job of a sync request; hidden from listings and deleted once its result is read.
        """

    @abc.abstractmethod
    def get(self, job_id: str) -> Job:
        """The job with this id. Raises :class:`JobNotFoundError` when unknown, deleted or expired."""

    @abc.abstractmethod
    def list(
        self, *, status: str | None = None, session: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """Non-ephemeral jobs, newest first, optionally filtered by status and session tag."""

    @abc.abstractmethod
    def result(self, job_id: str) -> dict[str, Any]:
        """The stored :meth:`Transcript.to_dict` of a succeeded job. Raises :class:`JobStateError` otherwise."""

    @abc.abstractmethod
    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once, a running one by raising the flag its worker polls.

        Raises:
            JobStateError: the job already finished.
        """

    @abc.abstractmethod
    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again (its audio is kept until it expires).

        Raises:
            JobStateError: the job is queued, running or succeeded.
        """

    @abc.abstractmethod
    def delete(self, job_id: str) -> None:
        """Remove a job with its audio, result and events; a running one is also told to stop."""

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of jobs in each state (ephemeral ones included: they use workers too)."""

    def audio_file(self, job_id: str) -> Path:
        """A local file holding the job's audio (for playback). Raises :class:`JobNotFoundError` when gone."""
        job = self.get(job_id)
        if job.audio_path and Path(job.audio_path).is_file():
            return Path(job.audio_path)
        raise errors.JobNotFoundError(f"the audio of job {job_id} is no longer stored")

    @abc.abstractmethod
    def read_events(self, job_id: str, cursor: str | None, timeout: float) -> tuple[list[JobEvent], str | None]:
        """Events after ``cursor`` (None = from the job's first event), waiting up to ``timeout`` seconds for one.

        Returns:
            The events and the cursor to pass next time.
        """

    # -- worker side ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def claim(self, worker_id: str, lease_s: float, *, job_id: str | None = None) -> Job | None:
        """Lease the oldest queued job (or ``job_id``) to ``worker_id`` and mark it running.

        A running job whose lease expired (its worker died) is claimed again. Returns None when there is nothing
        to run, or ``job_id`` is finished, cancelled or leased to a live worker.
        """

    @abc.abstractmethod
    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Extend the lease. False when the worker lost the job or it should stop (cancelled or deleted)."""

    @abc.abstractmethod
    def report(self, job_id: str, worker_id: str, event: JobEvent) -> None:
        """Record a progress event (stage, language or segment): updates stage/progress and tells watchers."""

    @abc.abstractmethod
    def complete(self, job_id: str, worker_id: str, result: dict[str, Any], stats: dict[str, Any]) -> bool:
        """Store the result and mark the job succeeded. False (and nothing stored) if the lease was lost."""

    @abc.abstractmethod
    def fail(self, job_id: str, worker_id: str, error: str, error_type: str | None = None) -> bool:
        """Mark the job failed with a message (or cancelled, when it stopped because cancel was asked)."""

    def fetch_audio(self, job: Job, work_dir: Path) -> tuple[Path, bool]:
        """A local path of the job's audio for a worker, and whether the worker must delete it afterwards."""
        if job.audio_path and Path(job.audio_path).is_file():
            return Path(job.audio_path), False
        raise errors.AudioDecodeError("the job's audio is no longer stored")

    def wait_for_work(self, timeout: float) -> None:
        """Block up to ``timeout`` seconds or until a job may be claimable (local workers poll with this)."""
        time.sleep(timeout)

    # -- housekeeping ---------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def sweep(self, *, now: float | None = None) -> int:
        """Remove jobs (with audio, result, events) finished longer than the TTL ago. Returns how many."""

    @abc.abstractmethod
    def exists(self, job_id: str) -> bool:
        """Whether a job with this id is stored."""

    def sweep_orphans(self, *, min_age_s: float = 6 * 3600.0, now: float | None = None) -> int:
        """Delete spool files no job refers to: ``job-<id>*`` files of unknown jobs, and any other file older
        than ``min_age_s`` (uploads abandoned by a crashed request). Returns how many files were removed."""
        now = time.time() if now is None else now
        removed = 0
        if not self.spool_dir.is_dir():
            return 0
        for path in self.spool_dir.iterdir():
            if not path.is_file():
                continue
            with contextlib.suppress(FileNotFoundError):
                age = now - path.stat().st_mtime
                if path.name.startswith("job-"):
                    orphan = age > 5.0 and not self.exists(path.name[4:36])
                else:
                    orphan = age > min_age_s
                if orphan:
                    path.unlink()
                    removed += 1
        return removed

    def close(self) -> None:
        """Release connections."""
        return None

    # -- helpers for implementations ----------------------------------------------------------------------------
    def _spool_audio(self, audio: Path, job_id: str, filename: str | None) -> Path:
        """Move an upload into the spool under the job's name (a rename when on the same file system)."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        target = self.spool_dir / spool_name(job_id, filename)
        shutil.move(str(audio), str(target))
        return target


def remove_file(path: str | None) -> None:
    """Delete a file if present."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()
