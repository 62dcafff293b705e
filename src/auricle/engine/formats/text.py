"""Plain text."""

from __future__ import annotations

from itertools import groupby

from auricle.engine.formats._common import has_speakers
from auricle.engine.types import Transcript

__all__ = ["render_text"]


def render_text(transcript: Transcript) -> str:
    """Render a transcript as plain text.

    Without speakers this is the whole text on one line. With speakers there is one line per speaker turn,
    ``SPEAKER_00: text``, consecutive segments of the same speaker joined; a segment without a speaker gets a
    line of its own text, unprefixed.

    Args:
        transcript: the transcript to render.

    Returns:
        The text ending in a newline, or an empty string when there is no text.
    """
    if not has_speakers(transcript):
        text = transcript.text
        return f"{text}\n" if text else ""
    # Drop silent segments first so they cannot split one speaker's turn in two.
    spoken = [s for s in transcript.segments if s.text.strip()]
    lines = []
    for speaker, turn in groupby(spoken, key=lambda s: s.speaker or None):
        text = " ".join(" ".join(s.text.split()) for s in turn)
        lines.append(f"{speaker}: {text}" if speaker else text)
    return "".join(f"{line}\n" for line in lines)
