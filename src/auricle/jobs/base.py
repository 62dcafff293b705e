"""The job contract: the :class:`Job` record, every state transition (decided here, once), and :class:`JobQueue`.

A job is one file to transcribe. Its life::

    queued ──claim──► running ──complete──► succeeded
      │                 │  └────fail──────► failed ────retry──► queued (at the back)
      │                 └──cancel: flag──► (worker stops) ──► cancelled ──retry──► queued
      └──cancel──► cancelled                lease ran out with the flag up ──► cancelled

Execution is at least once: a running job whose lease ran out (its worker died) is claimed again and re-run,
unless a cancel was requested, in which case it ends cancelled. Only the worker holding the lease may report,
finish or heartbeat a job, so exactly one result is stored and a second completion is refused.
Any job may be deleted; a running one's worker learns it at its next heartbeat and stops. Recovery ends the lease
of a job whose worker process is known dead, so the next claim decides at once.

A sync request's job (``ephemeral``) also has a *waiter*: the API process whose client waits for it, which renews
the job's ``waiter_until`` while it waits (:meth:`JobQueue.keep_waiting`). Once that runs out (the API process
crashed, or lost the store) the job is an orphan (:func:`orphaned`): a claim ends it cancelled instead of running
it, and stores drop orphans (:meth:`JobQueue.drop_orphaned_sync_jobs`) rather than keep them for the TTL.

A job that ends with a ``webhook_url`` gets a pending webhook event (its ``webhook`` field); delivering it is a
small state machine of its own, in :mod:`auricle.jobs._webhook_rules`. A backend indexes :func:`webhook_due` of
every job it stores.

The transitions are pure functions (``decide_*``) from a job to a :class:`Change`; :class:`JobQueue` implements
the public methods once on top of them, and a backend only provides the storage primitives (``_insert``,
``_apply``, ``_claimable``, ``_remove``): load a job, and store a decided change atomically. Backends:
:mod:`~auricle.jobs.memory` (test stand-in), :mod:`~auricle.jobs.sqlite` (embedded default) and
:mod:`~auricle.jobs.redis` (scale-out; delivery through :mod:`~auricle.jobs.dramatiq`).
"""

from __future__ import annotations

import abc
import builtins
import contextlib
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from auricle.errors import AudioDecodeError, JobNotFoundError, JobStateError
from auricle.jobs import _webhook_rules
from auricle.jobs._names import new_job_id, remove_file, spool_name, sweep_spool, worker_id
from auricle.jobs.codec import ErrorInfo
from auricle.jobs.events import FinishedEvent, JobEvent, ProgressEvent, StateEvent

