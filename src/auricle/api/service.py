"""How the HTTP layer gets a file transcribed, behind one small interface.

Routes never call the engine directly: they hand a spooled upload to a :class:`TranscriptionService` and await
the result. The embedded default runs it on a bounded local executor; the jobs layer provides an implementation
that submits a durable job and waits for it, without any route changing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from auricle import metrics
from auricle.engine.pipeline import PipelineEvent, PipelineStats
from auricle.engine.types import TranscribeOptions, Transcript
from auricle.errors import CancelledError, QueueFullError
from auricle.runtime import Runtime

__all__ = ["LocalTranscriptionService", "TranscriptionResult", "TranscriptionService"]

logger = logging.getLogger(__name__)


@dataclass
class TranscriptionResult:
    """A finished transcription and its timings."""

    transcript: Transcript
    stats: PipelineStats


class TranscriptionService(Protocol):
    """Transcribes spooled files for the sync endpoints."""

    async def transcribe(
        self,
        audio_path: Path,
        options: TranscribeOptions,
        *,
        on_event: Callable[[PipelineEvent], None] | None = None,
        disconnected: Callable[[], bool] | None = None,
    ) -> TranscriptionResult:
        """Transcribe ``audio_path`` (owned by the service from now on: it deletes the file when done).

        Raises:
            QueueFullError: no room to wait.
            AuricleError: anything the pipeline reports (decode errors, unknown model ...).
        """
        ...

    def stream(
        self, audio_path: Path, options: TranscribeOptions, *, disconnected: Callable[[], bool] | None = None
    ) -> AsyncIterator[PipelineEvent | TranscriptionResult]:
        """Like :meth:`transcribe`, yielding pipeline events and finally the result (for SSE responses)."""
        ...

    def saturation(self) -> tuple[int, int]:
        """(accepted and unfinished, the most there may be): `/ready` is 503 when the first reaches the second."""
        ...

    async def close(self) -> None:
        """Stop accepting work and release threads."""
        ...


class LocalTranscriptionService:
    """Runs transcriptions on ``workers`` threads of this process, with at most ``max_queue`` waiting."""

    def __init__(self, runtime: Runtime, *, workers: int, max_queue: int) -> None:
        self._runtime = runtime
        self._workers = workers
        self._max_queue = max_queue
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="transcribe")
        self._pending = 0
        self._lock = threading.Lock()

    def saturation(self) -> tuple[int, int]:
        """(running or waiting, workers + queue capacity)."""
        with self._lock:
            return self._pending, self._workers + self._max_queue

    def _admit(self) -> None:
        with self._lock:
            if self._pending >= self._workers + self._max_queue:
                raise QueueFullError("the server is busy: too many transcriptions are waiting; retry later")
            self._pending += 1
            metrics.WAITING.set(max(0, self._pending - self._workers))

    def _release(self) -> None:
        with self._lock:
            self._pending -= 1
            metrics.WAITING.set(max(0, self._pending - self._workers))

    def _run(
        self,
        audio_path: Path,
        options: TranscribeOptions,
        on_event: Callable[[PipelineEvent], None] | None,
        cancelled: Callable[[], bool],
    ) -> TranscriptionResult:
        if cancelled():
            raise CancelledError("client went away before the transcription started")
        stats = PipelineStats()
        metrics.IN_FLIGHT.inc()
        try:
            transcript = self._runtime.transcribe(
                audio_path, options, on_event=on_event, cancelled=cancelled, stats=stats
            )
        finally:
            metrics.IN_FLIGHT.dec()
            audio_path.unlink(missing_ok=True)
        record_stats(stats)
        return TranscriptionResult(transcript, stats)

    async def transcribe(
        self,
        audio_path: Path,
        options: TranscribeOptions,
        *,
        on_event: Callable[[PipelineEvent], None] | None = None,
        disconnected: Callable[[], bool] | None = None,
    ) -> TranscriptionResult:
        """Run on the executor; a client disconnect cancels the work between segments."""
        try:
            self._admit()
        except QueueFullError:
            audio_path.unlink(missing_ok=True)
            raise
        stop = threading.Event()

        def cancelled() -> bool:
            return stop.is_set() or bool(disconnected and disconnected())

        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self._executor, self._run, audio_path, options, on_event, cancelled)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            stop.set()
            raise
        finally:
            future.add_done_callback(lambda _f: self._release())

    async def stream(
        self, audio_path: Path, options: TranscribeOptions, *, disconnected: Callable[[], bool] | None = None
    ) -> AsyncIterator[PipelineEvent | TranscriptionResult]:
        """Yield events from the worker thread as they happen, then the result."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[PipelineEvent] = asyncio.Queue()

        def on_event(event: PipelineEvent) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, event)

        task = asyncio.ensure_future(self.transcribe(audio_path, options, on_event=on_event, disconnected=disconnected))
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

    async def close(self) -> None:
        """Wait for running work to finish and stop the threads."""
        await asyncio.get_running_loop().run_in_executor(None, self._executor.shutdown, True)


def record_stats(stats: PipelineStats) -> None:
    """Feed one run's timings into the process metrics."""
    metrics.AUDIO_SECONDS.inc(stats.audio_seconds)
    metrics.PROCESSING_SECONDS.observe(stats.processing_seconds)
    if stats.real_time_factor:
        metrics.REAL_TIME_FACTOR.observe(stats.real_time_factor)
    for stage, seconds in stats.stage_seconds.items():
        metrics.STAGE_SECONDS.labels(stage).observe(seconds)
