"""Running claimed jobs: :class:`JobRunner` (one job), :class:`LocalWorkerPool` (threads polling the SQLite or
memory queue inside ``auricle serve``) and :func:`run_worker` (the ``auricle worker`` process of the Redis
backend, whose threads are a :class:`~auricle.jobs.dramatiq.DramatiqConsumer`).

While a job runs, a heartbeat thread extends its lease every ``lease/4`` seconds (at most every second) and
learns from the queue whether the job was cancelled or deleted; the pipeline polls that flag between segments
through its ``cancelled`` callback, so a cancel reaches a running job within about a second.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import prometheus_client

from auricle import metrics
from auricle.config import Settings
from auricle.engine.decode import decode
from auricle.engine.pipeline import PipelineEvent, PipelineStats
from auricle.engine.runtime import Runtime
from auricle.engine.transcribe import resolve_device
from auricle.engine.types import SAMPLE_RATE, TranscribeOptions, Transcript
from auricle.errors import CancelledError, InvalidRequestError, JobNotFoundError
from auricle.jobs.base import TERMINAL, Claim, Job, JobQueue, remove_file, worker_id
from auricle.jobs.codec import ErrorInfo, encode_error
from auricle.jobs.events import ProgressEvent
from auricle.jobs.urls import fetch_audio_url

__all__ = ["Consumer", "JobRunner", "LocalWorkerPool", "run_worker", "sweep_work_dir", "worker_id"]

logger = logging.getLogger(__name__)


class Consumer(Protocol):
    """Worker threads of this process taking jobs (:class:`LocalWorkerPool`, or a
    :class:`~auricle.jobs.dramatiq.DramatiqConsumer` on Redis)."""

    def start(self) -> None:
        """Start taking jobs."""
        ...

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs and interrupt running ones (they are handed back to the queue and run again)."""
        ...

    def drain(self, only: Callable[[], list[str]] | None = None) -> None:
        """Stop taking new jobs while running ones finish; with ``only``, still take the jobs whose ids it
        returns (the sync requests a client waits for)."""
        ...

    @property
    def running(self) -> int:
        """Jobs running in this process now."""
        ...


