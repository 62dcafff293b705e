"""WebSocket ``/v1/realtime?intent=transcription``: OpenAI's Realtime API for transcription sessions.

Authentication, the session limit, frame size, idle timeout, session duration and metrics are those of
``/transcribe`` (the same settings and counters); the events are in :mod:`auricle.streaming.realtime_protocol`
and the session logic in :mod:`auricle.streaming.realtime`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter
from starlette.responses import JSONResponse
from starlette.websockets import WebSocket

from auricle import metrics
from auricle.errors import AuricleError
from auricle.streaming.hub import StreamingHub
from auricle.streaming.reader import admitted, read_loop, serve
from auricle.streaming.realtime import RealtimeConnection
from auricle.streaming.realtime_protocol import RealtimeError, error_event

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streaming"])

SUBPROTOCOL = "realtime"
"""The subprotocol selected when a client offers it (browsers following OpenAI's examples do)."""


async def _deny(websocket: WebSocket, status: int, message: str) -> None:
    """Refuse the upgrade with an HTTP status in OpenAI's error shape, or close before accepting."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        body = {"error": {"type": "invalid_request_error", "code": None, "message": message, "param": None}}
        await websocket.send_denial_response(JSONResponse(body, status_code=status))
    else:
        await websocket.close(code=1008, reason=message)


@router.websocket("/v1/realtime")
async def realtime(websocket: WebSocket) -> None:
    """OpenAI Realtime transcription sessions (``intent=transcription``) on the streaming recognizer."""
    # The API key was checked before the handshake reached this route (api.auth, for http and websocket alike).
    intent = websocket.query_params.get("intent", "transcription")
    if intent != "transcription":
        await _deny(websocket, 400, f"intent '{intent[:64]}' is not served; use intent=transcription")
        return
    hub: StreamingHub = websocket.app.state.streaming
    if not await admitted(websocket, hub, "realtime", SUBPROTOCOL, "session_limit", _limit_error):
        return
    try:
        conn = RealtimeConnection(websocket, hub, _url_model(hub, websocket.query_params.get("model")))
    except RealtimeError as exc:  # the server's default model is missing
        await websocket.send_json(error_event(exc))
        await websocket.close(code=1011, reason="no model")
        metrics.STREAM_CONNECTIONS.labels("realtime", "no_model").inc()
        return

    async def run() -> None:
        conn.open()
        await read_loop(
            conn,
            busy=lambda: conn.busy,
            wind_down=conn.wind_down,
            handle=lambda message, finished: _handle_frame(conn, message, finished),
        )

    await serve(conn, "realtime", run, conn.close_segments)


def _limit_error(code: str, text: str) -> dict[str, Any]:
    return error_event(RealtimeError(code, text))


def _url_model(hub: StreamingHub, name: str | None) -> str | None:
    """The model named in the URL when it is a transcription model Auricle has (``gpt-realtime`` … are not)."""
    if not name:
        return None
    with contextlib.suppress(AuricleError):
        hub.runtime.registry.info(hub.runtime.registry.canonical(name))
        return name
    return None


async def _handle_frame(conn: RealtimeConnection, message: dict[str, Any], finished: asyncio.Task[Any]) -> None:
    max_bytes = conn.hub.settings.streaming.max_frame_bytes
    text: str | None = message.get("text")
    try:
        if text is None:
            if message.get("bytes") is not None:
                raise RealtimeError("invalid_value", "binary frames are not events; send input_audio_buffer.append")
            return
        if len(text) > max_bytes:
            raise RealtimeError("invalid_value", f"event of {len(text)} bytes is over the {max_bytes}-byte limit")
        handling = asyncio.create_task(conn.dispatch_text(text))
        # An append may wait for buffer room; stop waiting if the connection ends meanwhile.
        await asyncio.wait({handling, finished}, return_when=asyncio.FIRST_COMPLETED)
        if not handling.done():
            handling.cancel()
        else:
            handling.result()
    except RealtimeError as exc:
        conn.reject(exc)
