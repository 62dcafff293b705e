"""Writing command output: to a text stream, never with ``print``."""

from __future__ import annotations

import json
import sys
from typing import TextIO

__all__ = ["OUTPUTS", "out", "server_error_detail"]

OUTPUTS = ("text", "json", "srt", "vtt", "tsv", "verbose_json")
"""Transcript formats the commands can write."""


def out(text: str, stream: TextIO | None = None) -> None:
    """Write ``text`` and a newline (unless it ends with one) to ``stream`` (stdout by default)."""
    (stream or sys.stdout).write(text if text.endswith("\n") else text + "\n")


def server_error_detail(body: bytes) -> str | None:
    """The message of a server's error answer: ``{"error": {"message": ...}}`` (OpenAI-style routes) or
    ``{"detail": ...}`` (the others, and refused WebSocket handshakes); None when the body has neither."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    detail = error.get("message") if isinstance(error, dict) else data.get("detail")
    return str(detail) if detail else None
