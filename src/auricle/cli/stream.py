"""``auricle stream FILE`` and ``auricle stream --mic``: send audio to a server's WebSocket ``/transcribe`` and show
results as they come.

Partial results (hypotheses) are redrawn in place on one line with a carriage return; final phrases get their own
lines. Audio goes as 16 kHz pcm_s16le frames of 200 ms: a file paced in real time unless ``fast``, the microphone
as it records (through the optional ``sounddevice`` package and PortAudio) until Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import numpy as np

from auricle.cli._output import server_error_detail
from auricle.config import Settings
from auricle.engine.decode import decode
from auricle.engine.types import SAMPLE_RATE as _RATE
from auricle.errors import AuricleError

__all__ = ["StreamError", "cmd_stream", "register", "stream_file", "stream_microphone"]

logger = logging.getLogger(__name__)

_FRAME_MS = 200
_EXAMPLE_URL = "ws://127.0.0.1:9000/transcribe"


class StreamError(AuricleError):
    """Raised when the server cannot be reached or refuses the stream, reports a ``speech.error``, or closes before
    the end of the stream."""


def stream_url(url: str) -> str:
    """``url`` as a WebSocket URL of the streaming endpoint: ``http(s)`` becomes ``ws(s)``, and a URL without a
    path gets ``/transcribe`` (``--url ws://host:9000`` works as users type it)."""
    parts = urlsplit(url)
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss") or not parts.netloc:
        raise StreamError(f"not a WebSocket URL: {url!r} (e.g. {_EXAMPLE_URL})")
    return urlunsplit(
        (scheme, parts.netloc, parts.path if parts.path not in ("", "/") else "/transcribe", parts.query, "")
    )


def _refused(url: str, status: int, body: bytes) -> StreamError:
    """The error for a handshake the server answered with HTTP ``status`` instead of a WebSocket."""
    detail = server_error_detail(body)
    if status in (403, 404) and not detail:
        return StreamError(
            f"no streaming endpoint at {url} (HTTP {status}): its path is /transcribe, e.g. {_EXAMPLE_URL}"
        )
    hint = " (give the key with --api-key)" if status == 401 else ""
    return StreamError(f"the server refused the stream at {url} (HTTP {status}): {detail or 'no reason given'}{hint}")


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

    async def paced() -> AsyncIterator[bytes]:
        for frame in frames:
            yield frame
            if not fast:
                await asyncio.sleep(_FRAME_MS / 1000)

    return asyncio.run(_stream(url, paced(), model=model, api_key=api_key, out=out))


def stream_microphone(url: str, *, model: str | None, api_key: str | None, out: TextIO) -> str:
    """Stream the default microphone until Ctrl+C, then return the final transcript.

    Raises:
        StreamError: no sound input library or device, or the server reported an error.
    """
    try:
        import sounddevice  # type: ignore[import-not-found, unused-ignore]
    except (ImportError, OSError) as exc:
        raise StreamError(
            "--mic needs the sounddevice package and PortAudio: "
            "pip install sounddevice, and apt-get install libportaudio2 (or your system's PortAudio)"
        ) from exc

    async def recorded() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGINT, stop.set)

        def callback(data: Any, _frames: int, _time: Any, _status: Any) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, bytes(data))

        try:
            device = sounddevice.RawInputStream(
                samplerate=_RATE, channels=1, dtype="int16", blocksize=_RATE * _FRAME_MS // 1000, callback=callback
            )
        except Exception as exc:  # PortAudioError, or ValueError without an input device
            raise StreamError(f"cannot open the microphone: {exc}") from exc
        out.write("listening; press Ctrl+C to stop\n")
        try:
            with device:
                while not stop.is_set():
                    get = asyncio.ensure_future(queue.get())
                    halt = asyncio.ensure_future(stop.wait())
                    done, _ = await asyncio.wait({get, halt}, return_when=asyncio.FIRST_COMPLETED)
                    halt.cancel()
                    if get in done:
                        yield get.result()
                    else:
                        get.cancel()
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    return asyncio.run(_stream(url, recorded(), model=model, api_key=api_key, out=out))


async def _stream(
    url: str, frames: AsyncIterator[bytes], *, model: str | None, api_key: str | None, out: TextIO
) -> str:
    import websockets

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    config: dict[str, Any] = {"sample_rate": _RATE, "encoding": "pcm_s16le"}
    if model:
        config["model_id"] = model
    display = _Display(out)
    url = stream_url(url)
    try:
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            return await _exchange(ws, frames, config, display)
    except websockets.InvalidStatus as exc:
        raise _refused(url, exc.response.status_code, bytes(exc.response.body or b"")) from None
    except websockets.ConnectionClosedError as exc:
        raise StreamError(f"the server closed the connection before the end of the stream ({exc})") from None
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        raise StreamError(f"cannot connect to {url}: {exc}. Is `auricle serve` running there?") from None


async def _exchange(ws: Any, frames: AsyncIterator[bytes], config: dict[str, Any], display: _Display) -> str:
    """Send the config, then the frames and ``speech.end``, showing results; the final transcript."""
    await ws.send(json.dumps({"type": "speech.config", "payload": config}))
    slow = asyncio.Event()
    slow.set()

    async def send() -> None:
        async for frame in frames:
            await slow.wait()
            await ws.send(frame)
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
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sender
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


def cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    """Stream a file, or the microphone, to a running server over WebSocket."""
    if args.mic == (args.file is not None):
        sys.stderr.write("auricle stream: give a FILE or --mic\n")
        return 2
    if args.mic:
        stream_microphone(args.url, model=args.model, api_key=args.api_key, out=sys.stdout)
    else:
        stream_file(args.url, args.file, fast=args.fast, model=args.model, api_key=args.api_key, out=sys.stdout)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stream`` to the ``auricle`` parser."""
    st = sub.add_parser("stream", help="stream a file (or the microphone) to a server over WebSocket")
    st.add_argument("file", nargs="?", help="audio or video file (omit with --mic)")
    st.add_argument("--mic", action="store_true", help="stream the default microphone until Ctrl+C (sounddevice)")
    st.add_argument("--url", default="ws://127.0.0.1:9000/transcribe")
    st.add_argument("--fast", action="store_true", help="send as fast as possible (no real-time pacing)")
    st.add_argument("--model", default=None)
    st.add_argument("--api-key", default=None)
    st.set_defaults(func=cmd_stream)