__all__ = [
    "ACTIVE",
    "STATES",
    "TERMINAL",
    "Change",
    "Claim",
    "Job",
    "JobQueue",
    "JobStatus",
    "decide_cancel",
    "decide_claim",
    "decide_complete",
    "decide_fetched",
    "decide_fail",
    "decide_heartbeat",
    "decide_recover",
    "decide_report",
    "decide_retry",
    "enqueued",
    "new_job_id",
    "not_found",
    "orphaned",
    "remove_file",
    "spool_name",
    "webhook_due",
    "worker_id",
]

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
STATES: tuple[JobStatus, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE: frozenset[str] = frozenset({"queued", "running"})


def not_found(job_id: str) -> JobNotFoundError:
    """The error of every backend for an unknown, deleted or expired job."""
    return JobNotFoundError(f"no job {job_id}", param="id")


@dataclass
class Job:
    """One job as stored. Times are Unix seconds; ``progress`` is 0–100 of the audio processed.

    A failed job's error is ``(error_type, error, error_param)``: the :class:`~auricle.jobs.codec.ErrorInfo`
    code, message and parameter.
    """

    id: str
    status: JobStatus = "queued"
    filename: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    session: str | None = None
    ephemeral: bool = False
    waiter: str | None = None
    waiter_until: float | None = None
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    stage: str | None = None
    progress: float = 0.0
    error: str | None = None
    error_type: str | None = None
    error_param: str | None = None
    audio_path: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    attempts: int = 0
    worker: str | None = None
    lease_until: float | None = None
    cancel_requested: bool = False
    source_url: str | None = None
    webhook_url: str | None = None
    webhook: dict[str, Any] | None = None
    retry_of: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the job reached a terminal state."""
        return self.status in TERMINAL

    @property
    def error_info(self) -> ErrorInfo | None:
        """The stored error of a failed job."""
        if self.status != "failed":
            return None
        return ErrorInfo(self.error_type, self.error or "job failed", self.error_param)

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
            "source_url": self.source_url,
            "retry_of": self.retry_of,
            "webhook": _webhook_rules.public(self.webhook),
        }

    def to_dict(self) -> dict[str, Any]:
        """Everything, JSON-serialisable (for storage)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        """Inverse of :meth:`to_dict`, ignoring unknown keys."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


ClaimReason = Literal["claimed", "empty", "missing", "cancelled", "leased", "finished", "orphaned"]


@dataclass(frozen=True)
class Claim:
    """The outcome of :meth:`JobQueue.claim`.

    ``reason`` is ``claimed`` (``job`` is set), ``empty`` (nothing to run), ``missing`` (no such job),
    ``cancelled`` (cancel was requested; a dead worker's job ends cancelled here), ``leased`` (a live worker
    holds it until ``lease_until``), ``finished`` or ``orphaned`` (a sync request's job no client waits for any
    more: it ends cancelled here).
    """

    job: Job | None
    reason: ClaimReason
    lease_until: float | None = None


@dataclass(frozen=True)
class Change:
    """A decided change of one job, for a backend to store atomically with its side effects.

    Attributes:
        job: the job's new state.
        events: to append to the job's log (after clearing it, with ``reset_events``: a new attempt).
        result: a transcript to store; ``drop_result`` deletes a stored one.
        requeue: put the job at the back of the queue.
    """

    job: Job
    events: tuple[JobEvent, ...] = ()
    reset_events: bool = False
    result: dict[str, Any] | None = None
    drop_result: bool = False
    requeue: bool = False


# -- the transitions: pure functions of the stored job ------------------------------------------------------------


def enqueued(job: Job) -> Change:
    """A new job: queued at the back, its log started."""
    return Change(job, (StateEvent(job.to_public()),), reset_events=True, requeue=True)


def _finished(job: Job, status: Literal["failed", "cancelled"], now: float) -> Change:
    """``job`` ends ``status`` (a cancelled job keeps no error)."""
    done = replace(job, status=status, finished_at=now)
    if status == "cancelled":
        done = replace(done, error=None, error_type=None, error_param=None)
    done = _with_webhook(done, now)
    return Change(done, (FinishedEvent(status, done.to_public()),))


def _with_webhook(job: Job, now: float) -> Job:
    """A job that just ended gets a new pending webhook event (when it has a destination)."""
    if not job.webhook_url or job.ephemeral:
        return job
    return replace(job, webhook=_webhook_rules.new_event(job.status, job.webhook_url, now))


def webhook_due(job: Job) -> float | None:
    """When the job's webhook event should next be tried (None: nothing pending). Backends index this."""
    return _webhook_rules.due(job.webhook)


def _with_hook(job: Job, hook: dict[str, Any] | None) -> Change | None:
    """The job with its webhook event changed to ``hook`` (None: the rules decided no change)."""
    return None if hook is None else Change(replace(job, webhook=hook))


def _lease_expired(job: Job, now: float) -> bool:
    return job.status == "running" and (job.lease_until or 0.0) < now


def decide_cancel(job: Job, now: float) -> Change | None:
    """Cancel: a queued job (or a running one whose worker died) ends cancelled at once; a running one gets the
    flag its worker sees at its next heartbeat. None when the flag is already up.

    Raises:
        JobStateError: the job already finished.
    """
    if job.finished:
        raise JobStateError(f"job {job.id} is {job.status}; it cannot be cancelled")
    flagged = replace(job, cancel_requested=True)
    if job.status == "queued" or _lease_expired(job, now):
        return _finished(flagged, "cancelled", now)
    return None if job.cancel_requested else Change(flagged)


def decide_retry(job: Job, now: float, *, audio_stored: bool) -> Change:
    """Retry: a failed or cancelled job is queued again at the back, with its lease, error and result cleared.

    Raises:
        JobStateError: the job is not failed or cancelled, or its audio is gone.
    """
    if job.status not in ("failed", "cancelled"):
        raise JobStateError(f"job {job.id} is {job.status}; it cannot be retried")
    if not audio_stored:
        raise JobStateError(f"the audio of job {job.id} is no longer stored")
    queued = replace(
        job,
        status="queued",
        error=None,
        error_type=None,
        error_param=None,
        cancel_requested=False,
        started_at=None,
        finished_at=None,
        lease_until=None,
        worker=None,
        stage=None,
        progress=0.0,
    )
    return Change(queued, (StateEvent(queued.to_public()),), reset_events=True, drop_result=True, requeue=True)


def decide_fetched(job: Job, worker: str, audio_path: str) -> Change | None:
    """The holder fetched the job's audio from its source URL; it is kept like an upload. None if not the holder."""
    return Change(replace(job, audio_path=audio_path)) if _holds(job, worker) else None


def orphaned(job: Job, now: float) -> bool:
    """Whether ``job`` is an unfinished sync request's job whose waiter stopped renewing it before ``now``: no
    client waits for its result any more."""
    return job.ephemeral and not job.finished and job.waiter_until is not None and job.waiter_until < now


def decide_waiting(job: Job, until: float) -> Change | None:
    """The waiter of a sync request's job renews it until ``until``. None when the job finished (or is no sync
    job): its result is read at once."""
    if not job.ephemeral or job.finished:
        return None
    return Change(replace(job, waiter_until=until))


def decide_claim(job: Job, worker: str, now: float, lease_s: float) -> tuple[Change | None, Claim]:
    """Claim: lease a queued job, or a running one whose lease ran out, to ``worker`` (a new attempt, with a new
    log). A dead worker's job with a cancel requested ends cancelled instead of running again, and so does a sync
    request's job whose waiter is gone (:func:`orphaned`)."""
    if job.finished:
        return None, Claim(None, "finished")
    if job.status == "running" and not _lease_expired(job, now):
        return None, Claim(None, "leased", job.lease_until)
    if job.cancel_requested:
        return _finished(job, "cancelled", now), Claim(None, "cancelled")
    if orphaned(job, now):
        return _finished(job, "cancelled", now), Claim(None, "orphaned")
    running = replace(
        job,
        status="running",
        worker=worker,
        lease_until=now + lease_s,
        attempts=job.attempts + 1,
        started_at=now,
        stage="queued",
        progress=0.0,
    )
    return Change(running, (StateEvent(running.to_public()),), reset_events=True), Claim(running, "claimed")


def decide_recover(job: Job, worker: str) -> Change | None:
    """Recovery: the lease of a job whose worker is known dead (its process is gone) ends now, so the next claim
    takes it at once (or cancels it, when a cancel was requested). None unless ``worker`` still holds it."""
    return Change(replace(job, lease_until=0.0)) if _holds(job, worker) else None


def decide_release(job: Job, worker: str) -> Change | None:
    """Release: a worker that stops (shutdown) hands its running job back; it is queued again at the back, its
    attempt not counted, so another worker (or the next start) runs it at once. None unless the holder."""
    if not _holds(job, worker):
        return None
    if job.cancel_requested:
        return _finished(job, "cancelled", time.time())
    queued = replace(
        job,
        status="queued",
        attempts=max(0, job.attempts - 1),
        started_at=None,
        lease_until=None,
        worker=None,
        stage=None,
        progress=0.0,
    )
    return Change(queued, (StateEvent(queued.to_public()),), reset_events=True, requeue=True)


def _holds(job: Job, worker: str) -> bool:
    return job.status == "running" and job.worker == worker


def decide_heartbeat(job: Job, worker: str, now: float, lease_s: float) -> Change | None:
    """Heartbeat: the holder's lease is extended (also while it stops after a cancel). None if not the holder."""
    return Change(replace(job, lease_until=now + lease_s)) if _holds(job, worker) else None


def decide_report(job: Job, worker: str, event: ProgressEvent) -> Change | None:
    """Progress: the holder's event updates stage and progress and goes to the log. None if not the holder."""
    if not _holds(job, worker):
        return None
    return Change(replace(job, stage=event.stage, progress=event.progress), (event,))


def decide_complete(job: Job, worker: str, now: float, result: dict[str, Any], stats: dict[str, Any]) -> Change | None:
    """Complete: the holder stores the result and the job succeeded. None if not the holder (so a second
    completion, or one from a worker that lost its lease, stores nothing)."""
    if not _holds(job, worker):
        return None
    done = replace(job, status="succeeded", finished_at=now, stats=dict(stats), stage="done", progress=100.0)
    done = _with_webhook(done, now)
    return Change(done, (FinishedEvent("done", done.to_public()),), result=result)


def decide_fail(job: Job, worker: str, now: float, error: ErrorInfo) -> Change | None:
    """Fail: the holder's job failed with ``error``, or ended cancelled when a cancel was requested. None if not
    the holder."""
    if not _holds(job, worker):
        return None
    if job.cancel_requested:
        return _finished(job, "cancelled", now)
    failed = replace(job, error=error.message, error_type=error.code, error_param=error.param)
    return _finished(failed, "failed", now)


# -- the contract -------------------------------------------------------------------------------------------------


class JobQueue(abc.ABC):
    """Durable job storage and hand-out. Thread-safe; every method may be called from any thread.

    Producers call :meth:`enqueue`, :meth:`get`, :meth:`list`, :meth:`result`, :meth:`cancel`, :meth:`retry`,
    :meth:`delete` and :meth:`read_events`; workers call :meth:`claim`, :meth:`heartbeat`, :meth:`report`,
    :meth:`complete` and :meth:`fail`. The state-changing methods are implemented here once; a backend
    implements the storage primitives at the end of this class and the read methods, and calls
    ``super().__init__()`` (the in-process worker registry).
    """

    spool_dir: Path

    def __init__(self) -> None:
        self._workers: dict[str, tuple[int, float]] = {}
        self._workers_lock = threading.Lock()
        self.worker_ttl_s = 60.0
        self.waiter_lease_s = 60.0
        """How long a sync request's job stays waited for without :meth:`keep_waiting` (renew well within)."""

    # -- producer side ------------------------------------------------------------------------------------------
    def enqueue(
        self,
        audio: Path | None,
        *,
        filename: str | None,
        options: dict[str, Any],
        session: str | None = None,
        ephemeral: bool = False,
        waiter: str | None = None,
        source_url: str | None = None,
        webhook_url: str | None = None,
        retry_of: str | None = None,
    ) -> Job:
        """Store a new queued job. The queue takes ownership of ``audio`` (moving it into its spool).

        Args:
            audio: the spooled upload (None for a job whose worker fetches ``source_url``).
            filename: the client's file name (shown, never used as a path).
            options: :meth:`TranscribeOptions.to_dict` of what the client asked for.
            session: a free-form client tag to filter listings by.
            ephemeral: a job of a sync request; hidden from listings and deleted once its result is read.
            waiter: the process whose client waits for this sync job (a :func:`worker_id`); it renews the wait
                with :meth:`keep_waiting` every so often, or the job becomes an orphan.
            source_url: where the worker fetches the audio from when ``audio`` is None.
            webhook_url: told with a signed event when the job ends.
            retry_of: the job this one re-runs with other options.
        """
        if audio is None and not source_url:
            raise ValueError("a job needs audio or a source URL")
        job = Job(
            id=new_job_id(),
            filename=filename,
            options=options,
            session=session,
            ephemeral=ephemeral,
            waiter=waiter,
            waiter_until=time.time() + self.waiter_lease_s if ephemeral and waiter else None,
            source_url=source_url,
            webhook_url=webhook_url,
            retry_of=retry_of,
        )
        if audio is not None:
            job.audio_path = str(self._spool_audio(audio, job.id, filename).resolve())
        try:
            self._insert(enqueued(job))
        except BaseException:
            remove_file(job.audio_path)  # no job refers to it: the store never took it (Redis went down)
            raise
        try:
            self._queued(job.id)
        except BaseException:
            # Not handed to the workers, so the caller refuses it: take it back (at best: the store may be down
            # too), lest it be run after a refusal or wait forever for a message that never came.
            with contextlib.suppress(Exception):
                self._remove(job.id)
            remove_file(job.audio_path)
            raise
        return job

    @abc.abstractmethod
    def get(self, job_id: str) -> Job:
        """The job with this id. Raises :class:`JobNotFoundError` when unknown, deleted or expired."""

    @abc.abstractmethod
    def list(
        self, *, status: str | None = None, session: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """Non-ephemeral jobs, newest (created) first, optionally filtered by status and session tag."""

    @abc.abstractmethod
    def result(self, job_id: str) -> dict[str, Any]:
        """The stored :meth:`Transcript.to_dict` of a succeeded job. Raises :class:`JobStateError` otherwise."""

    def cancel(self, job_id: str) -> Job:
        """Cancel a job: a queued one at once, a running one by raising the flag its worker polls.

        Raises:
            JobNotFoundError: no such job.
            JobStateError: the job already finished.
        """
        now = time.time()
        return self._apply(job_id, lambda job: decide_cancel(job, now))[0]

    def retry(self, job_id: str) -> Job:
        """Queue a failed or cancelled job again, at the back (its audio is kept until it expires).

        Raises:
            JobNotFoundError: no such job.
            JobStateError: the job is queued, running or succeeded, or its audio is gone.
        """
        now = time.time()
        job, _ = self._apply(
            job_id, lambda job: decide_retry(job, now, audio_stored=self._audio_stored(job) or bool(job.source_url))
        )
        self._queued(job_id)
        return job

    def rerun(self, job_id: str, options: dict[str, Any]) -> Job:
        """A new job on a finished job's audio with other ``options``, linked to it by ``retry_of`` (same session,
        source URL and webhook).

        Raises:
            JobNotFoundError: no such job.
            JobStateError: the job has not finished, or its audio is gone (and it has no source URL).
        """
        job = self.get(job_id)
        if not job.finished:
            raise JobStateError(f"job {job_id} is {job.status}; wait until it finishes to run it again")
        copy: Path | None = None
        if self._audio_stored(job):
            source = self.audio_file(job_id)
            self.spool_dir.mkdir(parents=True, exist_ok=True)
            copy = self.spool_dir / f"rerun-{new_job_id()}.part"
            shutil.copyfile(source, copy)
        elif not job.source_url:
            raise JobStateError(f"the audio of job {job_id} is no longer stored")
        return self.enqueue(
            copy,
            filename=job.filename,
            options=options,
            session=job.session,
            source_url=job.source_url,
            webhook_url=job.webhook_url,
            retry_of=job.id,
        )

    def delete_session(self, session: str) -> int:
        """Delete every (non-ephemeral) job tagged ``session``, as :meth:`delete` does. Returns how many."""
        removed = 0
        while True:
            batch = self.list(session=session, limit=200)
            for job in batch:
                with contextlib.suppress(JobNotFoundError):
                    self.delete(job.id)
                    removed += 1
            if len(batch) < 200:
                return removed

    def delete(self, job_id: str) -> None:
        """Remove a job with its audio, result and events, whatever its state; a running one's worker learns at
        its next heartbeat that it should stop.

        Raises:
            JobNotFoundError: no such job.
        """
        job = self._remove(job_id)
        remove_file(job.audio_path)

    @abc.abstractmethod
    def counts(self) -> dict[str, int]:
        """Number of jobs in each state (ephemeral ones included: they use workers too)."""

    def audio_file(self, job_id: str) -> Path:
        """A local file holding the job's audio (for playback). Raises :class:`JobNotFoundError` when gone."""
        job = self.get(job_id)
        if job.audio_path and Path(job.audio_path).is_file():
            return Path(job.audio_path)
        raise JobNotFoundError(f"the audio of job {job_id} is no longer stored")

    @abc.abstractmethod
    def read_events(
        self, job_id: str, cursor: str | None, timeout: float
    ) -> tuple[builtins.list[JobEvent], str | None]:
        """Events after ``cursor`` (None = from the first event of the current attempt), waiting up to
        ``timeout`` seconds for one.

        Returns:
            The events and the cursor to pass next time.
        """

    # -- worker side --------------------------------------------------------------------------------------------
    def claim(self, worker_id: str, lease_s: float, *, job_id: str | None = None) -> Claim:
        """Lease the oldest claimable job (or ``job_id``) to ``worker_id`` and mark it running.

        A running job whose lease ran out (its worker died) is claimable again, unless a cancel was requested:
        then it ends cancelled here. The outcome says why nothing was claimed.
        """
        now = time.time()
        if job_id is not None:
            return self._claim_one(job_id, worker_id, now, lease_s)
        # Candidates are read outside the change; each claim re-decides on the stored job, so a candidate taken
        # by another worker meanwhile is skipped. Bounded, in case a store keeps listing an unclaimable job.
        for _ in range(8):
            candidates = self._claimable(now, limit=8)
            if not candidates:
                break
            for candidate in candidates:
                claim = self._claim_one(candidate, worker_id, now, lease_s)
                if claim.job is not None:
                    return claim
        return Claim(None, "empty")

    def _claim_one(self, job_id: str, worker: str, now: float, lease_s: float) -> Claim:
        outcome: builtins.list[Claim] = []
        previous: builtins.list[Job] = []

        def decide(job: Job) -> Change | None:
            previous[:] = [job]
            change, claim = decide_claim(job, worker, now, lease_s)
            outcome[:] = [claim]
            return change

        try:
            self._apply(job_id, decide)
        except JobNotFoundError:
            return Claim(None, "missing")
        if outcome[0].job is not None and previous[0].status == "running":
            logger.warning("job %s: the lease of %s ran out; running it again", job_id, previous[0].worker)
        elif outcome[0].reason == "cancelled":
            logger.info("job %s: its worker died after a cancel was requested; it is cancelled", job_id)
        return outcome[0]

    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """Extend the lease. False when the worker lost the job or it should stop (cancelled or deleted)."""
        now = time.time()
        job, changed = self._apply_if_present(job_id, lambda job: decide_heartbeat(job, worker_id, now, lease_s))
        return changed and job is not None and not job.cancel_requested

    def report(self, job_id: str, worker_id: str, event: ProgressEvent) -> None:
        """Record a progress event: updates stage and progress and tells watchers (ignored unless the holder)."""
        self._apply_if_present(job_id, lambda job: decide_report(job, worker_id, event))

    def complete(self, job_id: str, worker_id: str, result: dict[str, Any], stats: dict[str, Any]) -> bool:
        """Store the result and mark the job succeeded. False (and nothing stored) unless the worker holds the
        job: its lease was lost, the job was deleted or already finished."""
        now = time.time()
        return self._apply_if_present(job_id, lambda job: decide_complete(job, worker_id, now, result, stats))[1]

    def fail(self, job_id: str, worker_id: str, error: ErrorInfo) -> bool:
        """Mark the job failed with ``error`` (or cancelled, when it stopped because cancel was asked). False
        unless the worker holds the job."""
        now = time.time()
        return self._apply_if_present(job_id, lambda job: decide_fail(job, worker_id, now, error))[1]

    def release(self, job_id: str, worker_id: str) -> bool:
        """Hand a running job back to the queue (its worker is shutting down), so it runs again at once instead
        of when its lease runs out. False unless the worker holds the job."""
        job, changed = self._apply_if_present(job_id, lambda job: decide_release(job, worker_id))
        if changed and job is not None and job.status == "queued":
            self._queued(job_id)
        return changed

    def _apply_if_present(self, job_id: str, decide: Callable[[Job], Change | None]) -> tuple[Job | None, bool]:
        try:
            return self._apply(job_id, decide)
        except JobNotFoundError:
            return None, False

    def fetch_audio(self, job: Job, work_dir: Path) -> tuple[Path, bool]:
        """A local path of the job's audio for a worker, and whether the worker must delete it afterwards."""
        if job.audio_path and Path(job.audio_path).is_file():
            return Path(job.audio_path), False
        raise AudioDecodeError("the job's audio is no longer stored")

    def wait_for_work(self, timeout: float) -> None:
        """Block up to ``timeout`` seconds or until a job may be claimable (local workers poll with this)."""
        time.sleep(timeout)

    def keep_waiting(self, job_id: str) -> None:
        """The waiter of a sync request's job still waits: renew it for ``waiter_lease_s`` (see :func:`orphaned`)."""
        until = time.time() + self.waiter_lease_s
        self._apply_if_present(job_id, lambda job: decide_waiting(job, until))

    def drop_orphaned_sync_jobs(self) -> int:
        """Delete the sync requests' jobs no client waits for (called by an API process as it starts, before it
        takes requests): those of a previous run of this process, whose clients are gone with it, and orphans
        (:func:`orphaned`), so they neither run again nor stay until the TTL. Returns how many; the default drops
        none."""
        return 0

    def recover(self) -> int:
        """Make the running jobs of this host's dead processes claimable now (instead of when their leases run
        out). Returns how many; backends that cannot tell a dead process (or need not) return 0."""
        return 0

    def store_fetched(self, job_id: str, worker: str, path: Path) -> Job | None:
        """Keep audio a worker fetched from the job's source URL as if it had been uploaded (playback, retry): the
        file moves into the spool. None (and the file is deleted) unless ``worker`` holds the job."""
        job = self.get(job_id)
        target = self._spool_audio(path, job_id, job.filename).resolve()
        stored, changed = self._apply_if_present(job_id, lambda job: decide_fetched(job, worker, str(target)))
        if not changed:
            remove_file(str(target))
            return None
        return stored

    # -- webhook deliveries ------------------------------------------------------------------------------------
    def webhooks_due(self, now: float, *, limit: int = 50) -> builtins.list[str]:
        """Ids of jobs whose webhook event is due by ``now`` (a hint: :meth:`claim_webhook` decides)."""
        return self._webhooks_due(now, limit=limit)

    def claim_webhook(self, job_id: str, worker: str, lease_s: float) -> Job | None:
        """Take the next delivery attempt of the job's webhook event (see :func:`_webhook_rules.claimed`); the job
        with the attempt counted, or None when it is not due or another deliverer holds it."""
        now = time.time()
        job, changed = self._apply_if_present(
            job_id, lambda job: _with_hook(job, _webhook_rules.claimed(job.webhook, worker, now, lease_s))
        )
        return job if changed else None

    def finish_webhook(
        self,
        job_id: str,
        worker: str,
        attempt: int,
        *,
        status: int | None,
        error: str | None,
        max_attempts: int,
        backoff_s: float,
        final: bool = False,
    ) -> Job | None:
        """Store the outcome of a delivery attempt (see :func:`_webhook_rules.outcome`); the job, or None when the
        attempt was not ``worker``'s (any more)."""
        now = time.time()
        job, changed = self._apply_if_present(
            job_id,
            lambda job: _with_hook(
                job,
                _webhook_rules.outcome(
                    job.webhook,
                    worker,
                    attempt,
                    now,
                    status=status,
                    error=error,
                    max_attempts=max_attempts,
                    backoff_s=backoff_s,
                    final=final,
                ),
            ),
        )
        return job if changed else None

    # -- worker registry ----------------------------------------------------------------------------------------
    def register_worker(self, worker: str, threads: int) -> None:
        """Announce (again) a live worker process taking jobs with ``threads`` threads."""
        with self._workers_lock:
            self._workers[worker] = (threads, time.time())

    def unregister_worker(self, worker: str) -> None:
        """Forget a stopping worker process."""
        with self._workers_lock:
            self._workers.pop(worker, None)

    def worker_count(self) -> int:
        """Worker threads of the processes announced within ``worker_ttl_s``."""
        limit = time.time() - self.worker_ttl_s
        with self._workers_lock:
            return sum(threads for threads, seen in self._workers.values() if seen >= limit)

    # -- housekeeping -------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def sweep(self, *, now: float | None = None) -> int:
        """Remove jobs (with audio, result, events) finished longer than the TTL ago. Returns how many."""

    @abc.abstractmethod
    def exists(self, job_id: str) -> bool:
        """Whether a job with this id is stored."""

    def sweep_orphans(self, *, min_age_s: float = 6 * 3600.0, now: float | None = None) -> int:
        """Delete spool files no job refers to: ``job-<id>*`` files of unknown jobs, and any other file older
        than ``min_age_s`` (uploads abandoned by a crashed request). Returns how many files were removed."""
        return sweep_spool(self.spool_dir, self.exists, min_age_s=min_age_s, now=time.time() if now is None else now)

    def close(self) -> None:
        """Release connections."""
        return None

    # -- storage primitives, per backend ----------------------------------------------------------------------
    @abc.abstractmethod
    def _insert(self, change: Change) -> None:
        """Store a new job (``change`` from :func:`enqueued`)."""

    @abc.abstractmethod
    def _apply(self, job_id: str, decide: Callable[[Job], Change | None]) -> tuple[Job, bool]:
        """Atomically: load the job, call ``decide`` on it and store the change it returns (if any), with its
        events, result and queue position. ``decide`` may be called more than once (optimistic stores retry on
        a conflict) and may raise, which stores nothing.

        Returns:
            The job as stored afterwards, and whether a change was stored.

        Raises:
            JobNotFoundError: no such job (:func:`not_found`).
        """

    @abc.abstractmethod
    def _claimable(self, now: float, *, limit: int) -> builtins.list[str]:
        """Up to ``limit`` ids of jobs a claim may take: running ones whose lease ran out before ``now`` (they
        waited longest), then queued ones in queue order."""

    @abc.abstractmethod
    def _remove(self, job_id: str) -> Job:
        """Delete a job's record, result and events (not its audio file); returns the job.

        Raises:
            JobNotFoundError: no such job.
        """

    @abc.abstractmethod
    def _webhooks_due(self, now: float, *, limit: int) -> builtins.list[str]:
        """Up to ``limit`` ids of jobs whose :func:`webhook_due` is at or before ``now``, earliest first (a backend
        indexes :func:`webhook_due` of every job it stores)."""

    def _audio_stored(self, job: Job) -> bool:
        """Whether the job's audio is still stored (so it can be retried)."""
        return bool(job.audio_path and Path(job.audio_path).is_file())

    def _queued(self, job_id: str) -> None:
        """Called after a job was enqueued or retried (a backend may hand it to its transport)."""
        return None

    def _spool_audio(self, audio: Path, job_id: str, filename: str | None) -> Path:
        """Move an upload into the spool under the job's name (a rename when on the same file system)."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        target = self.spool_dir / spool_name(job_id, filename)
        shutil.move(str(audio), str(target))
        return target
