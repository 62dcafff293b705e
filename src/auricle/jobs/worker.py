"""Running claimed jobs: :class:`JobRunner` (one job), :class:`LocalWorkerPool` (threads inside ``auricle serve``)
and :func:`run_worker` (the ``auricle worker`` process of the Redis backend).

While a job runs, a heartbeat thread extends its lease every ``lease/4`` seconds (at most every second) and
learns from the queue whether the job was cancelled or deleted; the pipeline polls that flag between segments
through its ``cancelled`` callback, so a cancel reaches a running job within about a second.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from auricle import metrics
from auricle.config import Settings
from auricle.engine.decode import decode
from auricle.engine.pipeline import PipelineEvent, PipelineStats
from auricle.engine.types import SAMPLE_RATE, TranscribeOptions, Transcript
from auricle.errors import AuricleError, CancelledError, InvalidRequestError
from auricle.jobs.base import Job, JobEvent, JobQueue, remove_file
from auricle.runtime import Runtime

__all__ = ["JobRunner", "LocalWorkerPool", "event_from_pipeline", "run_worker", "worker_id"]

logger = logging.getLogger(__name__)


def worker_id(name: str) -> str:
    """``host:pid:name-random``: the host and pid let a restarted server find jobs of its dead predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{name}-{uuid.uuid4().hex[:6]}"


def event_from_pipeline(event: PipelineEvent) -> JobEvent:
    """A pipeline event as a stored job event (JSON-serialisable)."""
    progress = round(100.0 * (1.0 if event.stage == "done" else event.progress), 1)
    out: JobEvent = {"type": event.kind, "stage": event.stage, "progress": progress}
    if event.segment is not None:
        out["segment"] = asdict(event.segment)
    if event.language is not None:
        out["language"] = event.language.language
        out["language_probability"] = round(event.language.probability, 4)
    if event.duration is not None:
        out["duration"] = event.duration
    return out


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

    def run(self, job: Job, worker: str) -> str:
        """Run ``job`` (already claimed by ``worker``); returns the state it ended in."""
        metrics.JOB_WAIT_SECONDS.observe(max(0.0, (job.started_at or time.time()) - job.created_at))
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job.id, worker, stop), daemon=True)
        beat.start()
        started = time.perf_counter()
        temp: Path | None = None
        logger.info("job %s: started by %s (attempt %s)", job.id, worker, job.attempts)

        def on_event(event: PipelineEvent) -> None:
            try:
                self.queue.report(job.id, worker, event_from_pipeline(event))
            except Exception:
                logger.exception("job %s: could not record progress", job.id)

        def cancelled() -> bool:
            return stop.is_set() or self.aborting.is_set()

        try:
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
                # Shutting down: leave the job leased to us; it runs again after a restart (lease expiry).
                logger.info("job %s: interrupted by shutdown; it will run again", job.id)
                return "interrupted"
            self.queue.fail(job.id, worker, "the job was cancelled", "CancelledError")
            outcome = "cancelled"
        except AuricleError as exc:
            self.queue.fail(job.id, worker, exc.message, type(exc).__name__)
            outcome = "failed"
        except Exception as exc:
            logger.exception("job %s: failed", job.id)
            self.queue.fail(job.id, worker, f"internal error: {type(exc).__name__}: {exc}", None)
            outcome = "failed"
        finally:
            stop.set()
            beat.join(timeout=5)
            if temp is not None:
                remove_file(str(temp))
        metrics.JOB_RUN_SECONDS.observe(time.perf_counter() - started)
        logger.info("job %s: %s after %.2fs", job.id, outcome, time.perf_counter() - started)
        return outcome

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

    Stopping interrupts running jobs and leaves them leased: the next start (or another process, once the lease
    runs out) runs them again, so stopping the server loses nothing and does not wait for long files.
    """

    def __init__(self, queue: JobQueue, runtime: Runtime, *, threads: int, lease_s: float, work_dir: Path) -> None:
        self.queue = queue
        self.runner = JobRunner(queue, runtime, lease_s=lease_s, work_dir=work_dir)
        self.threads_wanted = threads
        self.lease_s = lease_s
        self._threads: list[threading.Thread] = []
        self._stopping = threading.Event()

    def start(self) -> None:
        """Recover jobs of a dead predecessor and start the threads."""
        recover = getattr(self.queue, "recover", None)
        if recover is not None:
            recover()
        for i in range(self.threads_wanted):
            thread = threading.Thread(
                target=self._loop, args=(worker_id(f"t{i}"),), name=f"job-worker-{i}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def _loop(self, worker: str) -> None:
        metrics.WORKERS.inc()
        try:
            while not self._stopping.is_set():
                try:
                    job = self.queue.claim(worker, self.lease_s)
                except Exception:
                    logger.exception("claiming a job failed")
                    self._stopping.wait(1.0)
                    continue
                if job is None:
                    self.queue.wait_for_work(0.5)
                    continue
                self.runner.run(job, worker)
        finally:
            metrics.WORKERS.dec()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop claiming, interrupt running jobs and wait for the threads."""
        self._stopping.set()
        self.runner.aborting.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        self._threads.clear()


def run_worker(settings: Settings, *, stop: threading.Event | None = None) -> None:
    """The ``auricle worker`` process: take jobs from Redis until SIGTERM/SIGINT (or ``stop`` is set).

    Runs ``settings.workers`` Dramatiq worker threads sharing one loaded model.

    Raises:
        InvalidRequestError: ``AURICLE_REDIS_URL`` is not set.
    """
    if not settings.redis_url:
        raise InvalidRequestError("`auricle worker` takes jobs from Redis: set AURICLE_REDIS_URL")
    from auricle.jobs.redis import RedisJobQueue

    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    queue = RedisJobQueue(
        settings.redis_url, settings.spool_dir, ttl_s=settings.job_ttl_s, lease_s=settings.job_lease_s
    )
    runtime = Runtime(settings)
    runtime.preload(list(dict.fromkeys([settings.default_model, *settings.preload_models])))
    runner = JobRunner(queue, runtime, lease_s=settings.job_lease_s, work_dir=settings.spool_dir / "work")
    me = worker_id("worker")
    queue.register_worker(me, settings.workers)
    consumer = queue.start_consumer(runner, threads=settings.workers)
    logger.info("worker %s: %s threads taking jobs from Redis", me, settings.workers)
    last_sweep = 0.0
    try:
        while not stop.wait(min(5.0, settings.job_lease_s / 3)):
            try:
                queue.register_worker(me, settings.workers)
                if time.monotonic() - last_sweep > 60:
                    last_sweep = time.monotonic()
                    queue.sweep_work_dir(runner.work_dir)
            except Exception:
                logger.exception("worker %s: housekeeping failed", me)
    finally:
        logger.info("worker %s: stopping", me)
        runner.aborting.set()
        consumer.stop(timeout=10_000)
        queue.unregister_worker(me)
        queue.close()
