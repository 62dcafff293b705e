"""Helpers shared by the renderers: timestamps, rounding and cue text clean-up."""

from __future__ import annotations

import math
from collections.abc import Iterator

from auricle.engine.types import Segment, Transcript

__all__ = ["cue_lines", "cues", "has_speakers", "milliseconds", "round_score", "round_time", "timestamp"]


def milliseconds(seconds: float) -> int:
    """Whole milliseconds, never negative."""
    if not math.isfinite(seconds):
        return 0
    return max(0, round(seconds * 1000))


def timestamp(seconds: float, separator: str) -> str:
    """``HH:MM:SS<sep>mmm``; hours keep counting past 99 rather than wrapping."""
    ms = milliseconds(seconds)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def round_time(seconds: float) -> float:
    """Seconds rounded to the millisecond for JSON."""
    return milliseconds(seconds) / 1000


def round_score(value: float) -> float | None:
    """A probability or log-probability rounded for JSON; None when not finite, since JSON has no NaN or inf."""
    return round(value, 4) if math.isfinite(value) else None


def has_speakers(transcript: Transcript) -> bool:
    """Whether any segment carries a speaker label."""
    return any(s.speaker for s in transcript.segments)


def cue_lines(text: str) -> list[str]:
    """The non-blank, stripped lines of a segment's text: a blank line would end an SRT or VTT cue early."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def cues(transcript: Transcript) -> Iterator[tuple[Segment, list[str]]]:
    """Segments that have text, with their cleaned lines; silent segments would make empty cues."""
    for segment in transcript.segments:
        lines = cue_lines(segment.text)
        if lines:
            yield segment, lines
