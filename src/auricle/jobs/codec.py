"""The error codec: a worker stores a domain error as ``(code, message, param)``; the sync API rebuilds it.

The code is the class name in :mod:`auricle.errors` (what older versions stored as ``error_type``). Rebuilding
goes through a registry of code -> builder, so each class is made through its own constructor, and a class whose
constructor does not take ``(message, param=...)`` has its own builder below. Attributes other than the message
and the parameter (e.g. :attr:`QueueFullError.retry_after_s`) are not stored; they take their defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from auricle import errors

__all__ = ["ErrorInfo", "decode_error", "encode_error", "error_classes"]

_DECODE_PREFIX = "failed to decode audio: "


class ErrorInfo(NamedTuple):
    """A stored error. ``code`` is None for an internal (non-domain) error."""

    code: str | None
    message: str
    param: str | None = None


def error_classes() -> list[type[errors.AuricleError]]:
    """:class:`~auricle.errors.AuricleError` and all its subclasses, root first."""
    found: list[type[errors.AuricleError]] = [errors.AuricleError]
    for cls in found:
        found.extend(sub for sub in cls.__subclasses__() if sub not in found)
    return found


def _audio_decode(message: str, param: str | None) -> errors.AuricleError:
    # AudioDecodeError adds its fixed prefix (clients match on it) and always names the ``file`` parameter.
    return errors.AudioDecodeError(message.removeprefix(_DECODE_PREFIX))


def _queue_full(message: str, param: str | None) -> errors.AuricleError:
    exc = errors.QueueFullError(message)
    exc.param = param
    return exc


_BUILDERS: dict[str, Callable[[str, str | None], errors.AuricleError]] = {
    "AudioDecodeError": _audio_decode,
    "QueueFullError": _queue_full,
}


def encode_error(exc: BaseException) -> ErrorInfo:
    """The stored form of ``exc``: a domain error keeps its class, message and parameter; anything else becomes
    an internal error naming its type."""
    if isinstance(exc, errors.AuricleError):
        return ErrorInfo(type(exc).__name__, exc.message, exc.param)
    return ErrorInfo(None, f"internal error: {type(exc).__name__}: {exc}")


def decode_error(info: ErrorInfo) -> errors.AuricleError:
    """The domain error ``info`` was made from (an :class:`~auricle.errors.AuricleError` for unknown codes)."""
    builder = _BUILDERS.get(info.code or "")
    if builder is not None:
        return builder(info.message, info.param)
    cls = next((c for c in error_classes() if c.__name__ == info.code), errors.AuricleError)
    return cls(info.message, param=info.param)
