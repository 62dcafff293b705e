"""The connection life both WebSocket endpoints share (``/transcribe`` and ``/v1/realtime``).

It owns what is the same for both protocols: refusing a connection while the server drains or is at its session
limit, the session's maximum duration, the idle timeout, the per-session message throttle, client disconnects,
the session gauges and counters, and the bounded teardown (flush the outbox, close the socket). What a frame means
and how a session ends gracefully are the endpoint's: it passes them in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketState

from auricle import metrics
from auricle.streaming.handlers import Connection
from auricle.streaming.hub import StreamingHub

__all__ = ["admitted", "read_loop", "serve"]

logger = logging.getLogger(__name__)

_FLUSH_TIMEOUT_S = 5.0

FrameHandler = Callable[[dict[str, Any], "asyncio.Task[Any]"], Awaitable[None]]


async def read_loop(
    conn: Connection,
    *,
    busy: Callable[[], bool],
    wind_down: Callable[[int, str], Awaitable[None]],
    handle: FrameHandler,
) -> None:
    """Receive frames until the client leaves, the connection ends, or a limit is reached.

    Args:
        conn: the connection.
        busy: whether results are being computed that the client may wait for in silence (no idle timeout then).
        wind_down: end the session as the client's own end would (final results, checkpoint), then close with the
            code and reason given.
        handle: handle one received frame; the task given along completes when the connection finishes.
    """
    limits = conn.hub.settings.streaming
    deadline = time.monotonic() + limits.max_session_s
    finished = asyncio.create_task(conn.finished.wait())
    draining = asyncio.create_task(conn.hub.draining.wait())
    receive: asyncio.Task[Any] | None = None
    try:
        while not conn.finished.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                await wind_down(1008, "maximum session duration reached")
                break
            if draining.done():
                # The server stops: final results and a checkpoint, then 1001 so the client resumes elsewhere.
                await wind_down(1001, "server shutting down")
                break
            waiting = busy()
            timeout = remaining if waiting else min(limits.idle_timeout_s, remaining)
            if receive is None:
                receive = asyncio.create_task(conn.websocket.receive())
            done, _ = await asyncio.wait(
                {receive, finished, draining}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if draining in done and receive not in done and not conn.finished.is_set():
                continue  # the loop's head winds the session down
            if not done and waiting:
                conn.finish(1008, "maximum session duration reached")  # the results did not come in time
                break
            if not done and time.monotonic() < deadline:
                await wind_down(1001, "idle timeout")
                break
            if not done:
                continue  # the session's time is up: the loop's head ends it
            if receive not in done:
                break
            message = receive.result()
            receive = None
            if message["type"] == "websocket.disconnect":
                conn.finish(1000, "client closed")
                break
            if conn.throttled():
                break
            await handle(message, finished)
    finally:
        if receive is not None:
            receive.cancel()
        finished.cancel()
        draining.cancel()


async def admitted(
    websocket: WebSocket,
    hub: StreamingHub,
    endpoint: str,
    subprotocol: str,
    code: str,
    error: Callable[[str, str], dict[str, Any]],
) -> bool:
    """Accept the upgrade (with ``subprotocol`` when the client offers it), then turn the connection away while
    the server drains or is at its session limit.

    Args:
        websocket: the connection.
        hub: the process's streaming state.
        endpoint: the endpoint's metric label (``transcribe``, ``realtime``).
        subprotocol: the endpoint's WebSocket subprotocol.
        code: the protocol's error code for a refusal (its metric label too).
        error: the protocol's error message for a code and a text.

    Returns:
        Whether the connection may open a session (otherwise the client got the error and close 1013).
    """
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(subprotocol=subprotocol if subprotocol in offered else None)
    if hub.draining.is_set():
        why, outcome, text = "server shutting down", "draining", "the server is shutting down; reconnect"
    elif hub.active >= hub.settings.streaming.session_limit:
        why, outcome, text = "session limit", "session_limit", "too many concurrent sessions"
    else:
        return True
    metrics.STREAM_ERRORS.labels(code).inc()
    await websocket.send_json(error(code, text))
    await websocket.close(code=1013, reason=why)
    metrics.STREAM_CONNECTIONS.labels(endpoint, outcome).inc()
    return False


async def serve(
    conn: Connection, endpoint: str, run: Callable[[], Awaitable[None]], cleanup: Callable[[], None]
) -> None:
    """Count the session open, ``run`` it (its read loop) with the outbox written meanwhile, then tear it down.

    Args:
        conn: the admitted connection.
        endpoint: the endpoint's metric label.
        run: the session (an error in it closes the connection with 1011).
        cleanup: the endpoint's own teardown, before the outbox is flushed.
    """
    hub = conn.hub
    hub.active += 1
    metrics.STREAM_SESSIONS.inc()
    metrics.STREAM_CONNECTIONS.labels(endpoint, "accepted").inc()
    metrics.STREAM_SESSIONS_OPENED.labels(endpoint).inc()
    writer = asyncio.create_task(conn.write_loop())
    try:
        await run()
    except Exception:
        logger.exception("%s %s: connection failed", endpoint, conn.session_id)
        conn.finish(1011, "internal error")
    finally:
        hub.active -= 1
        metrics.STREAM_SESSIONS.dec()
        metrics.STREAM_SESSIONS_CLOSED.labels(endpoint, conn.close_reason or "completed").inc()
        cleanup()
        conn.outbox.put_nowait(None)
        with contextlib.suppress(asyncio.TimeoutError, Exception):
            await asyncio.wait_for(writer, _FLUSH_TIMEOUT_S)
        writer.cancel()
        websocket = conn.websocket
        if websocket.application_state == WebSocketState.CONNECTED:
            # Bounded: a client that stopped reading may never take the close frame either.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    websocket.close(code=conn.close_code, reason=conn.close_reason), _FLUSH_TIMEOUT_S
                )
