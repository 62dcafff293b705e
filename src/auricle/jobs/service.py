"""The sync endpoints on top of jobs: :class:`JobTranscriptionService`, and :func:`build_job_service`.

``POST /asr`` and ``/v1/audio/*`` call :meth:`JobTranscriptionService.transcribe`, which submits an *ephemeral*
job and waits for its events. Ephemeral jobs are hidden from ``GET /v1/jobs``; once the result has been handed
back (or the request failed, or the client went away) the job is deleted with its audio and result, so sync
requests leave nothing behind. Had the server died while a sync job was waiting, the job still finishes and its
leftovers go at the next TTL sweep.

:class:`TranscriptionResult` is what the sync routes get back; :func:`build_job_service` picks the backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from auricle import metrics
from auricle.config import Settings
from auricle.engine.pipeline import PipelineEvent, PipelineStats
from auricle.engine.runtime import Runtime
from auricle.engine.types import TranscribeOptions, Transcript
from auricle.errors import AuricleError, CancelledError, DrainingError, JobNotFoundError, QueueFullError
from auricle.jobs.base import STATES, Job, JobQueue, worker_id
from auricle.jobs.codec import ErrorInfo, decode_error
from auricle.jobs.events import FinishedEvent, ProgressEvent
from auricle.jobs.urls import url_filename
from auricle.jobs.webhooks import WebhookDeliverer
from auricle.jobs.worker import Consumer, JobRunner, LocalWorkerPool, sweep_work_dir

__all__ = [
    "ConsumerFactory",
    "JobKind",
    "JobTranscriptionService",
    "TranscriptionResult",
    "build_job_service",
    "record_stats",
]

logger = logging.getLogger(__name__)

ConsumerFactory = Callable[[JobRunner], Consumer]
"""Builds the local worker threads of a backend around a runner."""

JobKind = Literal["transcribe", "detect_language"]
"""What a job does; stored as ``options["kind"]`` when not ``transcribe`` (the worker reads it)."""


@dataclass
class TranscriptionResult:
    """A finished transcription and its timings."""

    transcript: Transcript
    stats: PipelineStats


def record_stats(stats: PipelineStats) -> None:
    """Feed one run's timings into the process metrics."""
    metrics.AUDIO_SECONDS.inc(stats.audio_seconds)
    metrics.AUDIO_DURATION_SECONDS.observe(stats.audio_seconds)
    metrics.PROCESSING_SECONDS.observe(stats.processing_seconds)
    if stats.real_time_factor:
        metrics.REAL_TIME_FACTOR.observe(stats.real_time_factor)
    for stage, seconds in stats.stage_seconds.items():
        metrics.STAGE_SECONDS.labels(stage).observe(seconds)


