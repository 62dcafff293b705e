"""``auricle stream FILE``: play a file to a server's WebSocket ``/transcribe`` and show results as they come.

Partial results (hypotheses) are redrawn in place on one line with a carriage return; final phrases get their own
lines. Audio goes as 16 kHz pcm_s16le frames of 200 ms, paced in real time unless ``fast``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, TextIO

import numpy as np

from auricle.engine.decode import decode

__all__ = ["StreamError", "stream_file"]

logger = logging.getLogger(__name__)

_RATE = 16_000
_FRAME_MS = 200


class StreamError(Exception):
    """Raised when the server reports a ``speech.error`` or closes before the end of the stream."""


def stream_file(url: str, path: str, *, fast: bool, model: str | None, api_key: str | None, out: TextIO) -> str:
    """Stream one audio file and return the final transcript.

    Args:
        url: the WebSocket URL, e.g. ``ws://127.0.0.1:9000/transcribe``.
        path: any audio or video file PyAV can decode.
        fast: send as fast as the connection allows instead of in real time.
        model: the model to ask for (server default when None).
        api_key: sent as ``Authorization: Bearer <key>`` when given.
        out: where partial and final results are written.

    Raises:
        StreamError: the server reported an error or the connection ended early.
        AudioDecodeError: the file could not be decoded.
    """
    samples = decode(path).samples
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    step = _RATE * _FRAME_MS // 1000 * 2
    frames = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    return asyncio.run(_stream(url, frames, fast=fast, model=model, api_key=api_key, out=out))


async def _stream(
    url: str, frames: list[bytes], *, fast: bool, model: str | None, api_key: str | None, out: TextIO
) -> str:
    import websockets

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    config: dict[str, Any] = {"sample_rate": _RATE, "encoding": "pcm_s16le"}
    if model:
        config["model_id"] = model
    display = _Display(out)
    async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": config}))
        slow = asyncio.Event()
        slow.set()

        async def send() -> None:
            for frame in frames:
                await slow.wait()
                await ws.send(frame)
                if not fast:
                    await asyncio.sleep(_FRAME_MS / 1000)
            await ws.send(json.dumps({"type": "speech.end", "payload": {}}))

        sender = asyncio.create_task(send())
        try:
            async for raw in ws:
                message = json.loads(raw)
                kind, payload = message.get("type"), message.get("payload") or {}
                if kind == "speech.error":
                    raise StreamError(f"{payload.get('code')}: {payload.get('message')}")
                if kind == "speech.backpressure":
                    # Honour the server's request; it also stops reading when its buffer is full.
                    if payload.get("action") == "slow_down":
                        slow.clear()
                    else:
                        slow.set()
                elif kind == "speech.hypothesis":
                    display.partial(payload.get("text", ""))
                elif kind == "speech.phrase" and payload.get("status") == "EndOfStream":
                    display.clear()
                    return str(payload.get("text", ""))
                elif kind == "speech.phrase":
                    display.final(payload.get("text", ""))
        finally:
            sender.cancel()
    raise StreamError("the server closed the connection before the end of the stream")


class _Display:
    """One line of partial text redrawn in place; finals printed above it."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.width = 0

    def partial(self, text: str) -> None:
        self.out.write("\r" + text.ljust(self.width))
        self.width = len(text)
        self.out.flush()

    def clear(self) -> None:
        if self.width:
            self.out.write("\r" + " " * self.width + "\r")
            self.width = 0
            self.out.flush()

    def final(self, text: str) -> None:
        self.clear()
        self.out.write(text + "\n")
        self.out.flush()
