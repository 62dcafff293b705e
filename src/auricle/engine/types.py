"""Plain data passed between pipeline stages. No behaviour beyond small derived properties."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

__all__ = [
    "SAMPLE_RATE",
    "Audio",
    "SpeakerTurn",
    "Segment",
    "SpeechSpan",
    "TranscribeOptions",
    "Transcript",
    "Word",
]

SAMPLE_RATE = 16_000
"""Every stage after decoding works on 16 kHz mono float32."""

Task = Literal["transcribe", "translate"]


@dataclass
class Audio:
    """Decoded audio: 16 kHz mono float32 samples in [-1, 1].

    ``channels`` keeps the per-channel signals (2 x N) when the source was stereo and the caller asked for them
    (per-channel diarization of phone calls); otherwise it is None.
    """

    samples: np.ndarray
    sample_rate: int = SAMPLE_RATE
    channels: np.ndarray | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class SpeechSpan:
    """A stretch of speech found by VAD, in seconds."""

    start: float
    end: float


@dataclass(frozen=True)
class SpeakerTurn:
    """One speaker talking from ``start`` to ``end`` seconds."""

    start: float
    end: float
    speaker: str


@dataclass
class Word:
    """A recognised word with its timing in seconds; ``word`` keeps Whisper's leading space."""

    start: float
    end: float
    word: str
    probability: float = 1.0
    speaker: str | None = None

    def shifted(self, seconds: float) -> Word:
        """The same word moved by ``seconds``."""
        return Word(self.start + seconds, self.end + seconds, self.word, self.probability, self.speaker)


@dataclass
class Segment:
    """A recognised stretch of text."""

    id: int
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)
    speaker: str | None = None
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    tokens: list[int] = field(default_factory=list)


@dataclass
class TranscribeOptions:
    """What the caller asked for. Engine-independent."""

    model: str | None = None
    language: str | None = None
    task: Task = "transcribe"
    initial_prompt: str | None = None
    hotwords: str | None = None
    word_timestamps: bool = False
    vad_filter: bool = True
    beam_size: int | None = None
    temperature: float | list[float] | None = None
    diarize: bool = False
    num_speakers: int | None = None
    min_speakers: int | None = None
    max_speakers: int | None = None
    return_speaker_embeddings: bool = False
    known_speakers: dict[str, list[float]] | None = None
    """Enrolled voices by name (256-float voice embeddings): matching diarized voices carry the name."""
    known_speaker_references: dict[str, str] | None = None
    """Enrolled voices by name as short audio clips (``data:`` URLs), embedded by the worker before matching."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable form (for job storage)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TranscribeOptions:
        """Inverse of :meth:`to_dict`, ignoring unknown keys."""
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Transcript:
    """The one result type every output format renders."""

    language: str
    duration: float
    segments: list[Segment] = field(default_factory=list)
    language_probability: float = 1.0
    task: Task = "transcribe"
    model: str | None = None
    speaker_embeddings: dict[str, list[float]] | None = None

    @property
    def text(self) -> str:
        """The whole text, segments joined by spaces."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    @property
    def words(self) -> list[Word]:
        """All words in order."""
        return [w for s in self.segments for w in s.words]

    @property
    def speakers(self) -> list[str]:
        """Distinct speaker labels in order of first appearance."""
        seen: dict[str, None] = {}
        for s in self.segments:
            if s.speaker:
                seen.setdefault(s.speaker, None)
        return list(seen)

    def to_dict(self) -> dict[str, Any]:
        """A lossless JSON-serialisable form (for job storage)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Transcript:
        """Inverse of :meth:`to_dict`."""
        segments = [
            Segment(**{**s, "words": [Word(**w) for w in s.get("words", [])]}) for s in data.get("segments", [])
        ]
        return cls(
            language=data["language"],
            duration=data["duration"],
            segments=segments,
            language_probability=data.get("language_probability", 1.0),
            task=data.get("task", "transcribe"),
            model=data.get("model"),
            speaker_embeddings=data.get("speaker_embeddings"),
        )
