"""An in-process job queue: the test stand-in (like Dramatiq's ``StubBroker``). Nothing survives the process."""

from __future__ import annotations

import copy
import logging
import threading
import time
from pathlib import Path
from typing import Any

from auricle.errors import JobNotFoundError, JobStateError
from auricle.jobs.base import STATES, Job, JobEvent, JobQueue, new_job_id, remove_file

__all__ = ["MemoryJobQueue"]

logger = logging.getLogger(__name__)


class MemoryJobQueue(JobQueue):
    """Jobs in dicts under one lock; watchers and idle workers wait on one condition.

    Args:
        spool_dir: where job audio is kept.
        ttl_s: seconds a finished job is kept.
    """

    def __init__(self, spool_dir: Path, *, ttl_s: float = 7 * 86400.0) -> None:
        self.spool_dir = spool_dir
        self.ttl_s = ttl_s
        self._jobs: dict[str, Job] = {}
        self._results: dict[str, dict[str, Any]] = {}
        self._events: dict[str, list[tuple[int, JobEvent]]] = {}
        self._seq = 0
        self._cond = threading.Condition()

    # -- helpers ----------------------------------------------------------------------------------------------
    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise JobNotFoundError(f"no job {job_id}", param="id")
        return job

    def _emit(self, job_id: str, event: JobEvent, *, reset: bool = False) -> None:
        self._seq += 1
        if reset:
            self._events[job_id] = []
        self._events.setdefault(job_id, []).append((self._seq, event))
        self._cond.notify_all()

    def _owned(self, job_id: str, worker_id: str) -> Job | None:
        job = self._jobs.get(job_id)
        return job if job is not None and job.status == "running" and job.worker == worker_id else None

    # -- producer side ----------------------------------------------------------------------------------------
    def enqueue(
        self,
        audio: Path,
        *,
        filename: str | None,
        options: dict[str, Any],
        session: str | None = None,
        ephemeral: bool = False,
    ) -> Job:
        """See :meth:`JobQueue.enqueue`."""
        job = Job(id=new_job_id(), filename=filename, options=options, session=session, ephemeral=ephemeral)
        job.audio_path = str(self._spool_audio(audio, job.id, filename))
        with self._cond:
            self._jobs[job.id] = job
            self._emit(job.id, {"type": "state", "job": job.to_public()}, reset=True)
            return copy.deepcopy(job)

    def get(self, job_id: str) -> Job:
        """See :meth:`JobQueue.get`."""
        with self._cond:
            return copy.deepcopy(self._job(job_id))

    def list(
        self, *, status: str | None = None, session: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """See :meth:`JobQueue.list`."""
        with self._cond:
            jobs = [
                j
                for j in reversed(self._jobs.values())
                if not j.ephemeral
                and (status is None or j.status == status)
                and (session is None or j.session == session)
            ]
            return copy.deepcopy(jobs[offset : offset + limit])

    def result(self, job_id: str) -> dict[str, Any]:
        """See :meth:`JobQueue.result`."""
        with self._cond:
            job = self._job(job_id)
            if job.status != "succeeded":
                raise JobStateError(f"job {job_id} is {job.status}, not succeeded")
            return copy.deepcopy(self._results[job_id])

    def cancel(self, job_id: str) -> Job:
        """See :meth:`JobQueue.cancel`."""
        with self._cond:
            job = self._job(job_id)
            if job.finished:
                raise JobStateError(f"job {job_id} already {job.status}")
            if job.status == "queued":
                job.status, job.finished_at = "cancelled", time.time()
                self._emit(job_id, {"type": "cancelled", "job": job.to_public()})
            else:
                job.cancel_requested = True
            return copy.deepcopy(job)

    def retry(self, job_id: str) -> Job:
        """See :meth:`JobQueue.retry`."""
        with self._cond:
            job = self._job(job_id)
            if job.status not in ("failed", "cancelled"):
                raise JobStateError(f"only failed or cancelled jobs can be retried; job {job_id} is {job.status}")
            if not (job.audio_path and Path(job.audio_path).is_file()):
                raise JobStateError(f"the audio of job {job_id} is no longer stored")
            job.status, job.error, job.error_type, job.cancel_requested = "queued", None, None, False
            job.started_at = job.finished_at = None
            job.stage, job.progress = None, 0.0
            self._results.pop(job_id, None)
            self._emit(job_id, {"type": "state", "job": job.to_public()}, reset=True)
            return copy.deepcopy(job)

    def delete(self, job_id: str) -> None:
        """See :meth:`JobQueue.delete`."""
        with self._cond:
            job = self._job(job_id)
            del self._jobs[job_id]
            self._results.pop(job_id, None)
            self._events.pop(job_id, None)
            self._cond.notify_all()
        remove_file(job.audio_path)

    def counts(self) -> dict[str, int]:
        """See :meth:`JobQueue.counts`."""
        with self._cond:
            counts = dict.fromkeys(STATES, 0)
            for job in self._jobs.values():
                counts[job.status] += 1
            return counts

    def exists(self, job_id: str) -> bool:
        """See :meth:`JobQueue.exists`."""
        return job_id in self._jobs

    def read_events(self, job_id: str, cursor: str | None, timeout: float) -> tuple[list[JobEvent], str | None]:
        """See :meth:`JobQueue.read_events`."""
        after = int(cursor or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._job(job_id)
                events = [(seq, e) for seq, e in self._events.get(job_id, []) if seq > after]
                remaining = deadline - time.monotonic()
                if events or remaining <= 0:
                    return [copy.deepcopy(e) for _, e in events], str(events[-1][0] if events else after)
                self._cond.wait(remaining)

    # -- worker side ------------------------------------------------------------------------------------------
    def claim(self, worker_id: str, lease_s: float, *, job_id: str | None = None) -> Job | None:
        """See :meth:`JobQueue.claim`."""
        now = time.time()
        with self._cond:
            candidates = [self._jobs[job_id]] if job_id in self._jobs else [] if job_id else self._jobs.values()
            for job in candidates:
                expired = job.status == "running" and (job.lease_until or 0) < now
                if (job.status == "queued" or expired) and not job.cancel_requested:
                    job.status, job.worker, job.lease_until = "running", worker_id, now + lease_s
                    job.attempts += 1
                    job.started_at, job.stage, job.progress = now, "queued", 0.0
                    self._emit(job.id, {"type": "state", "job": job.to_public()}, reset=True)
                    return copy.deepcopy(job)
            return None

    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """See :meth:`JobQueue.heartbeat`."""
        with self._cond:
            job = self._owned(job_id, worker_id)
            if job is None or job.cancel_requested:
                return False
            job.lease_until = time.time() + lease_s
            return True

    def report(self, job_id: str, worker_id: str, event: JobEvent) -> None:
        """See :meth:`JobQueue.report`."""
        with self._cond:
            job = self._owned(job_id, worker_id)
            if job is not None:
                job.stage = event.get("stage", job.stage)
                job.progress = float(event.get("progress", job.progress))
                self._emit(job_id, event)

    def complete(self, job_id: str, worker_id: str, result: dict[str, Any], stats: dict[str, Any]) -> bool:
        """See :meth:`JobQueue.complete`."""
        with self._cond:
            job = self._owned(job_id, worker_id)
            if job is None:
                return False
            self._results[job_id] = copy.deepcopy(result)
            job.status, job.finished_at, job.stats = "succeeded", time.time(), dict(stats)
            job.stage, job.progress = "done", 100.0
            self._emit(job_id, {"type": "done", "job": job.to_public()})
            return True

    def fail(self, job_id: str, worker_id: str, error: str, error_type: str | None = None) -> bool:
        """See :meth:`JobQueue.fail`."""
        with self._cond:
            job = self._owned(job_id, worker_id)
            if job is None:
                return False
            job.finished_at = time.time()
            if job.cancel_requested:
                job.status = "cancelled"
            else:
                job.status, job.error, job.error_type = "failed", error, error_type
            self._emit(job_id, {"type": job.status, "job": job.to_public()})
            return True

    def wait_for_work(self, timeout: float) -> None:
        """See :meth:`JobQueue.wait_for_work`."""
        with self._cond:
            if not any(j.status == "queued" for j in self._jobs.values()):
                self._cond.wait(timeout)

    # -- housekeeping -----------------------------------------------------------------------------------------
    def sweep(self, *, now: float | None = None) -> int:
        """See :meth:`JobQueue.sweep`."""
        limit = (time.time() if now is None else now) - self.ttl_s
        with self._cond:
            expired = [j.id for j in self._jobs.values() if j.finished and (j.finished_at or 0) < limit]
        for job_id in expired:
            self.delete(job_id)
        return len(expired)
