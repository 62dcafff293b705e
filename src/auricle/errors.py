"""The error tree of Auricle. Only ``api/errors.py`` maps these to HTTP statuses.

::

    AuricleError
    ├── InvalidRequestError        bad parameter value (400)
    │   ├── UnsupportedLanguageError
    │   └── UrlError               refused, unreachable or failing audio/webhook URL
    ├── AudioDecodeError           "failed to decode audio" (415/422)
    ├── TooLargeError              upload or duration over the limit (413)
    ├── ModelError
    │   ├── UnknownModelError      no such model (404)
    │   └── ModelUnavailableError  known but not present offline (503)
    ├── QueueFullError             no room to wait (503 with Retry-After)
    ├── NotReadyError              not ready to serve (503)
    │   └── DrainingError          shutting down: no new work taken (503 with Retry-After)
    ├── JobNotFoundError           unknown job id (404)
    ├── JobStateError              action not allowed in the job's state (409)
    └── CancelledError             work was cancelled
"""

from __future__ import annotations

__all__ = [
    "AudioDecodeError",
    "AuricleError",
    "CancelledError",
    "DrainingError",
    "InvalidRequestError",
    "JobNotFoundError",
    "JobStateError",
    "ModelError",
    "ModelUnavailableError",
    "NotReadyError",
    "QueueFullError",
    "TooLargeError",
    "UnknownModelError",
    "UnsupportedLanguageError",
    "UrlError",
]


class AuricleError(Exception):
    """Raised for any error Auricle reports to a user; the root of the tree."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidRequestError(AuricleError):
    """Raised when a request parameter has a value Auricle cannot use."""


class UnsupportedLanguageError(InvalidRequestError):
    """Raised when a language code is not one Whisper knows, or the model is English-only."""


class UrlError(InvalidRequestError):
    """Raised when an audio or webhook URL is refused by the address guard, unreachable, or answers an error."""


class AudioDecodeError(AuricleError):
    """Raised when input is empty, truncated, not audio, or a video without an audio stream.

    The message always contains "failed to decode audio": clients such as Speakr match on that phrase.
    """

    def __init__(self, detail: str) -> None:
        super().__init__(f"failed to decode audio: {detail}", param="file")


class TooLargeError(AuricleError):
    """Raised when an upload is larger, or audio longer, than the configured limit."""


class ModelError(AuricleError):
    """Raised when a model cannot be used."""


class UnknownModelError(ModelError):
    """Raised when a model name is neither known nor a model directory."""


class ModelUnavailableError(ModelError):
    """Raised when a known model is not available offline and downloads are not allowed."""


class QueueFullError(AuricleError):
    """Raised when no more work can wait for a worker."""

    def __init__(self, message: str, *, retry_after_s: int = 5) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class NotReadyError(AuricleError):
    """Raised when the server cannot serve yet (model loading, queue unreachable)."""

    def __init__(self, message: str, *, param: str | None = None, retry_after_s: int = 5) -> None:
        super().__init__(message, param=param)
        self.retry_after_s = retry_after_s


class DrainingError(NotReadyError):
    """Raised when new work arrives while the server drains before it stops (SIGTERM)."""


class JobNotFoundError(AuricleError):
    """Raised when a job id is unknown or expired."""


class JobStateError(AuricleError):
    """Raised when an action does not fit the job's state (e.g. result of an unfinished job)."""


class CancelledError(AuricleError):
    """Raised inside a running transcription when its job or client went away."""
