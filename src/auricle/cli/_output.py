"""Writing command output: to a text stream, never with ``print``."""

from __future__ import annotations

import sys
from typing import TextIO

__all__ = ["OUTPUTS", "out"]

OUTPUTS = ("text", "json", "srt", "vtt", "tsv", "verbose_json")
"""Transcript formats the commands can write."""


def out(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` and a newline (unless it ends with one) to ``stream`` (stdout by default)."""
    (stream or sys.stdout).write(text if text.endswith("\n") else text + "\n")
