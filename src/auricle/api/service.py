"""How the HTTP layer gets a file transcribed, behind one small interface.

Routes never call the engine directly: they hand a spooled upload to a :class:`TranscriptionService` and await
the result. The implementation (``jobs/service.py``) submits a durable job and waits for it, so one queue governs
concurrency, limits, metrics and scale-out for every request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from auricle import metrics
from auricle.engine.pipeline import PipelineEvent, PipelineStats
from auricle.engine.types import TranscribeOptions, Transcript

__all__ = ["TranscriptionResult", "TranscriptionService", "record_stats"]

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

    async def start(self) -> None:
        """Start background work (local workers, housekeeping)."""
        ...

    async def close(self) -> None:
        """Stop accepting work and release threads."""
        ...


def record_stats(stats: PipelineStats) -> None:
    """Feed one run's timings into the process metrics."""
    metrics.AUDIO_SECONDS.inc(stats.audio_seconds)
    metrics.PROCESSING_SECONDS.observe(stats.processing_seconds)
    if stats.real_time_factor:
        metrics.REAL_TIME_FACTOR.observe(stats.real_time_factor)
    for stage, seconds in stats.stage_seconds.items():
        metrics.STAGE_SECONDS.labels(stage).observe(seconds)
