"""OpenAI's ``verbose_json`` and ``diarized_json`` response shapes."""

from __future__ import annotations

import json
from typing import Any

from auricle.engine.formats._common import round_score, round_time
from auricle.engine.languages import language_name
from auricle.engine.types import Segment, Transcript

__all__ = ["render_diarized_json", "render_verbose_json", "to_diarized_json", "to_verbose_json"]

UNKNOWN_SPEAKER = "unknown"
"""Speaker label for diarized_json segments that have none (OpenAI's shape always carries one)."""


def _segment(segment: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": segment.id,
        # Whisper's seek is the window's start in 10 ms mel frames; we keep no window, so derive it from the start.
        "seek": int(max(segment.start, 0.0) * 100),
        "start": round_time(segment.start),
        "end": round_time(segment.end),
        "text": segment.text,
        "tokens": list(segment.tokens),
        "temperature": round_score(segment.temperature),
        "avg_logprob": round_score(segment.avg_logprob),
        "compression_ratio": round_score(segment.compression_ratio),
        "no_speech_prob": round_score(segment.no_speech_prob),
    }
    if segment.speaker:
        out["speaker"] = segment.speaker
    return out


def to_verbose_json(
    transcript: Transcript,
    include_words: bool = True,
    include_segments: bool = True,
) -> dict[str, Any]:
    """Build OpenAI's ``verbose_json`` transcription body.

    ``language`` is the lowercase English name (``"english"``), as OpenAI reports it. Segments carry ``speaker``
    when they have one.

    Args:
        transcript: the transcript to render.
        include_words: add ``words`` (``word``, ``start``, ``end``) when the transcript has word timings.
        include_segments: add ``segments``.

    Returns:
        A JSON-serialisable dict.
    """
    out: dict[str, Any] = {
        "task": transcript.task,
        "language": language_name(transcript.language),
        "language_probability": round_score(transcript.language_probability),
        "duration": round_time(transcript.duration),
        "text": transcript.text,
    }
    if include_segments:
        out["segments"] = [_segment(s) for s in transcript.segments]
    words = transcript.words
    if include_words and words:
        out["words"] = [{"word": w.word.strip(), "start": round_time(w.start), "end": round_time(w.end)} for w in words]
    return out


def to_diarized_json(transcript: Transcript) -> dict[str, Any]:
    """Build OpenAI's ``diarized_json`` transcription body.

    Segments without text are left out; a segment without a speaker is labelled ``"unknown"``.

    Args:
        transcript: the transcript to render.

    Returns:
        A JSON-serialisable dict with ``task``, ``duration``, ``text`` and ``segments`` of type
        ``transcript.text.segment`` with ids ``seg_0``, ``seg_1``...
    """
    spoken = [s for s in transcript.segments if s.text.strip()]
    return {
        "task": transcript.task,
        "duration": round_time(transcript.duration),
        "text": transcript.text,
        "segments": [
            {
                "type": "transcript.text.segment",
                "id": f"seg_{i}",
                "start": round_time(s.start),
                "end": round_time(s.end),
                "text": s.text.strip(),
                "speaker": s.speaker or UNKNOWN_SPEAKER,
            }
            for i, s in enumerate(spoken)
        ],
    }


def render_verbose_json(
    transcript: Transcript,
    *,
    include_words: bool = True,
    include_segments: bool = True,
    indent: int | None = None,
) -> str:
    """Serialise :func:`to_verbose_json`, non-ASCII characters kept as they are.

    Args:
        transcript: the transcript to render.
        include_words: see :func:`to_verbose_json`.
        include_segments: see :func:`to_verbose_json`.
        indent: spaces per indentation level, or None for a compact single line.

    Returns:
        The JSON document.
    """
    body = to_verbose_json(transcript, include_words=include_words, include_segments=include_segments)
    return json.dumps(body, ensure_ascii=False, indent=indent, allow_nan=False)


def render_diarized_json(transcript: Transcript, *, indent: int | None = None) -> str:
    """Serialise :func:`to_diarized_json`, non-ASCII characters kept as they are.

    Args:
        transcript: the transcript to render.
        indent: spaces per indentation level, or None for a compact single line.

    Returns:
        The JSON document.
    """
    return json.dumps(to_diarized_json(transcript), ensure_ascii=False, indent=indent, allow_nan=False)
