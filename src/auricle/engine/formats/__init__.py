"""Pure renderers from a :class:`~auricle.engine.types.Transcript` to the output formats Auricle serves.

Every renderer is a plain function of the transcript, with no I/O, and renders an empty transcript as a valid
(empty) document. The HTTP layer picks the content type and file extension from :data:`MEDIA_TYPES` and
:data:`EXTENSIONS`; for the JSON formats it may call :func:`to_asr_json`, :func:`to_verbose_json` or
:func:`to_diarized_json` and serialise the dict itself.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from auricle.engine.formats.json import render_json, to_asr_json
from auricle.engine.formats.srt import render_srt
from auricle.engine.formats.text import render_text
from auricle.engine.formats.tsv import render_tsv
from auricle.engine.formats.verbose import (
    render_diarized_json,
    render_verbose_json,
    to_diarized_json,
    to_verbose_json,
)
from auricle.engine.formats.vtt import render_vtt
from auricle.engine.types import Transcript
from auricle.errors import InvalidRequestError

__all__ = [
    "EXTENSIONS",
    "FORMATS",
    "MEDIA_TYPES",
    "render",
    "render_diarized_json",
    "render_json",
    "render_srt",
    "render_text",
    "render_tsv",
    "render_verbose_json",
    "render_vtt",
    "to_asr_json",
    "to_diarized_json",
    "to_verbose_json",
]

_RENDERERS: dict[str, Callable[..., str]] = {
    "json": render_json,
    "text": render_text,
    "srt": render_srt,
    "vtt": render_vtt,
    "tsv": render_tsv,
    "verbose_json": render_verbose_json,
    "diarized_json": render_diarized_json,
}

FORMATS: tuple[str, ...] = tuple(_RENDERERS)
"""Every format name :func:`render` accepts."""

MEDIA_TYPES = MappingProxyType(
    {
        "json": "application/json",
        "text": "text/plain; charset=utf-8",
        "srt": "application/x-subrip; charset=utf-8",
        "vtt": "text/vtt; charset=utf-8",
        "tsv": "text/tab-separated-values; charset=utf-8",
        "verbose_json": "application/json",
        "diarized_json": "application/json",
    }
)
"""Format name -> HTTP ``Content-Type``."""

EXTENSIONS = MappingProxyType(
    {
        "json": "json",
        "text": "txt",
        "srt": "srt",
        "vtt": "vtt",
        "tsv": "tsv",
        "verbose_json": "json",
        "diarized_json": "json",
    }
)
"""Format name -> file extension, without the dot."""


def render(transcript: Transcript, fmt: str, **opts: Any) -> str:
    """Render a transcript in the named format.

    Args:
        transcript: the transcript to render.
        fmt: one of :data:`FORMATS`.
        **opts: passed to the format's renderer: ``indent`` for the JSON formats, ``include_words`` and
            ``include_segments`` for ``verbose_json``. The text and subtitle formats take none.

    Returns:
        The rendered document.

    Raises:
        InvalidRequestError: ``fmt`` is not a known format, or an option does not apply to it.
    """
    renderer = _RENDERERS.get(fmt)
    if renderer is None:
        raise InvalidRequestError(
            f"unsupported response format {fmt!r}; expected one of {', '.join(FORMATS)}", param="response_format"
        )
    # Check the options against the signature first, so a TypeError raised inside a renderer stays a bug.
    try:
        inspect.signature(renderer).bind(transcript, **opts)
    except TypeError as exc:
        raise InvalidRequestError(f"format {fmt!r} does not take option(s) {', '.join(sorted(opts))}") from exc
    return renderer(transcript, **opts)
