"""Response headers built from client input: ``Content-Disposition`` from an upload's name (RFC 6266)."""

from __future__ import annotations

import unicodedata
from pathlib import PurePosixPath
from urllib.parse import quote

__all__ = ["content_disposition", "safe_filename"]

_MAX_NAME = 180


def safe_filename(name: str | None, fallback: str = "audio") -> str:
    """The last path part of a client's filename with control characters, quotes, backslashes and semicolons
    removed (so it can neither inject header parameters nor a line), at most 180 characters."""
    base = PurePosixPath((name or "").replace("\\", "/")).name
    kept = "".join(
        ch for ch in base if ch not in '"\\;' and not unicodedata.category(ch).startswith(("C", "Z")) or ch == " "
    )
    kept = kept.strip(" .")[:_MAX_NAME]
    return kept or fallback


def content_disposition(kind: str, filename: str | None, fallback: str = "audio") -> str:
    """``kind; filename="<name>"``, plus ``filename*=UTF-8''<percent-encoded name>`` (RFC 6266 and 5987) when the
    name is not plain ASCII (``filename`` then holds an ASCII stand-in)."""
    name = safe_filename(filename, fallback)
    ascii_name = "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in name)
    if ascii_name == name:
        return f'{kind}; filename="{name}"'
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(name, safe='')}"
