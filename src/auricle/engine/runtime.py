"""The engine's facade: the parts one process shares (model registry and manager, VAD, diarizer) and how they
compose, for batch transcription and for streaming sessions.

The CLI, the HTTP app and job workers each build one :class:`Runtime` from their :class:`~auricle.config.Settings`
(no module-level singletons); streaming sessions use the app's. Callers outside the engine see the stages only
through :mod:`auricle.engine.protocols`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from functools import partial
from pathlib import Path

from auricle.config import Settings
from auricle.engine.pipeline import PipelineEvent, PipelineStats, run_pipeline
from auricle.engine.protocols import Diarizer, StreamingDecoder, StreamingVad
from auricle.engine.streaming_decoder import FasterWhisperStreamingDecoder
from auricle.engine.transcribe import FasterWhisperTranscriber
from auricle.engine.types import Audio, TranscribeOptions, Transcript
from auricle.engine.vad import SileroVad
from auricle.models.manager import ModelManager
from auricle.models.registry import ModelRegistry

__all__ = ["Runtime"]

logger = logging.getLogger(__name__)


class Runtime:
    """Shared engine state of one process.

    Args:
        settings: the process's settings.
        workers: how many transcriptions may decode at once through one loaded model (CTranslate2 workers).
    """

    def __init__(self, settings: Settings, *, workers: int | None = None) -> None:
        self.settings = settings
        self.registry = ModelRegistry(settings)
        loader = partial(
            FasterWhisperTranscriber.load,
            device=settings.device,
            compute_type=settings.compute_type,
            cpu_threads=settings.cpu_threads,
            workers=workers or settings.workers,
            beam_size=settings.beam_size,
            batch_size=settings.batch_size,
            batched_min_s=settings.batched_min_s,
        )
        self.models: ModelManager[FasterWhisperTranscriber] = ModelManager(
            self.registry, loader, idle_ttl_s=settings.model_idle_ttl_s
        )
        self.vad = SileroVad()
        self._diarizer: Diarizer | None = None
        self._diarizer_lock = threading.Lock()

    @property
    def diarizer(self) -> Diarizer:
        """The speaker diarizer, loaded on first use (its weights are only read when someone diarizes)."""
        with self._diarizer_lock:
            if self._diarizer is None:
                from auricle.engine.diarize import ResemblyzerDiarizer

                self._diarizer = ResemblyzerDiarizer()
            return self._diarizer

    def preload(self, names: list[str] | None = None) -> None:
        """Load models now rather than on first use."""
        for name in names if names is not None else [*self.settings.preload_models]:
            self.models.get(name)

    def streaming_decoder(
        self,
        transcriber: FasterWhisperTranscriber,
        language: str | None,
        *,
        beam_size: int = 1,
        final_beam_size: int = 5,
    ) -> StreamingDecoder:
        """A decoder for one streaming session over a model of :attr:`models`.

        Args:
            transcriber: the loaded model (``models.get(name)``).
            language: language code, or None to detect it on the session's first utterance.
            beam_size: beam for tentative re-decodes.
            final_beam_size: beam for the last decode of an utterance.
        """
        return FasterWhisperStreamingDecoder(
            transcriber, language, beam_size=beam_size, final_beam_size=final_beam_size
        )

    def streaming_vad(self, endpoint_ms: int, threshold: float = 0.5) -> StreamingVad:
        """The speech detector of one streaming session: unpadded spans, pauses under ``endpoint_ms`` joined."""
        return SileroVad.for_streaming(endpoint_ms, threshold)

    def transcribe(
        self,
        source: str | Path | Audio,
        options: TranscribeOptions,
        *,
        on_event: Callable[[PipelineEvent], None] | None = None,
        cancelled: Callable[[], bool] | None = None,
        stats: PipelineStats | None = None,
    ) -> Transcript:
        """Run the whole pipeline on one file with the model ``options.model`` names."""
        with self.models.use(options.model) as transcriber:
            return run_pipeline(
                source,
                options,
                transcriber,
                self.vad,
                diarizer=self.diarizer if options.diarize else None,
                on_event=on_event,
                cancelled=cancelled,
                max_audio_s=self.settings.max_audio_s,
                stats=stats,
            )
