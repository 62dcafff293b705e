"""Tab-separated values, as openai-whisper's ``tsv`` writer produces them (times in integer milliseconds)."""

from __future__ import annotations

from auricle.engine.formats._common import cues, has_speakers, milliseconds
from auricle.engine.types import Transcript

__all__ = ["render_tsv"]


def _cell(text: str) -> str:
    # A tab or newline inside a cell would shift or split the row.
    return " ".join(text.replace("\t", " ").split())


def render_tsv(transcript: Transcript) -> str:
    """Render a transcript as TSV: ``start``, ``end``, ``text`` and, if any segment has one, ``speaker``.

    Times are integer milliseconds. Tabs and line breaks inside text become spaces. Segments without text are
    left out.

    Args:
        transcript: the transcript to render.

    Returns:
        The TSV document, header included, each row ending in a newline; only the header when there is nothing
        to show.
    """
    with_speaker = has_speakers(transcript)
    header = ["start", "end", "text", "speaker"] if with_speaker else ["start", "end", "text"]
    rows = ["\t".join(header)]
    for segment, lines in cues(transcript):
        row = [str(milliseconds(segment.start)), str(milliseconds(segment.end)), _cell(" ".join(lines))]
        if with_speaker:
            row.append(_cell(segment.speaker or ""))
        rows.append("\t".join(row))
    return "\n".join(rows) + "\n"
