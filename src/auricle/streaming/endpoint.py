"""WebSocket ``/transcribe``: session limits and the read loop (``api.auth`` checks API keys before the upgrade).

The contract is summarised in :mod:`auricle.streaming`; message handling lives in :mod:`auricle.streaming.handlers`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial
from typing import Any

from fastapi import APIRouter
from starlette.websockets import WebSocket

from auricle.streaming import protocol
from auricle.streaming.handlers import Connection, handle_audio
from auricle.streaming.hub import StreamingHub
from auricle.streaming.protocol import INVALID_MESSAGE, SESSION_LIMIT, ProtocolError
from auricle.streaming.reader import admitted, read_loop, serve

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(tags=["streaming"])

SUBPROTOCOL = "auricle"
"""The WebSocket subprotocol selected when a client offers it (browsers sending a key do)."""
_WIND_DOWN_S = 60.0  # longest wait for the final results of a session the server ends


@router.websocket("/transcribe")
async def transcribe(websocket: WebSocket) -> None:
    """Streaming speech recognition (see :mod:`auricle.streaming` for the protocol)."""
    # The API key was checked before the handshake reached this route (api.auth, for http and websocket alike).
    hub: StreamingHub = websocket.app.state.streaming
    if not await admitted(websocket, hub, "transcribe", SUBPROTOCOL, SESSION_LIMIT, partial(protocol.error, None)):
        return
    conn = Connection(websocket, hub)

    def unregister() -> None:
        if conn.session is not None:
            hub.scheduler.unregister(conn.session)

    await serve(
        conn,
        "transcribe",
        lambda: read_loop(
            conn,
            busy=lambda: conn.session is not None and conn.session.ending,
            wind_down=lambda code, reason: _wind_down(conn, code, reason),
            handle=lambda message, finished: _handle_frame(conn, message, finished),
        ),
        unregister,
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
