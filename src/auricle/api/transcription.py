"""What the sync transcription routes share: spool the upload, run it through the service while watching for a
client disconnect, and clean up."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import wave
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import Request, UploadFile

from auricle.api.uploads import save_upload
from auricle.engine.pipeline import PipelineEvent
from auricle.engine.types import SAMPLE_RATE, TranscribeOptions
from auricle.jobs.service import JobTranscriptionService, TranscriptionResult

__all__ = ["pcm_to_wav", "spool", "transcribe_request", "watch_disconnect"]


async def spool(request: Request, upload: UploadFile | None, field: str) -> Path:
    """Save the upload to the spool directory."""
    return await save_upload(upload, request.app.state.settings.spool_dir, field=field)


def pcm_to_wav(raw_path: Path) -> Path:
    """Wrap a raw s16le 16 kHz mono file (``/asr?encode=false``) in a WAV header so the normal decoder reads it."""
    wav_path = raw_path.with_suffix(".wav")
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
    """An event set when the client goes away, so the worker thread can stop between segments."""
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


async def transcribe_request(request: Request, path: Path, options: TranscribeOptions) -> TranscriptionResult:
    """Run one spooled file through the app's transcription service; the service deletes the file."""
    service: JobTranscriptionService = request.app.state.service
    async with watch_disconnect(request) as gone:
        return await service.transcribe(path, options, disconnected=gone.is_set)


async def stream_request(
    request: Request, path: Path, options: TranscribeOptions
) -> AsyncIterator[PipelineEvent | TranscriptionResult]:
    """Like :func:`transcribe_request`, yielding pipeline events before the result."""
    service: JobTranscriptionService = request.app.state.service
    async with watch_disconnect(request) as gone:
        async for item in service.stream(path, options, disconnected=gone.is_set):
            yield item