class JobTranscriptionService:
    """Transcribes for the sync endpoints by submitting an ephemeral job and awaiting it.

    Also owns what runs next to the API: local workers (threads on SQLite, Dramatiq threads on Redis, built by
    ``consumer``) when ``settings.local_workers``, and the housekeeping loop (TTL sweep, orphan spool files, queue
    metrics).
    """

    def __init__(
        self,
        queue: JobQueue,
        settings: Settings,
        runtime: Runtime | None,
        *,
        consumer: ConsumerFactory | None = None,
    ) -> None:
        self.queue = queue
        self.settings = settings
        self.runtime = runtime
        self.sweep_interval_s = 60.0
        self.metrics_interval_s = 5.0
        self.orphan_age_s = 6 * 3600.0
        self._make_consumer: ConsumerFactory = consumer or (
            lambda runner: LocalWorkerPool(queue, runner, threads=settings.workers, lease_s=settings.job_lease_s)
        )
        self._consumer: Consumer | None = None
        self._deliverer: WebhookDeliverer | None = None
        self._me = worker_id("serve")
        self._tasks: list[asyncio.Task[None]] = []
        self._saturation: tuple[float, tuple[int, int]] = (0.0, (0, settings.max_queue + settings.workers))
        self._admission = threading.Lock()
        self._sync_jobs: set[str] = set()
        """Ephemeral jobs a sync request waits for here."""
        self.draining = False
        self._give_up = threading.Event()
        self.store_ok = True
        """False while the job store (Redis) did not answer the last look at it (``/ready`` is then not ready)."""

    # -- lifecycle ------------------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start local workers (unless ``local_workers`` is off) and the housekeeping loop."""
        # Before any worker starts: sync jobs of a crashed predecessor have no client left to answer.
        await asyncio.to_thread(self.queue.drop_orphaned_sync_jobs)
        if self.settings.local_workers and self.runtime is not None:
            work_dir = self.settings.spool_dir / "work"
            runner = JobRunner(self.queue, self.runtime, lease_s=self.settings.job_lease_s, work_dir=work_dir)
            consumer = self._make_consumer(runner)
            await asyncio.to_thread(consumer.start)
            self._consumer = consumer
            await asyncio.to_thread(self.queue.register_worker, self._me, self.settings.workers)
        self._tasks.append(asyncio.create_task(self._housekeeping()))
        deliverer = WebhookDeliverer(self.queue, self.settings, name="serve-hooks")
        deliverer.start()
        self._deliverer = deliverer

    # -- draining -------------------------------------------------------------------------------------------------
    def begin_drain(self) -> None:
        """Take no new work (submits raise :class:`DrainingError`); local workers finish what runs and still take
        the jobs of sync requests waiting here, but no other."""
        self.draining = True
        if self._consumer is not None:
            self._consumer.drain(only=lambda: list(self._sync_jobs))

    @property
    def busy(self) -> int:
        """Sync requests waiting here plus jobs running on local workers: what a drain waits for."""
        return len(self._sync_jobs) + (self._consumer.running if self._consumer is not None else 0)

    async def end_drain(self) -> None:
        """The grace time is over: sync requests still waiting get :class:`DrainingError` (their jobs are
        deleted), and running jobs are interrupted and handed back to the queue."""
        self._give_up.set()
        if self._consumer is not None:
            await asyncio.to_thread(self._consumer.stop, 10.0)
            self._consumer = None
            await asyncio.to_thread(self.queue.unregister_worker, self._me)

    async def close(self) -> None:
        """Stop housekeeping and local workers (running jobs are left to run again) and release the queue."""
        for task in self._tasks:
            task.cancel()
        self._tasks.clear()
        if self._deliverer is not None:
            await asyncio.to_thread(self._deliverer.stop)
            self._deliverer = None
        if self._consumer is not None:
            await asyncio.to_thread(self._consumer.stop, 10.0)
            self._consumer = None
            await asyncio.to_thread(self.queue.unregister_worker, self._me)
        await asyncio.to_thread(self.queue.close)

    async def _housekeeping(self) -> None:
        last_sweep = 0.0
        while True:
            try:
                await asyncio.to_thread(self.update_metrics)
                if time.monotonic() - last_sweep >= self.sweep_interval_s:
                    last_sweep = time.monotonic()
                    await asyncio.to_thread(self.sweep)
            except Exception:
                logger.exception("job housekeeping failed")
            await asyncio.sleep(self.metrics_interval_s)

    def sweep(self) -> tuple[int, int]:
        """Expire finished jobs past their TTL and delete orphaned spool files. Returns (jobs, files) removed."""
        jobs = self.queue.sweep()
        files = self.queue.sweep_orphans(min_age_s=self.orphan_age_s)
        # Temporary audio of workers killed mid-job (any worker on this host), not only when that worker returns.
        files += sweep_work_dir(self.queue, self.settings.spool_dir / "work")
        if jobs or files:
            logger.info("housekeeping removed %s expired jobs and %s orphaned spool files", jobs, files)
        return jobs, files

    def update_metrics(self) -> dict[str, int]:
        """Refresh the queue gauges from the store."""
        counts = self.queue.counts()
        for state in STATES:
            metrics.JOBS_BY_STATE.labels(state).set(counts.get(state, 0))
        metrics.QUEUE_DEPTH.set(counts.get("queued", 0))
        if self._consumer is not None:
            self.queue.register_worker(self._me, self.settings.workers)
        metrics.WORKERS.set(self.queue.worker_count())
        self._saturation = (time.monotonic(), (counts.get("queued", 0), self._room))
        return counts

    # -- submitting -----------------------------------------------------------------------------------------------
    @property
    def _room(self) -> int:
        """Jobs that may be queued at once: ``max_queue`` plus one per worker taking jobs at once."""
        return self.settings.max_queue + self.settings.workers

    def saturation(self) -> tuple[int, int]:
        """(jobs queued, room), at most a second old; `/ready` is not ready when the first reaches the second."""
        at, value = self._saturation
        if time.monotonic() - at > 1.0:
            try:
                value = (self.queue.counts().get("queued", 0), self._room)
            except Exception as exc:
                if self.store_ok:
                    logger.warning("the job store is unreachable: %s", type(exc).__name__)
                self.store_ok = False
                return value
            self.store_ok = True
            self._saturation = (time.monotonic(), value)
        return value

    def submit(
        self,
        files: list[tuple[Path, str | None]],
        options: TranscribeOptions,
        *,
        session: str | None = None,
        ephemeral: bool = False,
        job_kind: JobKind = "transcribe",
        urls: list[str] | None = None,
        webhook_url: str | None = None,
    ) -> list[Job]:
        """Enqueue one job per ``(spooled path, client filename)``, then one per audio URL in ``urls`` (its worker
        fetches it); blocking (call from a thread). ``webhook_url`` (else the server default) hears when each ends.

        ``job_kind="detect_language"`` makes a job that only detects the language (its transcript has no segments).

        Raises:
            QueueFullError: fewer than ``len(files)`` places are free in the queue (nothing is enqueued then,
                and the spooled files are deleted). Room is ``max_queue`` plus one per worker: a job
                taken at once by an idle worker is queued only for a moment.
            DrainingError: the server is shutting down (the files are deleted).

        Any other error (the store is unreachable) also deletes the files not yet taken into the store.
        """
        # Check and enqueue under one lock, or concurrent submits would all see the same free room.
        with self._admission:
            urls = urls or []
            try:
                if self.draining:
                    raise DrainingError("the server is shutting down; retry on another instance", retry_after_s=5)
                queued = self.queue.counts().get("queued", 0)
                if queued + len(files) + len(urls) > self._room:
                    raise QueueFullError(
                        f"the job queue is full: {queued} job(s) wait and at most {self._room} may; retry later"
                    )
                stored = options.to_dict()
                if job_kind != "transcribe":
                    stored["kind"] = job_kind
                hook = None if ephemeral else (webhook_url or self.settings.webhook_url)
                jobs = [
                    self.queue.enqueue(
                        path,
                        filename=name,
                        options=stored,
                        session=session,
                        ephemeral=ephemeral,
                        waiter=self._me if ephemeral else None,
                        webhook_url=hook,
                    )
                    for path, name in files
                ]
                jobs += [
                    self.queue.enqueue(
                        None,
                        filename=url_filename(url),
                        options=stored,
                        session=session,
                        source_url=url,
                        webhook_url=hook,
                    )
                    for url in urls
                ]
            except BaseException:
                # Refused, or the store is unreachable: uploads not taken into it go now, not at the 6 h sweep.
                for path, _ in files:
                    path.unlink(missing_ok=True)
                raise
        self._saturation = (0.0, self._saturation[1])
        return jobs

    def rerun(self, job_id: str, options: dict[str, Any]) -> Job:
        """:meth:`JobQueue.rerun` under the queue limit (a re-run is a new submission); blocking.

        Raises:
            QueueFullError: no place is free in the queue.
        """
        with self._admission:
            queued = self.queue.counts().get("queued", 0)
            if queued + 1 > self._room:
                raise QueueFullError(
                    f"the job queue is full ({queued} of {self.settings.max_queue} waiting); retry later"
                )
            job = self.queue.rerun(job_id, options)
        self._saturation = (0.0, self._saturation[1])
        return job

    async def transcribe(
        self,
        audio_path: Path,
        options: TranscribeOptions,
        *,
        on_event: Callable[[PipelineEvent], None] | None = None,
        disconnected: Callable[[], bool] | None = None,
        job_kind: JobKind = "transcribe",
    ) -> TranscriptionResult:
        """Submit an ephemeral job, forward its progress to ``on_event`` and return its result.

        A client disconnect (``disconnected()`` or the task being cancelled) deletes the job, which stops it.
        While waiting, the job's wait is renewed, so that no other node takes it for an orphan.
        """
        [job] = await asyncio.to_thread(
            self.submit, [(audio_path, audio_path.name)], options, ephemeral=True, job_kind=job_kind
        )
        cursor: str | None = None
        renewed = time.monotonic()
        self._sync_jobs.add(job.id)
        try:
            while True:
                if self._give_up.is_set():
                    raise DrainingError("the server is shutting down; retry on another instance", retry_after_s=5)
                if time.monotonic() - renewed > self.queue.waiter_lease_s / 4:
                    renewed = time.monotonic()
                    await asyncio.to_thread(self.queue.keep_waiting, job.id)
                events, cursor = await asyncio.to_thread(self.queue.read_events, job.id, cursor, 0.5)
                for event in events:
                    if isinstance(event, FinishedEvent):
                        if event.type == "done":
                            return await asyncio.to_thread(self._result, job.id)
                        if event.type == "cancelled":
                            raise CancelledError("the transcription was cancelled")
                        current = await asyncio.to_thread(self.queue.get, job.id)
                        raise decode_error(current.error_info or ErrorInfo(None, "job failed"))
                    if isinstance(event, ProgressEvent) and on_event is not None:
                        on_event(event.to_pipeline())
                if disconnected is not None and disconnected():
                    raise CancelledError("client went away")
        finally:
            self._sync_jobs.discard(job.id)
            # Deleting also stops a running job: its worker's next heartbeat finds it gone.
            with contextlib.suppress(JobNotFoundError, AuricleError, OSError):
                self.queue.delete(job.id)

    def _result(self, job_id: str) -> TranscriptionResult:
        transcript = Transcript.from_dict(self.queue.result(job_id))
        stats_data = self.queue.get(job_id).stats
        stats = PipelineStats(
            audio_seconds=stats_data.get("audio_seconds") or 0.0,
            processing_seconds=stats_data.get("processing_seconds") or 0.0,
            first_segment_seconds=stats_data.get("first_segment_seconds"),
            stage_seconds=dict(stats_data.get("stage_seconds") or {}),
        )
        record_stats(stats)
        return TranscriptionResult(transcript, stats)

    async def stream(
        self, audio_path: Path, options: TranscribeOptions, *, disconnected: Callable[[], bool] | None = None
    ) -> AsyncIterator[PipelineEvent | TranscriptionResult]:
        """Yield pipeline events as the job reports them, then the result."""
        queue: asyncio.Queue[PipelineEvent] = asyncio.Queue()
        task = asyncio.ensure_future(
            self.transcribe(audio_path, options, on_event=queue.put_nowait, disconnected=disconnected)
        )
        try:
            while not task.done() or not queue.empty():
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                else:
                    getter.cancel()
            yield task.result()
        finally:
            if not task.done():
                task.cancel()