class JobRunner:
    """Runs one claimed job through :meth:`Runtime.transcribe` and stores the outcome.

    Args:
        queue: where the job came from.
        runtime: the engine of this process.
        lease_s: lease length; heartbeats come every quarter of it (at most every second).
        work_dir: where audio fetched from a remote store is written while it is transcribed.
    """

    def __init__(self, queue: JobQueue, runtime: Runtime, *, lease_s: float, work_dir: Path) -> None:
        self.queue = queue
        self.runtime = runtime
        self.lease_s = lease_s
        self.work_dir = work_dir
        self.aborting = threading.Event()
        self._running = 0
        self._count = threading.Lock()

    @property
    def running(self) -> int:
        """Jobs this runner is running now."""
        return self._running

    def run(self, job: Job, worker: str) -> str:
        """Run ``job`` (already claimed by ``worker``); returns the state it ended in: ``succeeded``, ``failed``,
        ``cancelled``, ``lost``, ``released`` (interrupted by a shutdown and handed back to the queue) or
        ``interrupted`` (the same, but handing it back failed: it runs again when its lease runs out)."""
        with self._count:
            self._running += 1
        try:
            return self._run(job, worker)
        finally:
            with self._count:
                self._running -= 1

    def _run(self, job: Job, worker: str) -> str:
        metrics.JOB_WAIT_SECONDS.observe(max(0.0, (job.started_at or time.time()) - job.created_at))
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, worker, stop), daemon=True)
        beat.start()
        started = time.perf_counter()
        temp: Path | None = None
        logger.info("job %s: started by %s (attempt %s)", job.id, worker, job.attempts)

        def on_event(event: PipelineEvent) -> None:
            try:
                self.queue.report(job.id, worker, ProgressEvent.from_pipeline(event))
            except Exception:
                logger.exception("job %s: could not record progress", job.id)

        def cancelled() -> bool:
            return stop.is_set() or self.aborting.is_set()

        try:
            if job.source_url and not job.audio_path:
                job = self._fetch_source(job, worker)
            path, is_temp = self.queue.fetch_audio(job, self.work_dir)
            temp = path if is_temp else None
            stats = PipelineStats()
            options = TranscribeOptions.from_dict(job.options)
            if job.options.get("kind") == "detect_language":
                transcript = self._detect_language(path, options, stats, on_event)
            else:
                transcript = self.runtime.transcribe(path, options, on_event=on_event, cancelled=cancelled, stats=stats)
            done = self.queue.complete(job.id, worker, transcript.to_dict(), _stats_dict(stats, transcript.model))
            outcome = "succeeded" if done else "lost"
        except CancelledError:
            if self.aborting.is_set() and not stop.is_set():
                # Shutting down: hand the job back so it runs again at once, not when its lease runs out.
                stop.set()
                beat.join(timeout=5)
                try:
                    released = self.queue.release(job.id, worker)
                except Exception:
                    logger.exception("job %s: could not hand the job back; it runs again when its lease ends", job.id)
                    released = False
                logger.info("job %s: interrupted by shutdown; %s", job.id, "re-queued" if released else "left leased")
                return "released" if released else "interrupted"
            self.queue.fail(job.id, worker, ErrorInfo("CancelledError", "the job was cancelled"))
            outcome = "cancelled"
        except Exception as exc:
            error = encode_error(exc)
            if error.code is None:
                logger.exception("job %s: failed", job.id)
            self.queue.fail(job.id, worker, error)
            outcome = "failed"
        finally:
            stop.set()
            beat.join(timeout=5)
            if temp is not None:
                remove_file(str(temp))
        metrics.JOB_RUN_SECONDS.observe(time.perf_counter() - started)
        logger.info("job %s: %s after %.2fs", job.id, outcome, time.perf_counter() - started)
        return outcome

    def _fetch_source(self, job: Job, worker: str) -> Job:
        """Fetch a URL job's audio (upload size limit, time limit, bounded redirects, the address guard) and keep
        it like an upload."""
        settings = self.runtime.settings
        self.queue.report(job.id, worker, ProgressEvent("stage", "fetching", 0.0))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Named job-<id>… so sweep_work_dir removes what a killed worker left behind.
        target = self.work_dir / f"job-{job.id}-fetch-{worker.rsplit('-', 1)[-1]}.part"
        fetch_audio_url(
            job.source_url or "",
            target,
            max_bytes=int(settings.max_upload_mb * 1024 * 1024),
            timeout_s=settings.url_fetch_timeout_s,
            max_redirects=settings.url_max_redirects,
            allow_private=settings.url_allow_private,
        )
        stored = self.queue.store_fetched(job.id, worker, target)
        if stored is None:
            raise CancelledError("the job was lost while its audio was fetched")
        return stored

    def _detect_language(
        self, path: Path, options: TranscribeOptions, stats: PipelineStats, on_event: Callable[[PipelineEvent], None]
    ) -> Transcript:
        """A ``detect_language`` job: the language of the first 30 s, as a transcript without segments."""
        started = time.perf_counter()
        on_event(PipelineEvent("stage", "decoding", 0.0))
        audio = decode(path, max_seconds=self.runtime.settings.max_audio_s)
        with self.runtime.models.use(options.model) as transcriber:
            guess = transcriber.detect_language(audio.samples[: 30 * SAMPLE_RATE])
        # No audio_seconds: nothing was transcribed, so the transcription metrics should not count it.
        stats.processing_seconds = time.perf_counter() - started
        return Transcript(
            language=guess.language,
            language_probability=round(guess.probability, 4),
            duration=round(audio.duration, 3),
            model=transcriber.name,
        )

    def _heartbeat(self, job_id: str, worker: str, stop: threading.Event) -> None:
        interval = max(0.2, min(self.lease_s / 4, 1.0))
        while not stop.wait(interval):
            try:
                if not self.queue.heartbeat(job_id, worker, self.lease_s):
                    logger.info("job %s: cancelled, deleted or lost; stopping", job_id)
                    stop.set()
            except Exception:
                logger.exception("job %s: heartbeat failed", job_id)


def _stats_dict(stats: PipelineStats, model: str | None) -> dict[str, Any]:
    return {
        "audio_seconds": round(stats.audio_seconds, 3),
        "processing_seconds": round(stats.processing_seconds, 3),
        "real_time_factor": round(stats.real_time_factor, 2) if stats.real_time_factor else None,
        "first_segment_seconds": (
            round(stats.first_segment_seconds, 3) if stats.first_segment_seconds is not None else None
        ),
        "stage_seconds": {k: round(v, 3) for k, v in stats.stage_seconds.items()},
        "model": model,
    }


