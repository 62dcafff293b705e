"""One small protocol per pipeline stage. Implementations take and return the dataclasses of ``types.py``.

Batch transcription uses :class:`VadModel`, :class:`Transcriber` and :class:`Diarizer`; a streaming session uses
:class:`StreamingVad` and :class:`StreamingDecoder`, which work on the short buffer of a live stream.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from auricle.engine.types import Segment, SpeakerTurn, SpeechSpan, TranscribeOptions, Word

__all__ = [
    "DiarizationResult",
    "Diarizer",
    "LanguageGuess",
    "StreamingDecoder",
    "StreamingVad",
    "Transcriber",
    "VadModel",
]


@dataclass(frozen=True)
class LanguageGuess:
    """A detected language: ISO 639-1 code and probability."""

    language: str
    probability: float


@dataclass
class DiarizationResult:
    """Speaker turns and, per speaker, a mean embedding (for clients that store voice prints)."""

    turns: list[SpeakerTurn]
    embeddings: dict[str, list[float]] = field(default_factory=dict)


class VadModel(Protocol):
    """Finds speech in 16 kHz mono audio."""

    def speech_spans(self, samples: np.ndarray) -> list[SpeechSpan]:
        """Return the stretches of speech, in seconds, in order."""
        ...


class Transcriber(Protocol):
    """Turns speech into segments. Synchronous and lazy: segments are yielded as they are decoded."""

    multilingual: bool

    def detect_language(self, samples: np.ndarray) -> LanguageGuess:
        """Guess the spoken language from (the start of) the audio."""
        ...

    def transcribe(
        self,
        samples: np.ndarray,
        options: TranscribeOptions,
        spans: list[SpeechSpan] | None,
        on_language: Callable[[LanguageGuess], None] | None = None,
    ) -> Iterator[Segment]:
        """Yield segments for ``samples``; when ``spans`` is given only those stretches are decoded.

        ``on_language`` is called once, before the first segment, with the language used.
        """
        ...


class Diarizer(Protocol):
    """Tells who spoke when."""

    def diarize(
        self,
        samples: np.ndarray,
        spans: list[SpeechSpan],
        *,
        num_speakers: int | None = None,
        min_speakers: int | None = None,
        max_speakers: int | None = None,
    ) -> DiarizationResult:
        """Return speaker turns labelled ``SPEAKER_00``, ``SPEAKER_01`` ... in order of first appearance."""
        ...

    def embed(self, samples: np.ndarray, spans: Sequence[SpeechSpan]) -> np.ndarray:
        """One L2-normalised voice embedding of the speech in ``spans`` (a voice print to enrol a speaker)."""
        ...


class StreamingVad(Protocol):
    """Finds speech in a live stream's buffer (16 kHz mono), many times a second."""

    def speech_samples(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """Return speech spans as ``(start, end)`` sample indices, in order; pauses shorter than the endpoint
        silence are joined, and spans are not padded."""
        ...


class StreamingDecoder(Protocol):
    """Decodes stretches of a live stream: cheap tentative decodes for hypotheses, careful final ones for phrases."""

    def decode(self, samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        """Return the words of ``samples`` (16 kHz mono), with times relative to their start.

        Args:
            samples: the audio to decode (under 30 s).
            prompt: text said before it, to condition on.
            final: a final decode (beam search, as accurate as a batch one) rather than a tentative one.
        """
        ...
