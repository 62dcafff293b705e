"""WebSocket ``/transcribe``: session limits and the read loop (``api.auth`` checks API keys before the upgrade).

The contract is summarised in :mod:`auricle.streaming`; message handling lives in :mod:`auricle.streaming.handlers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fastapi import APIRouter
from starlette.websockets import WebSocket, WebSocketState

from auricle import metrics
from auricle.streaming import protocol
from auricle.streaming.handlers import Connection, handle_audio
from auricle.streaming.hub import StreamingHub
from auricle.streaming.protocol import INVALID_MESSAGE, SESSION_LIMIT, ProtocolError
from auricle.streaming.reader import read_loop

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streaming"])

_FLUSH_TIMEOUT_S = 5.0
SUBPROTOCOL = "auricle"
"""The WebSocket subprotocol selected when a client offers it (browsers sending a key do)."""
_WIND_DOWN_S = 60.0  # longest wait for the final results of a session the server ends


@router.websocket("/transcribe")
async def transcribe(websocket: WebSocket) -> None:
    """Streaming speech recognition (see :mod:`auricle.streaming` for the protocol)."""
    app = websocket.app
    # The API key was checked before the handshake reached this route (api.auth, for http and websocket alike).
    hub: StreamingHub = app.state.streaming
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    if hub.draining.is_set():
        metrics.STREAM_ERRORS.labels(SESSION_LIMIT).inc()
        await websocket.send_json(protocol.error(None, SESSION_LIMIT, "the server is shutting down; reconnect"))
        await websocket.close(code=1013, reason="server shutting down")
        metrics.STREAM_CONNECTIONS.labels("transcribe", "draining").inc()
        return
    if hub.active >= hub.settings.streaming.session_limit:
        metrics.STREAM_ERRORS.labels(SESSION_LIMIT).inc()
        await websocket.send_json(protocol.error(None, SESSION_LIMIT, "too many concurrent sessions"))
        await websocket.close(code=1013, reason="session limit")
        metrics.STREAM_CONNECTIONS.labels("transcribe", "session_limit").inc()
        return
    hub.active += 1
    metrics.STREAM_SESSIONS.inc()
    metrics.STREAM_CONNECTIONS.labels("transcribe", "accepted").inc()
    metrics.STREAM_SESSIONS_OPENED.labels("transcribe").inc()
    conn = Connection(websocket, hub)
    writer = asyncio.create_task(conn.write_loop())
    try:
        await read_loop(
            conn,
            busy=lambda: conn.session is not None and conn.session.ending,
            wind_down=lambda code, reason: _wind_down(conn, code, reason),
            handle=lambda message, finished: _handle_frame(conn, message, finished),
        )
    except Exception:
        logger.exception("stream %s: connection failed", conn.session_id)
        conn.finish(1011, "internal error")
    finally:
        hub.active -= 1
        metrics.STREAM_SESSIONS.dec()
        metrics.STREAM_SESSIONS_CLOSED.labels("transcribe", conn.close_reason or "completed").inc()
        if conn.session is not None:
            hub.scheduler.unregister(conn.session)
        conn.outbox.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(writer, _FLUSH_TIMEOUT_S)
        writer.cancel()
        if websocket.application_state == WebSocketState.CONNECTED:
            # Bounded: a client that stopped reading may never take the close frame either.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    websocket.close(code=conn.close_code, reason=conn.close_reason), _FLUSH_TIMEOUT_S
                )


async def _wind_down(conn: Connection, code: int, reason: str) -> None:
    """End a session the server stops (idle, too long) as ``speech.end`` would: what was sent is recognised and the
    client gets the final phrase and checkpoint (to resume in a new session), then the close ``code``."""
    session = conn.session
    conn.close_code, conn.close_reason = code, reason
    if session is not None and not session.finished:
        logger.info("stream %s: %s, ending the session", session.id, reason)
        if not session.ending:
            session.end()
            conn.hub.scheduler.notify(session)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(conn.finished.wait(), _WIND_DOWN_S)
    conn.finish()


async def _handle_frame(conn: Connection, message: dict[str, Any], finished: asyncio.Task[Any]) -> None:
    max_bytes = conn.hub.settings.streaming.max_frame_bytes
    data: bytes | str | None = message.get("bytes")
    if data is None:
        data = message.get("text")
    if data is None:
        return
    try:
        if len(data) > max_bytes:
            raise ProtocolError(INVALID_MESSAGE, f"frame of {len(data)} bytes is over the {max_bytes}-byte limit")
        if isinstance(data, bytes):
            audio = asyncio.create_task(handle_audio(conn, data))
            # handle_audio may wait for buffer room; stop waiting if the session ends meanwhile.
            await asyncio.wait({audio, finished}, return_when=asyncio.FIRST_COMPLETED)
            if not audio.done():
                audio.cancel()
            else:
                audio.result()
        else:
            await conn.dispatch_text(data)
    except ProtocolError as exc:
        conn.error(exc.code, exc.message)
