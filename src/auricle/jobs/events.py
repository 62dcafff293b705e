"""What a job tells its watchers, as typed events, and their JSON form (stored, and sent as server-sent events).

Every attempt of a job starts its log with a :class:`StateEvent`; the worker adds :class:`ProgressEvent` s (a new
stage, the detected language, a decoded segment); the log ends with a :class:`FinishedEvent` (``done``, ``failed``
or ``cancelled``). :meth:`to_dict` gives exactly the objects ``GET /v1/jobs/{id}/events`` sends.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal, TypeAlias

from auricle.engine.pipeline import PipelineEvent
from auricle.engine.protocols import LanguageGuess
from auricle.engine.types import Segment, Word

__all__ = ["FinishedEvent", "JobEvent", "ProgressEvent", "StateEvent", "event_from_dict"]

ProgressKind = Literal["stage", "language", "segment"]
FinishedKind = Literal["done", "failed", "cancelled"]


@dataclass(frozen=True)
class StateEvent:
    """The job's state at the start of an attempt (after enqueue, claim or retry)."""

    job: dict[str, Any]
    type: Literal["state"] = "state"

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "state", "job": {...public job...}}``."""
        return {"type": self.type, "job": self.job}


@dataclass(frozen=True)
class FinishedEvent:
    """The last event of an attempt: ``done`` (succeeded), ``failed`` or ``cancelled``, with the final job."""

    type: FinishedKind
    job: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: ``{"type": "done"|"failed"|"cancelled", "job": {...public job...}}``."""
        return {"type": self.type, "job": self.job}


@dataclass(frozen=True)
class ProgressEvent:
    """A worker's progress report. ``progress`` is 0–100 of the audio processed; ``segment`` is the JSON form of
    an :class:`~auricle.engine.types.Segment`."""

    type: ProgressKind
    stage: str
    progress: float
    segment: dict[str, Any] | None = None
    language: str | None = None
    language_probability: float | None = None
    duration: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form: type, stage and progress, plus whichever of the optional fields is set."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_pipeline(cls, event: PipelineEvent) -> ProgressEvent:
        """A pipeline event as a job event (progress in percent, rounded)."""
        progress = round(100.0 * (1.0 if event.stage == "done" else event.progress), 1)
        return cls(
            type=event.kind,
            stage=event.stage,
            progress=progress,
            segment=asdict(event.segment) if event.segment is not None else None,
            language=event.language.language if event.language is not None else None,
            language_probability=round(event.language.probability, 4) if event.language is not None else None,
            duration=event.duration,
        )

    def to_pipeline(self) -> PipelineEvent:
        """Inverse of :meth:`from_pipeline` (for the sync endpoints, which speak pipeline events)."""
        segment = None
        if self.segment:
            words = [Word(**w) for w in self.segment.get("words", [])]
            segment = Segment(**{**self.segment, "words": words})
        language = (
            LanguageGuess(self.language, self.language_probability if self.language_probability is not None else 1.0)
            if self.language
            else None
        )
        return PipelineEvent(
            self.type,
            self.stage,  # type: ignore[arg-type]  # stored events carry one of the pipeline's stage names
            self.progress / 100.0,
            segment=segment,
            language=language,
            duration=self.duration,
        )


JobEvent: TypeAlias = StateEvent | ProgressEvent | FinishedEvent
"""Any event of a job's log."""


def event_from_dict(data: dict[str, Any]) -> JobEvent:
    """Inverse of ``event.to_dict()``.

    Raises:
        ValueError: ``data`` is not a job event.
    """
    kind = data.get("type")
    if kind == "state":
        return StateEvent(job=dict(data.get("job") or {}))
    if kind in ("done", "failed", "cancelled"):
        return FinishedEvent(type=kind, job=dict(data.get("job") or {}))
    if kind in ("stage", "language", "segment"):
        return ProgressEvent(
            type=kind,
            stage=str(data.get("stage") or ""),
            progress=float(data.get("progress", 0.0)),
            segment=data.get("segment"),
            language=data.get("language"),
            language_probability=data.get("language_probability"),
            duration=data.get("duration"),
        )
    raise ValueError(f"not a job event: {kind!r}")
