"""Handlers for client messages, registered per message type, over one :class:`Connection`.

Text frames are parsed into protocol models and dispatched through :data:`HANDLERS`; binary frames (audio) go to
:func:`handle_audio`. Handlers report contract violations by raising :class:`ProtocolError`; the connection turns
those into ``speech.error`` messages and keeps serving.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket

from auricle import metrics
from auricle.errors import AuricleError
from auricle.streaming import protocol
from auricle.streaming.hub import StreamingHub
from auricle.streaming.protocol import (
    INVALID_MESSAGE,
    INVALID_STATE,
    RATE_LIMITED,
    ConfigMessage,
    EndMessage,
    ProtocolError,
)
from auricle.streaming.session import StreamSession, TranscriptLimitError, session_language

__all__ = ["HANDLERS", "Connection", "handle_audio", "handler"]

logger = logging.getLogger(__name__)

Handler = Callable[["Connection", Any], Awaitable[None]]
HANDLERS: dict[str, Handler] = {}
"""Message type -> handler."""


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the decorated coroutine as the handler of messages of type ``kind``."""

    def register(func: Handler) -> Handler:
        HANDLERS[kind] = func
        return func

    return register


class Connection:
    """One WebSocket connection: its session (after ``speech.config``) and its outgoing messages.

    Messages go through a queue drained by :meth:`write_loop`, so a slow reader never blocks the scheduler.
    """

    def __init__(self, websocket: WebSocket, hub: StreamingHub) -> None:
        self.websocket = websocket
        self.hub = hub
        self.session: StreamSession | None = None
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.finished = asyncio.Event()
        self.space = asyncio.Event()
        self.space.set()
        self.close_code = 1000
        self.close_reason = ""
        limits = hub.settings.streaming
        self._outbox_limit = limits.max_outbox_messages
        self._rate = limits.max_messages_per_s
        self._burst = float(limits.message_burst)
        self._allowance = self._burst
        self._allowance_at = time.monotonic()

    @property
    def session_id(self) -> str | None:
        """The session's id once configured."""
        return self.session.id if self.session else None

    def send(self, message: dict[str, Any]) -> None:
        """Queue a message for the client; a client that lets ``max_outbox_messages`` pile up unread is closed
        with 1008 rather than let the queue grow without bound (the message is dropped: it would not be read)."""
        if self.outbox.qsize() >= self._outbox_limit:
            if not self.finished.is_set():
                logger.warning("stream %s: %d messages unread, closing", self.session_id, self.outbox.qsize())
            self.finish(1008, "client not reading")
            return
        self.outbox.put_nowait(message)

    def throttled(self) -> bool:
        """Count one client message against the session's rate (a token bucket: ``max_messages_per_s``, at most
        ``message_burst`` saved up). Over it, the client gets an error and the session ends with 1008: a client
        that floods is either broken or hostile, and dropping its audio silently would corrupt the transcript."""
        if self._rate <= 0:
            return False
        now = time.monotonic()
        self._allowance = min(self._burst, self._allowance + (now - self._allowance_at) * self._rate)
        self._allowance_at = now
        if self._allowance >= 1.0:
            self._allowance -= 1.0
            return False
        self.rate_limited(f"more than {self._rate:g} messages per second (burst {self._burst:g}); closing")
        self.finish(1008, "message rate limit")
        return True

    def rate_limited(self, message: str) -> None:
        """Tell the client it sent too fast (``speech.error`` ``RATE_LIMITED``)."""
        self.error(RATE_LIMITED, message)

    def send_all(self, messages: list[dict[str, Any]]) -> None:
        """Queue messages for the client in order."""
        for message in messages:
            self.send(message)

    def error(self, code: str, message: str) -> None:
        """Queue a ``speech.error`` and count it."""
        metrics.STREAM_ERRORS.labels(code).inc()
        self.send(protocol.error(self.session_id, code, message))

    def finish(self, code: int | None = None, reason: str = "") -> None:
        """End the connection once queued messages are sent (with ``code``, or the one set before)."""
        if not self.finished.is_set():
            if code is not None:
                self.close_code, self.close_reason = code, reason
            self.finished.set()

    async def write_loop(self) -> None:
        """Send queued messages until the ``None`` sentinel."""
        while True:
            message = await self.outbox.get()
            if message is None:
                return
            try:
                await self.websocket.send_json(message)
            except Exception:  # the client went away; the reader notices too
                logger.debug("stream %s: send failed", self.session_id)
                self.finish(1001, "client gone")
                return

    def check_backpressure(self) -> None:
        """Send ``speech.backpressure`` on a change and track whether the buffer has room to read more.

        ``slow_down`` goes out over 80% full and ``ok`` back under 50% (:meth:`StreamSession.backpressure_change`);
        frames stop being read only while the buffer is full, and reading resumes as soon as a recognition step
        has made room. There is deliberately no 50% low watermark for reading: the recogniser itself may hold up
        to 80% of the buffer and needs new audio to shrink it, so waiting for 50% could stall a session.
        """
        session = self.session
        if session is None:
            return
        action = session.backpressure_change()
        if action:
            metrics.BACKPRESSURE_EVENTS.labels(action).inc()
            self.send(protocol.backpressure(session.id, action))
        if session.fill >= 1.0:
            self.space.clear()
        else:
            self.space.set()

    async def deliver(self, session: StreamSession, outcome: list[dict[str, Any]] | BaseException) -> None:
        """Receive one recognition step's messages (called by the scheduler)."""
        if isinstance(outcome, TranscriptLimitError):
            self.error(INVALID_STATE, str(outcome))
            self.finish(1009, "transcript limit")
            return
        if isinstance(outcome, BaseException):
            self.finish(1011, "recognition failed")
            return
        self.send_all(outcome)
        if session.finished:
            # The final phrase and checkpoint are the session's last messages: no backpressure news after them.
            self.finish()
            return
        self.check_backpressure()

    async def dispatch_text(self, text: str) -> None:
        """Parse and handle one text frame."""
        message = protocol.parse_client_message(text)
        await HANDLERS[message.type](self, message)


