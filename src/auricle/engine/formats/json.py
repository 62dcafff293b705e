"""The JSON shape of whisper-asr-webservice and WhisperX ASR services.

::

    {"text", "language", "language_probability", "segments": [{"id", "start", "end", "text", "words": [...],
     "speaker"?, "avg_logprob",
     "no_speech_prob", "temperature", "compression_ratio", "tokens"}], "word_segments": [...],
     "speaker_embeddings"?}

This module is ``formats/json.py``; with absolute imports its ``import json`` is still the standard library.
"""

from __future__ import annotations

import json
from typing import Any

from auricle.engine.formats._common import round_score, round_time
from auricle.engine.types import Segment, Transcript, Word

__all__ = ["render_json", "to_asr_json"]


def _word(word: Word) -> dict[str, Any]:
    out: dict[str, Any] = {
        "start": round_time(word.start),
        "end": round_time(word.end),
        "word": word.word,
        "probability": round_score(word.probability),
        # WhisperX ASR services name the same figure `score`; clients written for them read that key.
        "score": round_score(word.probability),
    }
    if word.speaker:
        out["speaker"] = word.speaker
    return out


def _segment(segment: Segment) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": segment.id,
        "start": round_time(segment.start),
        "end": round_time(segment.end),
        "text": segment.text,
        "words": [_word(w) for w in segment.words],
    }
    if segment.speaker:
        out["speaker"] = segment.speaker
    out.update(
        avg_logprob=round_score(segment.avg_logprob),
        no_speech_prob=round_score(segment.no_speech_prob),
        temperature=round_score(segment.temperature),
        compression_ratio=round_score(segment.compression_ratio),
        tokens=list(segment.tokens),
    )
    return out


def to_asr_json(transcript: Transcript, *, text_as_segments: bool = False) -> dict[str, Any]:
    """Build the whisper-asr-webservice / WhisperX response body.

    Times are seconds rounded to milliseconds; scores are rounded to 4 decimals, and a non-finite score becomes
    None. ``speaker`` keys appear only on segments and words that have one, and ``speaker_embeddings`` only when
    the transcript has them. Segment and word text is kept exactly as recognised (Whisper's leading spaces
    included).

    Args:
        transcript: the transcript to render.
        text_as_segments: ``text`` holds the segment list, as WhisperX ASR services answer, instead of a string.

    Returns:
        A JSON-serialisable dict.
    """
    segments = [_segment(s) for s in transcript.segments]
    out: dict[str, Any] = {
        "text": segments if text_as_segments else transcript.text,
        "language": transcript.language,
        "language_probability": round_score(transcript.language_probability),
        "segments": segments,
        "word_segments": [_word(w) for w in transcript.words],
    }
    if transcript.speaker_embeddings:
        out["speaker_embeddings"] = {k: list(v) for k, v in transcript.speaker_embeddings.items()}
    return out


def render_json(transcript: Transcript, *, indent: int | None = None) -> str:
    """Serialise :func:`to_asr_json` as UTF-8-ready text, non-ASCII characters kept as they are.

    Args:
        transcript: the transcript to render.
        indent: spaces per indentation level, or None for a compact single line.

    Returns:
        The JSON document.
    """
    return json.dumps(to_asr_json(transcript), ensure_ascii=False, indent=indent, allow_nan=False)
