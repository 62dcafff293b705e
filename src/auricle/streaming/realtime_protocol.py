"""Events of OpenAI's Realtime API, transcription sessions, as the official SDK's types define them
(``openai/types/realtime/``): the session configuration, the client events Auricle accepts, server event builders
and OpenAI's error shape, plus G.711 decoding for ``audio/pcmu`` and ``audio/pcma`` input.

Client events are parsed with :func:`parse_client_event`; every malformed input raises :class:`RealtimeError`,
which the connection turns into an ``error`` event while the session keeps working.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

__all__ = [
    "AppendEvent",
    "ClearEvent",
    "ClientEvent",
    "CommitEvent",
    "RealtimeError",
    "SessionConfig",
    "SessionUpdateEvent",
    "decode_g711",
    "error_event",
    "new_id",
    "parse_client_event",
    "server_event",
]

PCM_RATE = 24_000
"""The sample rate OpenAI's ``audio/pcm`` format has (other rates are accepted too)."""
G711_RATE = 8_000
LOGPROBS = "item.input_audio_transcription.logprobs"


class RealtimeError(Exception):
    """Raised when a client event breaks the contract; becomes an ``error`` event (``invalid_request_error``).

    Args:
        code: OpenAI's error code, e.g. ``invalid_value`` or ``input_audio_buffer_commit_empty``.
        message: human-readable explanation.
        param: the offending field, dotted (``session.audio.input.format``), if any.
        event_id: the client event's ``event_id``, if it had one.
    """

    def __init__(self, code: str, message: str, param: str | None = None, event_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param
        self.event_id = event_id


# -- session configuration ------------------------------------------------------------------------------------------


class _Lenient(BaseModel):
    # Fields of OpenAI's types Auricle does not use (create_response, delay, keywords ...) are ignored.
    model_config = ConfigDict(extra="ignore")


class PcmFormat(_Lenient):
    """``audio/pcm``: 16-bit little-endian mono; OpenAI only has 24 kHz, Auricle resamples any rate."""

    type: Literal["audio/pcm"] = "audio/pcm"
    rate: int = Field(PCM_RATE, ge=8000, le=96000)


class PcmuFormat(_Lenient):
    """``audio/pcmu``: G.711 mu-law at 8 kHz."""

    type: Literal["audio/pcmu"]


class PcmaFormat(_Lenient):
    """``audio/pcma``: G.711 A-law at 8 kHz."""

    type: Literal["audio/pcma"]


AudioFormat = Annotated[PcmFormat | PcmuFormat | PcmaFormat, Field(discriminator="type")]


class Transcription(_Lenient):
    """``audio.input.transcription``: model (Auricle's names; OpenAI's mean the default), language, prompt."""

    model: str | None = Field(None, max_length=128)
    language: str | None = Field(None, max_length=16)
    prompt: str | None = Field(None, max_length=4096)


class ServerVad(_Lenient):
    """``audio.input.turn_detection``: the server commits at the end of each stretch of speech.

    ``semantic_vad`` is accepted and served as ``server_vad``.
    """

    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float = Field(0.5, ge=0.0, le=1.0)
    prefix_padding_ms: int = Field(300, ge=0, le=10_000)
    silence_duration_ms: int = Field(500, ge=0, le=10_000)


class AudioInput(_Lenient):
    """``audio.input`` of a transcription session."""

    format: AudioFormat = Field(default_factory=PcmFormat)
    transcription: Transcription = Field(default_factory=Transcription)
    turn_detection: ServerVad | None = Field(default_factory=ServerVad)
    noise_reduction: dict[str, Any] | None = None
    """Accepted and reported back; Auricle applies no noise reduction."""


class SessionConfig(_Lenient):
    """The transcription session as ``session.created`` and ``session.updated`` report it."""

    type: Literal["transcription"] = "transcription"
    audio_input: AudioInput = Field(default_factory=AudioInput)
    include: list[Literal["item.input_audio_transcription.logprobs"]] = Field(default_factory=list)

    @property
    def server_vad(self) -> ServerVad | None:
        """The turn detection in force (None: the client commits)."""
        return self.audio_input.turn_detection

    def updated(self, session: dict[str, Any]) -> SessionConfig:
        """This configuration with the fields present in a ``session.update`` replaced (OpenAI's merge rule).

        Raises:
            RealtimeError: ``invalid_value`` naming the first bad field.
        """
        if session.get("type", "transcription") != "transcription":
            raise RealtimeError(
                "invalid_value", "only transcription sessions are served (session.type 'transcription')", "session.type"
            )
        current = self.audio_input.model_dump()
        audio = session.get("audio") or {}
        given = audio.get("input") if isinstance(audio, dict) else None
        if given is not None and not isinstance(given, dict):
            raise RealtimeError("invalid_type", "session.audio.input must be an object", "session.audio.input")
        merged = {**current, **(given or {})}
        if isinstance(merged.get("format"), dict) and "type" not in merged["format"]:
            merged["format"] = {**merged["format"], "type": "audio/pcm"}
        include = session.get("include", self.include)
        try:
            return SessionConfig(audio_input=AudioInput.model_validate(merged), include=include or [])
        except ValidationError as exc:
            item = exc.errors()[0]
            where = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("audio/", "server_vad")))
            param = f"session.audio.input.{where}" if where and not where.startswith("include") else "session.include"
            raise RealtimeError("invalid_value", f"{param}: {item['msg']}", param) from None

    def describe(self, session_id: str, model: str) -> dict[str, Any]:
        """The session object of ``session.created`` / ``session.updated``."""
        audio_input = self.audio_input.model_dump()
        audio_input["transcription"]["model"] = self.audio_input.transcription.model or model
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "type": "transcription",
            "audio": {"input": audio_input},
            "include": list(self.include),
        }


