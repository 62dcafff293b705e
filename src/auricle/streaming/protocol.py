"""Messages of the WebSocket ``/transcribe`` protocol (summarised in :mod:`auricle.streaming`), as pydantic models
keyed by ``type``.

Client messages are parsed with :func:`parse_client_message`, which turns every malformed input into a
:class:`ProtocolError` carrying the error code the contract names. Server messages are built with
:func:`server_message`, which adds the ``session_id`` envelope field.

Checkpoint fields, as Auricle fills them:

- ``last_audio_ms``: session time up to which all audio is accounted for in ``full_transcript``; a resuming
  client sends its audio again from this point (it is always at a pause or a word boundary).
- ``last_text_offset``: a character offset into ``full_transcript`` (its length: the text confirmed so far), as
  OpenASR defines it.
- ``last_text_end_ms``: session time (ms) where the last confirmed word ends (an Auricle field; a resumed session
  starts confirming words after it, so none is repeated).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

__all__ = [
    "AUDIO_ERROR",
    "CLIENT_TYPES",
    "INVALID_MESSAGE",
    "INVALID_STATE",
    "RATE_LIMITED",
    "SESSION_LIMIT",
    "SESSION_NOT_FOUND",
    "BufferConfig",
    "Checkpoint",
    "ClientMessage",
    "ConfigPayload",
    "EndMessage",
    "ConfigMessage",
    "ProtocolError",
    "backpressure",
    "error",
    "hypothesis",
    "phrase",
    "parse_client_message",
    "server_message",
]

INVALID_MESSAGE = "INVALID_MESSAGE"
INVALID_STATE = "INVALID_STATE"
SESSION_LIMIT = "SESSION_LIMIT"
SESSION_NOT_FOUND = "SESSION_NOT_FOUND"
AUDIO_ERROR = "AUDIO_ERROR"
RATE_LIMITED = "RATE_LIMITED"

Encoding = Literal["pcm_s16le", "opus"]


class ProtocolError(Exception):
    """Raised when a client message or frame breaks the contract; ``code`` is the ``speech.error`` code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class BufferConfig(BaseModel):
    """The window settings a checkpoint carries."""

    window_duration_ms: int = Field(5000, ge=1000, le=60000)
    overlap_duration_ms: int = Field(500, ge=0)


class Checkpoint(BaseModel):
    """Everything a new session (on any node) needs to continue an earlier one."""

    session_id: str = Field(max_length=128)
    last_audio_ms: int = Field(ge=0)
    last_text_offset: int = Field(0, ge=0)
    last_text_end_ms: int | None = Field(None, ge=0)
    full_transcript: str = ""
    buffer_config: BufferConfig = Field(default_factory=BufferConfig)
    backend_model_id: str | None = Field(None, max_length=128)


class ConfigPayload(BaseModel):
    """``speech.config`` payload; unknown fields are ignored so newer clients keep working."""

    model_config = ConfigDict(extra="ignore")

    language: str | None = Field(None, max_length=16)
    """None: the server's ``streaming.language`` (``auto`` unless configured)."""
    sample_rate: int = Field(16000, ge=8000, le=96000)
    encoding: Encoding = "pcm_s16le"
    window_duration_ms: int = Field(5000, ge=1000, le=60000)
    overlap_duration_ms: int = Field(500, ge=0)
    model_id: str | None = Field(None, max_length=128)
    resume_checkpoint: Checkpoint | None = None

    @model_validator(mode="after")
    def _overlap_below_window(self) -> ConfigPayload:
        if self.overlap_duration_ms >= self.window_duration_ms:
            raise ValueError("overlap_duration_ms must be below window_duration_ms")
        return self


class ConfigMessage(BaseModel):
    """``speech.config``: opens the session."""

    type: Literal["speech.config"]
    payload: ConfigPayload = Field(default_factory=ConfigPayload)


class EndMessage(BaseModel):
    """``speech.end``: no more audio; flush and finish."""

    type: Literal["speech.end"]
    payload: dict[str, Any] | None = None


ClientMessage = Annotated[ConfigMessage | EndMessage, Field(discriminator="type")]
_CLIENT_ADAPTER: TypeAdapter[ConfigMessage | EndMessage] = TypeAdapter(ClientMessage)
CLIENT_TYPES = ("speech.config", "speech.end")


def _describe(error: ValidationError) -> str:
    parts = []
    for item in error.errors()[:3]:
        where = ".".join(str(p) for p in item["loc"] if p not in ("speech.config", "speech.end"))
        parts.append(f"{where}: {item['msg']}" if where else item["msg"])
    return "; ".join(parts)


def parse_client_message(text: str) -> ConfigMessage | EndMessage:
    """Parse one text frame.

    Raises:
        ProtocolError: ``INVALID_MESSAGE`` for bad JSON, a missing or unknown ``type``, or invalid payload fields.
    """
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProtocolError(INVALID_MESSAGE, f"not valid JSON: {exc.msg}") from None
    except UnicodeDecodeError as exc:
        raise ProtocolError(INVALID_MESSAGE, f"not valid JSON: {exc.reason}") from None
    except RecursionError:
        raise ProtocolError(INVALID_MESSAGE, "not valid JSON: nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise ProtocolError(INVALID_MESSAGE, "not valid JSON: a number is too long") from None
    if not isinstance(data, dict):
        raise ProtocolError(INVALID_MESSAGE, "a message must be a JSON object with 'type' and 'payload'")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError(INVALID_MESSAGE, "missing 'type'")
    if kind not in CLIENT_TYPES:
        raise ProtocolError(INVALID_MESSAGE, f"unknown message type '{kind[:64]}'")
    if data.get("payload") is None:
        data = {k: v for k, v in data.items() if k != "payload"}
    try:
        return _CLIENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise ProtocolError(INVALID_MESSAGE, f"invalid {kind}: {_describe(exc)}") from None


def server_message(kind: str, session_id: str | None, payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON envelope of every server message."""
    return {"type": kind, "session_id": session_id, "payload": payload}


def hypothesis(session_id: str, offset_ms: int, duration_ms: int, text: str) -> dict[str, Any]:
    """``speech.hypothesis``: interim text of the phrase being recognised."""
    return server_message("speech.hypothesis", session_id, {"offset": offset_ms, "duration": duration_ms, "text": text})


def phrase(
    session_id: str, offset_ms: int, duration_ms: int, text: str, confidence: float, status: str = "Success"
) -> dict[str, Any]:
    """``speech.phrase``: final text; ``status`` is ``Success`` or ``EndOfStream``."""
    payload = {
        "offset": offset_ms,
        "duration": duration_ms,
        "text": text,
        "confidence": round(confidence, 4),
        "status": status,
    }
    return server_message("speech.phrase", session_id, payload)


def error(session_id: str | None, code: str, message: str) -> dict[str, Any]:
    """``speech.error``."""
    return server_message("speech.error", session_id, {"code": code, "message": message})


def backpressure(session_id: str, action: Literal["slow_down", "ok"]) -> dict[str, Any]:
    """``speech.backpressure``."""
    return server_message("speech.backpressure", session_id, {"action": action})