class LocalWorkerPool:
    """``threads`` worker threads in this process, each claiming and running jobs one at a time.

    Stopping interrupts running jobs and hands them back to the queue: the next start (or another process) runs
    them again, so stopping the server loses nothing. :meth:`drain` first lets running jobs finish.
    """

    def __init__(self, queue: JobQueue, runner: JobRunner, *, threads: int, lease_s: float) -> None:
        self.queue = queue
        self.runner = runner
        self.threads_wanted = threads
        self.lease_s = lease_s
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()
        self._draining = False
        self._only: Callable[[], list[str]] | None = None

    @property
    def running(self) -> int:
        """Jobs running in this process now."""
        return self.runner.running

    def drain(self, only: Callable[[], list[str]] | None = None) -> None:
        """Stop claiming new jobs (running ones finish), except the ids ``only`` returns."""
        self._only = only
        self._draining = True

    def start(self) -> None:
        """Recover jobs of a dead predecessor and start the threads."""
        self.queue.recover()
        for i in range(self.threads_wanted):
            thread = threading.Thread(
                target=self._loop, args=(worker_id(f"t{i}"),), name=f"job-worker-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _loop(self, worker: str) -> None:
        while not self._stopping.is_set():
            try:
                claim = self._claim_draining(worker) if self._draining else self.queue.claim(worker, self.lease_s)
            except Exception:
                logger.exception("claiming a job failed")
                self._stopping.wait(1.0)
                continue
            if claim.job is None:
                if self._draining:
                    self._stopping.wait(0.2)
                else:
                    self.queue.wait_for_work(0.5)
                continue
            self.runner.run(claim.job, worker)

    def _claim_draining(self, worker: str) -> Claim:
        for job_id in self._only() if self._only is not None else []:
            claim = self.queue.claim(worker, self.lease_s, job_id=job_id)
            if claim.job is not None:
                return claim
        return Claim(None, "empty")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, interrupt running jobs and wait for the threads."""
        self._stopping.set()
        self.runner.aborting.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads.clear()


def sweep_work_dir(queue: JobQueue, work_dir: Path) -> int:
    """Delete a worker's temp audio files of jobs that are gone or finished (left by a killed worker)."""
    removed = 0
    for path in work_dir.glob("job-*") if work_dir.is_dir() else []:
        try:
            if queue.get(path.name[4:36]).status not in TERMINAL:
                continue
        except JobNotFoundError:
            pass
        if time.time() - path.stat().st_mtime > 5:
            remove_file(str(path))
            removed += 1
    return removed


def run_worker(settings: Settings, *, stop: threading.Event | None = None) -> None:
    """The ``auricle worker`` process: take jobs from Redis until SIGTERM/SIGINT (or ``stop`` is set), then drain:
    running jobs finish within ``shutdown_grace_s`` and what is still running then is handed back to the queue.

    Runs ``settings.workers`` Dramatiq worker threads sharing one loaded model.

    Raises:
        InvalidRequestError: ``AURICLE_REDIS_URL`` is not set.
    """
    if not settings.redis_url:
        raise InvalidRequestError("`auricle worker` takes jobs from Redis: set AURICLE_REDIS_URL")
    # Imported here: the Redis backend is optional at run time, and an embedded server never loads it.
    from auricle.jobs.dramatiq import DramatiqConsumer, DramatiqTransport
    from auricle.jobs.redis import RedisJobQueue
    from auricle.jobs.webhooks import WebhookDeliverer

    stop = stop or threading.Event()
    hurry = threading.Event()

    def on_signal(*_: object) -> None:
        # The first signal drains; a second one skips the rest of the grace time.
        (hurry if stop.is_set() else stop).set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, on_signal)
    transport = DramatiqTransport(settings.redis_url, lease_s=settings.job_lease_s)
    queue = RedisJobQueue(
        settings.redis_url,
        settings.spool_dir,
        ttl_s=settings.job_ttl_s,
        lease_s=settings.job_lease_s,
        dispatcher=transport,
    )
    runtime = Runtime(settings)
    runtime.preload(list(dict.fromkeys([settings.default_model, *settings.preload_models])))
    runner = JobRunner(queue, runtime, lease_s=settings.job_lease_s, work_dir=settings.spool_dir / "work")
    me = worker_id("worker")
    try:
        queue.register_worker(me, settings.workers)
    except Exception as exc:  # Redis down at start: the loop below announces the worker once it is back
        logger.warning("worker %s: Redis is unreachable (%s); waiting for it", me, type(exc).__name__)
    consumer = DramatiqConsumer(transport, queue, runner, threads=settings.workers, lease_s=settings.job_lease_s)
    consumer.start()
    deliverer = WebhookDeliverer(queue, settings, name="worker-hooks")
    deliverer.start()
    metrics.WORKERS.set(settings.workers)
    metrics.set_service_info(*resolve_device(settings.device, settings.compute_type))
    exporter = None
    if settings.worker_metrics_port:
        # The transcriptions of this process are counted here, so they are scraped here (the API node has none).
        exporter, _ = prometheus_client.start_http_server(settings.worker_metrics_port, addr=settings.host)
        logger.info("worker %s: metrics on http://%s:%s/metrics", me, settings.host, settings.worker_metrics_port)
    logger.info("worker %s: %s threads taking jobs from Redis", me, settings.workers)
    last_sweep = 0.0
    try:
        while not stop.wait(min(5.0, settings.job_lease_s / 3)):
            try:
                queue.register_worker(me, settings.workers)
                if time.monotonic() - last_sweep > 60:
                    last_sweep = time.monotonic()
                    sweep_work_dir(queue, runner.work_dir)
            except Exception as exc:
                logger.warning("worker %s: housekeeping failed: %s", me, type(exc).__name__)
    finally:
        # Drain: take no new job, let running ones finish within the grace time, then hand back the rest.
        logger.info("worker %s: draining (%d running, grace %.0fs)", me, consumer.running, settings.shutdown_grace_s)
        consumer.drain()
        deadline = time.monotonic() + settings.shutdown_grace_s
        while consumer.running and time.monotonic() < deadline and not hurry.wait(0.1):
            pass
        logger.info("worker %s: stopping (%d job(s) still running are handed back)", me, consumer.running)
        consumer.stop(timeout=10.0)
        deliverer.stop()
        if exporter is not None:
            exporter.shutdown()
        try:
            queue.unregister_worker(me)
        except Exception as exc:  # Redis down: the registration expires on its own
            logger.warning("worker %s: could not unregister: %s", me, type(exc).__name__)
        queue.close()