# -- client events --------------------------------------------------------------------------------------------------


class _ClientEvent(BaseModel):
    event_id: str | None = Field(None, max_length=512)


class SessionUpdateEvent(_ClientEvent):
    """``session.update``: change the session configuration (only the fields present)."""

    type: Literal["session.update"]
    session: dict[str, Any]


class AppendEvent(_ClientEvent):
    """``input_audio_buffer.append``: base64 audio in the session's input format."""

    type: Literal["input_audio_buffer.append"]
    audio: str

    def audio_bytes(self) -> bytes:
        """The decoded audio.

        Raises:
            RealtimeError: ``invalid_value`` when ``audio`` is not base64.
        """
        try:
            return base64.b64decode(self.audio, validate=True)
        except (binascii.Error, ValueError):
            raise RealtimeError("invalid_value", "audio is not valid base64", "audio", self.event_id) from None


class CommitEvent(_ClientEvent):
    """``input_audio_buffer.commit``: the buffered audio becomes an item and is transcribed."""

    type: Literal["input_audio_buffer.commit"]


class ClearEvent(_ClientEvent):
    """``input_audio_buffer.clear``: drop the uncommitted audio."""

    type: Literal["input_audio_buffer.clear"]


ClientEvent = Annotated[SessionUpdateEvent | AppendEvent | CommitEvent | ClearEvent, Field(discriminator="type")]
_ADAPTER: TypeAdapter[SessionUpdateEvent | AppendEvent | CommitEvent | ClearEvent] = TypeAdapter(ClientEvent)
CLIENT_TYPES = ("session.update", "input_audio_buffer.append", "input_audio_buffer.commit", "input_audio_buffer.clear")


def parse_client_event(text: str) -> SessionUpdateEvent | AppendEvent | CommitEvent | ClearEvent:
    """Parse one text frame.

    Raises:
        RealtimeError: for bad JSON, a missing or unknown ``type``, or invalid fields.
    """
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise RealtimeError("invalid_json", f"the event is not valid JSON: {getattr(exc, 'msg', exc)}") from None
    except RecursionError:
        raise RealtimeError("invalid_json", "the event is not valid JSON: nested too deeply") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise RealtimeError("invalid_json", "the event is not valid JSON: a number is too long") from None
    if not isinstance(data, dict):
        raise RealtimeError("invalid_json", "an event must be a JSON object with a 'type'")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    kind = data.get("type")
    if not isinstance(kind, str):
        raise RealtimeError("missing_required_parameter", "missing 'type'", "type", event_id)
    if kind not in CLIENT_TYPES:
        raise RealtimeError(
            "invalid_value",
            f"unknown or unsupported event type '{kind[:64]}' in a transcription session",
            "type",
            event_id,
        )
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        item = exc.errors()[0]
        param = ".".join(str(p) for p in item["loc"][1:]) or None
        raise RealtimeError("invalid_value", f"invalid {kind}: {param}: {item['msg']}", param, event_id) from None


# -- server events --------------------------------------------------------------------------------------------------


def new_id(prefix: str) -> str:
    """An id in OpenAI's style (``event_…``, ``item_…``, ``sess_…``)."""
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def server_event(kind: str, **fields: Any) -> dict[str, Any]:
    """A server event with a fresh ``event_id``."""
    return {"type": kind, "event_id": new_id("event"), **fields}


def error_event(error: RealtimeError) -> dict[str, Any]:
    """``error`` in OpenAI's shape."""
    return server_event(
        "error",
        error={
            "type": "invalid_request_error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
            "event_id": error.event_id,
        },
    )


# -- G.711 ------------------------------------------------------------------------------------------------------------


def _ulaw_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = ((((codes & 0x0F) << 3) + 0x84) << exponent) - 0x84
    return np.where(codes & 0x80, -magnitude, magnitude).astype("<i2")


def _alaw_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(codes & 0x80, magnitude, -magnitude).astype("<i2")


_G711 = {"audio/pcmu": _ulaw_table(), "audio/pcma": _alaw_table()}


def decode_g711(data: bytes, kind: str) -> bytes:
    """G.711 bytes (``audio/pcmu`` or ``audio/pcma``) as 16-bit little-endian PCM at 8 kHz."""
    return _G711[kind][np.frombuffer(data, dtype=np.uint8)].tobytes()
