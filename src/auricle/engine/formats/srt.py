"""SubRip (``.srt``) subtitles."""

from __future__ import annotations

from auricle.engine.formats._common import cues, timestamp
from auricle.engine.types import Transcript

__all__ = ["render_srt"]


def render_srt(transcript: Transcript) -> str:
    """Render a transcript as SubRip subtitles.

    Each segment with text becomes one cue, numbered from 1, timed ``HH:MM:SS,mmm``. A speaker label, when
    present, prefixes the cue as ``[SPEAKER_00] ``.

    Args:
        transcript: the transcript to render.

    Returns:
        The SRT document; an empty string when there is nothing to show.
    """
    blocks = []
    for index, (segment, lines) in enumerate(cues(transcript), start=1):
        if segment.speaker:
            lines[0] = f"[{segment.speaker}] {lines[0]}"
        times = f"{timestamp(segment.start, ',')} --> {timestamp(segment.end, ',')}"
        blocks.append("\n".join([str(index), times, *lines]) + "\n\n")
    return "".join(blocks)
