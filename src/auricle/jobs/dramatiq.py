"""Delivery of Redis jobs to worker processes through Dramatiq: the broker and actor (:class:`DramatiqTransport`)
and the consumer threads that run them (:class:`DramatiqConsumer`).

Every queued job is one Dramatiq message (``auricle_transcribe(job_id)``) on the ``auricle`` queue. Dramatiq acks
a message only after its actor returns, and moves the unacked messages of a worker that stopped heartbeating
(``heartbeat_timeout`` = the job lease) back to the queue, so a ``kill -9``'d worker's job is redelivered.
Delivery is at least once; the job's own lease (claimed in the store) makes sure it runs on one worker at a time,
and only the lease holder may store a result, so exactly one result is kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from auricle.jobs.base import Job, JobQueue, worker_id

try:
    import dramatiq
    from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
except ImportError as exc:  # pragma: no cover - dramatiq is a core dependency
    raise ImportError("Redis job delivery needs Dramatiq: `pip install 'dramatiq[redis]'`") from exc

__all__ = ["DramatiqConsumer", "DramatiqTransport", "Runner"]

logger = logging.getLogger(__name__)

QUEUE_NAME = "auricle"


class Runner(Protocol):
    """Runs one claimed job (:class:`~auricle.jobs.worker.JobRunner`)."""

    aborting: threading.Event

    @property
    def running(self) -> int:
        """Jobs running now."""
        ...

    def run(self, job: Job, worker: str) -> str:
        """Run ``job``, claimed by ``worker``; returns the state it ended in, ``released`` or ``interrupted``."""
        ...


class DramatiqTransport:
    """The Dramatiq broker and actor of one process; :meth:`send` is the store's dispatcher.

    Args:
        url: the Redis URL (the same server as the store; Dramatiq keys live under ``auricle-dramatiq``).
        lease_s: the job lease, used as Dramatiq's worker heartbeat timeout.
    """

    def __init__(self, url: str, *, lease_s: float) -> None:
        # Maintenance (requeueing a dead worker's messages) runs on 1 in 20 broker calls; idle consumers poll
        # about once a second, so redelivery follows the heartbeat timeout within seconds.
        self.broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=url,
            namespace="auricle-dramatiq",
            heartbeat_timeout=int(lease_s * 1000),
            maintenance_chance=MAINTENANCE_SCALE // 20,
        )
        self._perform: Any = None

        def auricle_transcribe(job_id: str) -> None:
            if self._perform is None:
                raise RuntimeError("this process takes no jobs (no consumer was started)")
            self._perform(job_id)

        self.actor = dramatiq.actor(
            broker=self.broker,
            queue_name=QUEUE_NAME,
            max_retries=20,
            min_backoff=1000,
            max_backoff=30_000,
            time_limit=24 * 3600 * 1000,
        )(auricle_transcribe)

    def send(self, job_id: str) -> None:
        """Send the job's message."""
        self.actor.send(job_id)

    def close(self) -> None:
        """Close the broker's connections."""
        self.broker.close()


class DramatiqConsumer:
    """Dramatiq worker threads in this process, each claiming the job of its message and running it.

    Args:
        transport: whose messages to take.
        queue: the store the jobs are claimed from.
        runner: runs a claimed job.
        threads: worker threads.
        lease_s: the job lease.
    """

    def __init__(
        self, transport: DramatiqTransport, queue: JobQueue, runner: Runner, *, threads: int, lease_s: float
    ) -> None:
        self.transport = transport
        self.queue = queue
        self.runner = runner
        self.threads = threads
        self.lease_s = lease_s
        self._local = threading.local()
        self._worker: Any = None
        self._draining = False
        self._only: Callable[[], list[str]] | None = None

    @property
    def running(self) -> int:
        """Jobs running in this process now."""
        return self.runner.running

    def drain(self, only: Callable[[], list[str]] | None = None) -> None:
        """Stop taking messages; running jobs finish. A message already fetched is sent back to the queue for
        another worker, unless its job is one ``only`` returns (a sync request of this node)."""
        self._only = only
        self._draining = True
        if self._worker is not None:
            for consumer in self._worker.consumers.values():
                consumer.pause()

    def start(self) -> None:
        """Start taking messages."""
        self.transport._perform = self.perform
        # An idle consumer polls Redis at most every 100 ms (Dramatiq's default 1 s adds ~0.5 s to each job's wait).
        worker = dramatiq.Worker(
            self.transport.broker, queues={QUEUE_NAME}, worker_threads=self.threads, worker_timeout=100
        )
        # Prefetch only what the threads can run, so idle worker processes get the waiting jobs.
        worker.queue_prefetch = self.threads
        worker.start()
        self._worker = worker

    def stop(self, timeout: float = 10.0) -> None:
        """Interrupt running jobs (they are handed back to the queue and run again elsewhere) and stop the
        threads."""
        self.runner.aborting.set()
        if self._worker is not None:
            self._worker.stop(timeout=int(timeout * 1000))
            self._worker = None

    def perform(self, job_id: str) -> None:
        """The actor: claim the job for this thread and run it."""
        if self._draining and (self._only is None or job_id not in self._only()):
            # Shutting down: this node takes no new job; a fresh message lets another worker take it at once.
            self.transport.send(job_id)
            return
        worker = getattr(self._local, "id", None)
        if worker is None:
            worker = self._local.id = worker_id("dq")
        claim = self.queue.claim(worker, self.lease_s, job_id=job_id)
        if claim.reason == "leased" and claim.lease_until is not None:
            # Redelivered while the old lease still runs: wait it out once; a live holder keeps renewing it.
            time.sleep(max(0.0, claim.lease_until - time.time()) + 0.5)
            claim = self.queue.claim(worker, self.lease_s, job_id=job_id)
        if claim.job is None:
            logger.info("job %s: nothing to run (%s)", job_id, claim.reason)
            return
        if self.runner.run(claim.job, worker) == "interrupted":
            # Not acked: Dramatiq retries the message, and it is claimed again once our lease has run out.
            raise RuntimeError(f"job {job_id} was interrupted by a worker shutdown")