def build_job_service(settings: Settings, runtime: Runtime | None) -> tuple[JobTranscriptionService, JobQueue]:
    """The jobs-backed service for the sync endpoints and the queue for ``/v1/jobs``.

    SQLite at ``data_dir/jobs.sqlite3`` by default; Redis (with Dramatiq) when ``redis_url`` is set. Call
    ``await service.start()`` at application start and ``await service.close()`` at shutdown.
    """
    if not settings.redis_url:
        from auricle.jobs.sqlite import SqliteJobQueue

        sqlite = SqliteJobQueue(settings.data_dir / "jobs.sqlite3", settings.spool_dir, ttl_s=settings.job_ttl_s)
        return JobTranscriptionService(sqlite, settings, runtime), sqlite
    # Imported here: an embedded server never loads Redis or Dramatiq.
    from auricle.jobs.dramatiq import DramatiqConsumer, DramatiqTransport
    from auricle.jobs.redis import RedisJobQueue

    transport = DramatiqTransport(settings.redis_url, lease_s=settings.job_lease_s)
    queue = RedisJobQueue(
        settings.redis_url,
        settings.spool_dir,
        ttl_s=settings.job_ttl_s,
        lease_s=settings.job_lease_s,
        dispatcher=transport,
    )

    def consumer(runner: JobRunner) -> Consumer:
        return DramatiqConsumer(transport, queue, runner, threads=settings.workers, lease_s=settings.job_lease_s)

    return JobTranscriptionService(queue, settings, runtime, consumer=consumer), queue
