"""What the sync transcription routes share: run a spooled upload through the job service while watching for a
client disconnect, and keep the sync-request gauges (waiting for a worker, then in flight) up to date."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

from fastapi import Request

from auricle import metrics
from auricle.engine.pipeline import PipelineEvent
from auricle.engine.types import SAMPLE_RATE, TranscribeOptions
from auricle.jobs.service import JobKind, JobTranscriptionService, TranscriptionResult

__all__ = ["pcm_to_wav", "stream_request", "transcribe_request", "watch_disconnect"]


def pcm_to_wav(raw_path: Path) -> Path:
    """Wrap a raw s16le 16 kHz mono file (``/asr?encode=false``) in a WAV header so the normal decoder reads it."""
    # A new name, never the input's own: an upload named ``x.wav`` must not be overwritten while it is read.
    wav_path = raw_path.with_name(raw_path.stem + ".pcm.wav")
    with open(raw_path, "rb") as src, wave.open(str(wav_path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        while chunk := src.read(1024 * 1024):
            out.writeframesraw(chunk[: len(chunk) - len(chunk) % 2])
    raw_path.unlink(missing_ok=True)
    return wav_path


@contextlib.asynccontextmanager
async def watch_disconnect(request: Request) -> AsyncIterator[threading.Event]:
    """An event set when the client goes away, so the wait for the job can stop."""
    gone = threading.Event()

    async def poll() -> None:
        while not gone.is_set():
            if await request.is_disconnected():
                gone.set()
                return
            await asyncio.sleep(0.5)

    task = asyncio.create_task(poll())
    try:
        yield gone
    finally:
        task.cancel()


class _Progress:
    """Moves one sync request from ``auricle_transcriptions_waiting`` to ``_in_flight`` when its job starts."""

    def __init__(self) -> None:
        self.running = False

    def on_event(self, _event: PipelineEvent) -> None:
        # A job reports its first stage as soon as a worker starts it: until then it waits in the queue.
        if not self.running:
            self.running = True
            metrics.WAITING.dec()
            metrics.IN_FLIGHT.inc()


@contextlib.contextmanager
def _tracked() -> Iterator[_Progress]:
    progress = _Progress()
    metrics.WAITING.inc()
    try:
        yield progress
    finally:
        (metrics.IN_FLIGHT if progress.running else metrics.WAITING).dec()


async def transcribe_request(
    request: Request,
    service: JobTranscriptionService,
    path: Path,
    options: TranscribeOptions,
    *,
    job_kind: JobKind = "transcribe",
) -> TranscriptionResult:
    """Run one spooled file as an ephemeral job and wait for it; the service deletes the file."""
    with _tracked() as progress:
        async with watch_disconnect(request) as gone:
            return await service.transcribe(
                path, options, on_event=progress.on_event, disconnected=gone.is_set, job_kind=job_kind
            )


async def stream_request(
    request: Request, service: JobTranscriptionService, path: Path, options: TranscribeOptions
) -> AsyncIterator[PipelineEvent | TranscriptionResult]:
    """Like :func:`transcribe_request`, yielding pipeline events before the result."""
    with _tracked() as progress:
        async with watch_disconnect(request) as gone:
            async for item in service.stream(path, options, disconnected=gone.is_set):
                if isinstance(item, PipelineEvent):
                    progress.on_event(item)
                yield item
