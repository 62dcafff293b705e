"""WebVTT (``.vtt``) subtitles."""

from __future__ import annotations

from auricle.engine.formats._common import cues, timestamp
from auricle.engine.types import Transcript

__all__ = ["render_vtt"]

_HEADER = "WEBVTT\n\n"


def _escape(text: str) -> str:
    # WebVTT cue text is markup: "&" and "<" start entities and tags, and "-->" may not appear at all.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_vtt(transcript: Transcript) -> str:
    """Render a transcript as WebVTT subtitles.

    Each segment with text becomes one cue timed ``HH:MM:SS.mmm``. A speaker label, when present, becomes a
    voice tag: ``<v SPEAKER_00>text``.

    Args:
        transcript: the transcript to render.

    Returns:
        The WebVTT document; just ``"WEBVTT\\n\\n"`` when there is nothing to show.
    """
    blocks = [_HEADER]
    for segment, lines in cues(transcript):
        escaped = [_escape(line) for line in lines]
        if segment.speaker:
            escaped[0] = f"<v {_escape(segment.speaker)}>{escaped[0]}"
        times = f"{timestamp(segment.start, '.')} --> {timestamp(segment.end, '.')}"
        blocks.append("\n".join([times, *escaped]) + "\n\n")
    return "".join(blocks)