@handler("speech.config")
async def handle_config(conn: Connection, message: ConfigMessage) -> None:
    """Open the session: pick and load the model, set up decoding, answer ``speech.config.ack``."""
    if conn.session is not None:
        raise ProtocolError(INVALID_STATE, "the session is already configured")
    config = message.payload
    settings = conn.hub.settings
    resume = config.resume_checkpoint
    limit = settings.streaming.max_transcript_bytes
    if resume is not None and len(resume.full_transcript.encode()) > limit:
        # The resumed transcript is the start of this session's: the same limit holds for it.
        raise ProtocolError(
            INVALID_MESSAGE, f"resume_checkpoint.full_transcript is over the {limit}-byte transcript limit"
        )
    requested = config.model_id or (resume.backend_model_id if resume else None) or settings.streaming.model
    runtime = conn.hub.runtime
    try:
        name = runtime.registry.canonical(requested)
        runtime.registry.info(name)
        transcriber = await asyncio.to_thread(runtime.models.get, name)
    except AuricleError as exc:
        raise ProtocolError(INVALID_MESSAGE, f"model_id: {exc.message}") from None
    language = session_language(config.language, settings.streaming)
    if not transcriber.multilingual and language not in (None, "en"):
        raise ProtocolError(
            INVALID_MESSAGE, f"language: model '{name}' is English-only; use a multilingual model such as 'base'"
        )
    limits = settings.streaming
    decoder = runtime.streaming_decoder(
        transcriber, language, beam_size=limits.beam_size, final_beam_size=limits.final_beam_size
    )
    vad = runtime.streaming_vad(limits.endpoint_ms)
    session = StreamSession(config, name, limits, decoder, vad, limits.endpoint_ms)
    conn.session = session
    loop = asyncio.get_running_loop()

    def publish(messages: list[dict[str, Any]]) -> None:
        loop.call_soon_threadsafe(conn.send_all, messages)

    session.publish = publish
    conn.hub.scheduler.register(session, conn.deliver)
    logger.info(
        "stream %s: model %s, %s at %d Hz%s",
        session.id,
        name,
        config.encoding,
        config.sample_rate,
        f", resumed at {resume.last_audio_ms} ms" if resume else "",
    )
    conn.send(
        protocol.server_message(
            "speech.config.ack", session.id, {"session_id": session.id, "effective_config": session.effective_config()}
        )
    )


@handler("speech.end")
async def handle_end(conn: Connection, message: EndMessage) -> None:
    """Flush: the scheduler finishes recognition and sends the final phrase and checkpoint."""
    session = conn.session
    if session is None:
        raise ProtocolError(INVALID_STATE, "speech.end before speech.config")
    if session.ending:
        raise ProtocolError(INVALID_STATE, "speech.end was already sent")
    session.end()
    conn.hub.scheduler.notify(session)


async def handle_audio(conn: Connection, frame: bytes) -> None:
    """Queue one binary audio frame; wait while the session's buffer is full (the client must slow down)."""
    session = conn.session
    if session is None:
        raise ProtocolError(INVALID_STATE, "audio before speech.config")
    if session.ending:
        raise ProtocolError(INVALID_STATE, "audio after speech.end")
    session.feed(frame)
    conn.check_backpressure()
    conn.hub.scheduler.notify(session)
    if not conn.space.is_set():
        # Reading no further is what keeps a client that ignores slow_down from overflowing the buffer.
        await conn.space.wait()
