"""An in-process job queue: the test stand-in (like Dramatiq's ``StubBroker``). Nothing survives the process."""

from __future__ import annotations

import builtins
import copy
import itertools
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auricle.errors import JobStateError
from auricle.jobs.base import STATES, Change, Job, JobQueue, not_found, webhook_due
from auricle.jobs.events import JobEvent

__all__ = ["MemoryJobQueue"]

logger = logging.getLogger(__name__)


class MemoryJobQueue(JobQueue):
    """Jobs in dicts under one lock; watchers and idle workers wait on one condition.

    Args:
        spool_dir: where job audio is kept.
        ttl_s: seconds a finished job is kept.
    """

    def __init__(self, spool_dir: Path, *, ttl_s: float = 7 * 86400.0) -> None:
        super().__init__()
        self.spool_dir = spool_dir
        self.ttl_s = ttl_s
        self._jobs: dict[str, Job] = {}  # in creation order
        self._queue_seq: dict[str, int] = {}  # position in the queue (a retried job goes to the back)
        self._results: dict[str, dict[str, Any]] = {}
        self._events: dict[str, list[tuple[int, JobEvent]]] = {}
        self._seq = itertools.count(1)
        self._cond = threading.Condition()

    # -- storage primitives -----------------------------------------------------------------------------------
    def _store(self, change: Change) -> None:
        job_id = change.job.id
        self._jobs[job_id] = copy.deepcopy(change.job)
        if change.requeue:
            self._queue_seq[job_id] = next(self._seq)
        if change.result is not None:
            self._results[job_id] = copy.deepcopy(change.result)
        if change.drop_result:
            self._results.pop(job_id, None)
        if change.reset_events:
            self._events[job_id] = []
        log = self._events.setdefault(job_id, [])
        log.extend((next(self._seq), event) for event in change.events)
        self._cond.notify_all()

    def _insert(self, change: Change) -> None:
        with self._cond:
            self._store(change)

    def _apply(self, job_id: str, decide: Callable[[Job], Change | None]) -> tuple[Job, bool]:
        with self._cond:
            job = self._jobs.get(job_id)
            if job is None:
                raise not_found(job_id)
            change = decide(copy.deepcopy(job))
            if change is None:
                return copy.deepcopy(job), False
            self._store(change)
            return copy.deepcopy(change.job), True

    def _claimable(self, now: float, *, limit: int) -> list[str]:
        with self._cond:
            queued = sorted(
                (j for j in self._jobs.values() if j.status == "queued"), key=lambda j: self._queue_seq[j.id]
            )
            expired = [j for j in self._jobs.values() if j.status == "running" and (j.lease_until or 0.0) < now]
            return [j.id for j in [*expired, *queued][:limit]]

    def _webhooks_due(self, now: float, *, limit: int) -> list[str]:
        with self._cond:
            due = [(at, j.id) for j in self._jobs.values() if (at := webhook_due(j)) is not None and at <= now]
        return [job_id for _, job_id in sorted(due)[:limit]]

    def _remove(self, job_id: str) -> Job:
        with self._cond:
            job = self._jobs.pop(job_id, None)
            if job is None:
                raise not_found(job_id)
            self._queue_seq.pop(job_id, None)
            self._results.pop(job_id, None)
            self._events.pop(job_id, None)
            self._cond.notify_all()
            return job

    # -- reading ----------------------------------------------------------------------------------------------
    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise not_found(job_id)
        return job

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
            if job.status != "succeeded" or job_id not in self._results:
                raise JobStateError(f"job {job_id} is {job.status}, not succeeded")
            return copy.deepcopy(self._results[job_id])

    def counts(self) -> dict[str, int]:
        """See :meth:`JobQueue.counts`."""
        with self._cond:
            counts: dict[str, int] = dict.fromkeys(STATES, 0)
            for job in self._jobs.values():
                counts[job.status] += 1
            return counts

    def exists(self, job_id: str) -> bool:
        """See :meth:`JobQueue.exists`."""
        return job_id in self._jobs

    def read_events(
        self, job_id: str, cursor: str | None, timeout: float
    ) -> tuple[builtins.list[JobEvent], str | None]:
        """See :meth:`JobQueue.read_events`."""
        after = int(cursor or 0)
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                self._job(job_id)
                events = [(seq, e) for seq, e in self._events.get(job_id, []) if seq > after]
                remaining = deadline - time.monotonic()
                if events or remaining <= 0:
                    return [e for _, e in events], str(events[-1][0] if events else after)
                self._cond.wait(remaining)

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
