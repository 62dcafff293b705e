"""WebSocket abuse controls against real ``auricle serve`` processes: the per-session message-rate throttle on
``/transcribe`` and ``/v1/realtime``, and the cap on a session's outbound queue for a client that does not read."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import time
from typing import Any

import httpx
import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from support import Server, start_server

pytestmark = [pytest.mark.slow]

RATE, BURST = 20, 5


@pytest.fixture(scope="module")
def throttled(tmp_path_factory: pytest.TempPathFactory):
    env = {
        "AURICLE_DEFAULT_MODEL": "tiny.en",
        "AURICLE_STREAMING__MAX_MESSAGES_PER_S": str(RATE),
        "AURICLE_STREAMING__MESSAGE_BURST": str(BURST),
    }
    srv = start_server(tmp_path_factory.mktemp("throttled"), env, wait_ready=False)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory):
    env = {"AURICLE_DEFAULT_MODEL": "tiny.en", "AURICLE_STREAMING__MAX_OUTBOX_MESSAGES": "50"}
    srv = start_server(tmp_path_factory.mktemp("capped"), env, wait_ready=False)
    yield srv
    srv.stop()


def _realtime_url(server: Server) -> str:
    return server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"


async def _send_then_read(url: str, frame: str, count: int, gap_s: float = 0.0) -> tuple[list[dict[str, Any]], Any]:
    """Send ``count`` frames (``gap_s`` apart), then read everything until the close (or 2 s of quiet)."""
    received: list[dict[str, Any]] = []
    async with websockets.connect(url) as ws:
        for _ in range(count):
            try:
                await ws.send(frame)
            except ConnectionClosed:
                break
            if gap_s:
                await asyncio.sleep(gap_s)
        try:
            while True:
                received.append(json.loads(await asyncio.wait_for(ws.recv(), 2)))
        except (ConnectionClosed, TimeoutError):
            pass
        return received, ws.protocol.close_rcvd


def _metric(server: Server, name: str, **labels: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=10).text
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        match = re.fullmatch(rf"{name}\{{(.*)\}} (\S+)", line)
        if match and ",".join(sorted(match.group(1).split(","))) == want:
            return float(match.group(2))
    return 0.0


def test_transcribe_flood_gets_rate_limited_error_then_close_1008(throttled: Server) -> None:
    """Given 20 messages/s with a burst of 5, when a client sends 60 frames at once, then it gets RATE_LIMITED and
    the session is closed with 1008, and the lifecycle counter records why."""
    before = _metric(
        throttled, "auricle_stream_sessions_closed_total", endpoint="transcribe", reason="message rate limit"
    )
    received, close = asyncio.run(_send_then_read(throttled.ws_url, '{"type": "no.such"}', 60))
    codes = [m["payload"]["code"] for m in received if m.get("type") == "speech.error"]
    assert "RATE_LIMITED" in codes
    assert codes[-1] == "RATE_LIMITED" and len(codes) <= BURST + 2
    assert close is not None and close.code == 1008 and close.reason == "message rate limit"
    after = _metric(
        throttled, "auricle_stream_sessions_closed_total", endpoint="transcribe", reason="message rate limit"
    )
    assert after == before + 1


def test_transcribe_client_under_the_rate_is_served(throttled: Server) -> None:
    """Given the same limits, when a client sends 15 frames at 10 a second, then none is refused for its rate."""
    received, close = asyncio.run(_send_then_read(throttled.ws_url, '{"type": "no.such"}', 15, gap_s=0.1))
    codes = [m["payload"]["code"] for m in received if m.get("type") == "speech.error"]
    assert codes == ["INVALID_MESSAGE"] * 15
    assert close is None or close.code != 1008


def test_realtime_flood_gets_rate_limit_error_event_then_close_1008(throttled: Server) -> None:
    received, close = asyncio.run(_send_then_read(_realtime_url(throttled), '{"type": "input_audio_buffer.clear"}', 60))
    assert received[0]["type"] == "session.created"
    errors = [m["error"]["code"] for m in received if m["type"] == "error"]
    assert errors == ["rate_limit_exceeded"]
    assert close is not None and close.code == 1008


def _flood_without_reading(server: Server, frames: int) -> tuple[int, tuple[int, str] | None]:
    """A stuck client over a raw socket (a client library would keep reading in the background): send up to
    ``frames`` bad text frames and read nothing until a send waits a second (the server stopped reading), and go on
    reading nothing until the server has ended the session (or 30 s). Kernels with large TCP buffers take all the
    frames at once, so the send alone does not show that the client is stuck. Then read what came back. Returns the
    text frames received and the close frame's (code, reason)."""
    host, port = server.ws_url.removeprefix("ws://").split("/", 1)[0].split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.settimeout(10)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /transcribe HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(1)
    assert response.startswith(b"HTTP/1.1 101"), response
    payload = b'{"type": "no.such"}'
    # Client frames are masked; a zero mask leaves the payload as it is.
    frame = bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
    sock.settimeout(1)
    try:
        for _ in range(frames // 100):
            sock.sendall(frame * 100)
    except (TimeoutError, OSError):
        pass
    deadline = time.monotonic() + 30
    while httpx.get(server.url + "/health", timeout=5).json()["active_sessions"] and time.monotonic() < deadline:
        time.sleep(0.2)
    sock.settimeout(10)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, OSError):
        pass
    sock.close()
    texts, close, at = 0, None, 0
    while at + 2 <= len(data):
        opcode, length, at = data[at] & 0x0F, data[at + 1] & 0x7F, at + 2
        if length == 126:
            length, at = int.from_bytes(data[at : at + 2], "big"), at + 2
        elif length == 127:
            length, at = int.from_bytes(data[at : at + 8], "big"), at + 8
        body, at = data[at : at + length], at + length
        if opcode == 0x1:
            texts += 1
        elif opcode == 0x8:
            close = (int.from_bytes(body[:2], "big"), body[2:].decode())
    return texts, close


def test_client_that_does_not_read_is_closed_1008_and_its_messages_are_not_kept(capped: Server) -> None:
    """Given an outbox cap of 50 messages, when a client sends up to 200,000 bad frames and reads none of the
    errors, then the server closes it with 1008 instead of queueing them, and the session is gone."""
    frames = 200_000
    received, close = _flood_without_reading(capped, frames)
    assert close == (1008, "client not reading"), (received, close)
    assert received < frames // 2
    deadline = time.monotonic() + 10
    while httpx.get(capped.url + "/health", timeout=5).json()["active_sessions"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert httpx.get(capped.url + "/health", timeout=5).json()["active_sessions"] == 0
    assert _metric(capped, "auricle_stream_sessions_closed_total", endpoint="transcribe", reason="client not reading")
