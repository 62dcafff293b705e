"""The read loop both WebSocket endpoints share (``/transcribe`` and ``/v1/realtime``).

It owns the limits that are the same for both protocols: the session's maximum duration, the idle timeout, the
server's drain, the per-session message throttle and client disconnects. What a frame means and how a session
ends gracefully are the endpoint's: it passes them in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from auricle.streaming.handlers import Connection

__all__ = ["read_loop"]

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
