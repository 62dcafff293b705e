"""OpenAI Realtime transcription sessions on the streaming recognizer of ``/transcribe``.

Audio between two client boundaries (the start, a commit, a clear) goes to one *segment*: a
:class:`~auricle.streaming.session.StreamSession` registered with the shared scheduler, exactly as a ``/transcribe``
session is, whose ``speech.*`` messages are turned into Realtime events here.

Items:

- ``server_vad``: each phrase the recognizer emits is an item. Its first hypothesis opens it
  (``input_audio_buffer.speech_started``); the phrase closes it (``speech_stopped``, ``committed``,
  ``conversation.item.added``, the rest of the text as a ``delta``, ``completed``, ``conversation.item.done``). Long
  speech without a pause is cut into several items at clause ends, as ``/transcribe`` cuts it into phrases. A
  client commit in this mode ends the open item (or the audio since the last item) as a manual commit does.
- ``turn_detection: null``: a commit makes the segment's audio one item. Phrases recognised before the commit are
  held and sent as deltas right after ``committed``; the segment is then flushed (the final decode of what the
  recognizer holds) and the item completed, while the next segment already takes audio.

Deltas carry the words two successive hypotheses agree on (LocalAgreement, as the recognizer confirms words), then
the rest of each phrase's final text. The final decode may correct an agreed word, and in ``server_vad`` mode a long
turn that the recognizer ends at a clause end may have shown words past that end (they come again in the next
item): ``completed`` holds the item's authoritative transcript. Items are completed in commit order: a later
item's transcription events wait for the earlier items' ``completed``.

Session settings other than the audio format take effect from the next segment (after a commit or clear).
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.websockets import WebSocket

from auricle import metrics
from auricle.errors import AuricleError
from auricle.streaming.handlers import Connection
from auricle.streaming.protocol import Checkpoint, ConfigPayload, ProtocolError
from auricle.streaming.realtime_protocol import (
    G711_RATE,
    LOGPROBS,
    AppendEvent,
    ClearEvent,
    CommitEvent,
    PcmFormat,
    RealtimeError,
    SessionConfig,
    SessionUpdateEvent,
    decode_g711,
    error_event,
    new_id,
    parse_client_event,
    server_event,
)
from auricle.streaming.session import ENDPOINT_MS, StreamSession, TranscriptLimitError, session_language

if TYPE_CHECKING:
    from auricle.streaming.hub import StreamingHub

__all__ = ["RealtimeConnection"]

logger = logging.getLogger(__name__)

_MIN_COMMIT_MS = 100  # OpenAI refuses to commit less audio than this
_MIN_SILENCE_MS = 200  # shortest server_vad silence_duration_ms applied
_CONTEXT_CHARS = 200  # earlier text given to a new segment's decodes as the prompt
_WIND_DOWN_S = 60.0
_NON_WORD = re.compile(r"[^\w']+")
_ALIGN_WORDS = 3  # how far a final decode's words may have shifted against the words sent


@dataclass
class _Item:
    """One user audio item and the text sent for it so far."""

    id: str
    start_ms: float
    phrases: list[str] = field(default_factory=list)
    confidences: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)  # words sent as deltas
    hypothesis: list[str] | None = None  # words of the previous hypothesis (for agreement)
    committed: bool = False
    previous_id: str | None = None  # the item committed before this one
    done: bool = False
    outbox: list[dict[str, Any]] = field(default_factory=list)  # events held until earlier items complete

    @property
    def transcript(self) -> str:
        return " ".join(self.phrases)


@dataclass
class _Segment:
    """Audio since the last client boundary and the recognizer session transcribing it."""

    session: StreamSession
    base_ms: float
    server_vad: bool
    prefix_ms: int
    appended_ms: float = 0.0
    accounted_ms: float = 0.0  # end of the audio of this segment's last server-committed item
    item: _Item | None = None  # the open (server_vad) or committed item receiving this segment's text
    held: list[tuple[str, float]] = field(default_factory=list)  # phrases before a manual commit
    flushing: bool = False


def _norm(word: str) -> str:
    return _NON_WORD.sub("", word.lower())


def _user_item(item: _Item, transcript: str | None = None) -> dict[str, Any]:
    """The conversation item of ``conversation.item.added`` / ``.done``: a user message holding the audio."""
    return {
        "id": item.id,
        "object": "realtime.item",
        "type": "message",
        "role": "user",
        "status": "completed",
        "content": [{"type": "input_audio", "transcript": transcript}],
    }


def _aligned(sent: list[str], words: list[str]) -> int:
    """Where the words not yet sent start in ``words``: after its word that matches the last one sent.

    A final decode may have a word more or fewer before that point than the hypotheses whose words were sent
    ("and so my fellow" then "and so am I fellow Americans"); aligning on the last word sent keeps the deltas from
    repeating or skipping words. Without a match nearby, the position is the number of words sent.
    """
    count = len(sent)
    if not count:
        return 0
    last = _norm(sent[-1])
    candidates = range(max(1, count - _ALIGN_WORDS), min(len(words), count + _ALIGN_WORDS) + 1)
    for position in sorted(candidates, key=lambda p: abs(p - count)):
        if _norm(words[position - 1]) == last:
            return position
    return count


class RealtimeConnection(Connection):
    """One ``/v1/realtime`` connection: the session configuration, its segments and items.

    Args:
        websocket: the accepted WebSocket.
        hub: the shared streaming hub (scheduler, settings, runtime).
        default_model: the model named in the URL (``model=``), used when the session names none.
    """

    def __init__(self, websocket: WebSocket, hub: StreamingHub, default_model: str | None = None) -> None:
        super().__init__(websocket, hub)
        self.realtime_id = new_id("sess")
        self.config = SessionConfig()
        self.default_model = default_model
        self.model = self._canonical(None)
        self.segments: dict[str, _Segment] = {}
        self.current: _Segment | None = None
        self.items: deque[_Item] = deque()
        self.last_committed: str | None = None
        self.audio_ms = 0.0
        self.context = ""

    # -- client events -------------------------------------------------------------------------------------------

    def open(self) -> None:
        """Send ``session.created`` (the first server event of a connection)."""
        self.send(server_event("session.created", session=self.config.describe(self.realtime_id, self.model)))

    def rate_limited(self, message: str) -> None:
        """Tell the client it sent too fast (an ``error`` event, code ``rate_limit_exceeded``)."""
        self.reject(RealtimeError("rate_limit_exceeded", message))

    def reject(self, error: RealtimeError) -> None:
        """Answer a bad client event with an ``error`` event (the session keeps working) and count it."""
        metrics.STREAM_ERRORS.labels(error.code).inc()
        self.send(error_event(error))

    async def dispatch_text(self, text: str) -> None:
        """Parse and handle one text frame."""
        event = parse_client_event(text)
        try:
            if isinstance(event, SessionUpdateEvent):
                await self._update(event)
            elif isinstance(event, AppendEvent):
                await self._append(event)
            elif isinstance(event, CommitEvent):
                self._commit(event)
            elif isinstance(event, ClearEvent):
                self._clear()
        except RealtimeError as exc:
            exc.event_id = exc.event_id or event.event_id
            raise

    async def _update(self, event: SessionUpdateEvent) -> None:
        config = self.config.updated(event.session)
        model = self._canonical(config.audio_input.transcription.model)
        # OpenAI's sessions detect the language when none is given (the server's streaming.language is /transcribe's).
        language = session_language(config.audio_input.transcription.language or "auto", self.hub.settings.streaming)
        transcriber = await self._transcriber(model)
        if not transcriber.multilingual and language not in (None, "en"):
            raise RealtimeError(
                "invalid_value",
                f"model '{model}' is English-only; use a multilingual model such as 'base'",
                "session.audio.input.transcription.language",
            )
        if self.current is not None and self.current.appended_ms and config.audio_input.format != self.format:
            raise RealtimeError(
                "invalid_value",
                "the input format cannot change while the buffer holds audio; commit or clear it first",
                "session.audio.input.format",
            )
        self.config, self.model = config, model
        if self.current is not None and not self.current.appended_ms:
            self._discard(self.current)
        self.send(server_event("session.updated", session=self.config.describe(self.realtime_id, self.model)))

    async def _append(self, event: AppendEvent) -> None:
        data = event.audio_bytes()
        fmt = self.format
        if isinstance(fmt, PcmFormat):
            if len(data) % 2:
                raise RealtimeError("invalid_value", f"audio/pcm data of odd length ({len(data)} bytes)", "audio")
            pcm, rate = data, fmt.rate
        else:
            pcm, rate = decode_g711(data, fmt.type), G711_RATE
        segment = self.current or await self._new_segment()
        try:
            segment.session.feed(pcm)
        except ProtocolError as exc:
            raise RealtimeError("invalid_value", exc.message, "audio") from None
        duration = len(pcm) / 2 / rate * 1000
        segment.appended_ms += duration
        self.audio_ms += duration
        self.hub.scheduler.notify(segment.session)
        self.check_backpressure()
        if not self.space.is_set():
            # Reading no further is what holds back a client that sends faster than recognition runs.
            await self.space.wait()

    def _commit(self, event: CommitEvent) -> None:
        segment = self.current
        have = segment.base_ms + segment.appended_ms - max(segment.base_ms, segment.accounted_ms) if segment else 0.0
        if segment is None or have < _MIN_COMMIT_MS:
            raise RealtimeError(
                "input_audio_buffer_commit_empty",
                f"buffer too small: expected at least {_MIN_COMMIT_MS}ms of audio, but the buffer has {have:.2f}ms",
            )
        self._flush(segment)

    def _clear(self) -> None:
        if self.current is not None:
            self._discard(self.current)
        self.send(server_event("input_audio_buffer.cleared"))

    # -- segments ------------------------------------------------------------------------------------------------

    @property
    def format(self) -> Any:
        """The input audio format in force."""
        return self.config.audio_input.format

    @property
    def busy(self) -> bool:
        """Whether committed audio is still being transcribed (no idle timeout then)."""
        return any(segment.flushing for segment in self.segments.values())

    def _canonical(self, requested: str | None) -> str:
        """The registry name of a requested model; OpenAI's own names (``gpt-4o-transcribe``) mean the default."""
        if not requested or requested.lower().startswith("gpt-"):
            requested = self.default_model or self.hub.settings.streaming.model
        registry = self.hub.runtime.registry
        try:
            name = str(registry.canonical(requested))
            registry.info(name)
        except AuricleError as exc:
            raise RealtimeError("invalid_value", exc.message, "session.audio.input.transcription.model") from None
        return name

    async def _transcriber(self, name: str) -> Any:
        try:
            return await asyncio.to_thread(self.hub.runtime.models.get, name)
        except AuricleError as exc:
            raise RealtimeError("invalid_value", exc.message, "session.audio.input.transcription.model") from None

    async def _new_segment(self) -> _Segment:
        config = self.config.audio_input
        transcriber = await self._transcriber(self.model)
        language = session_language(config.transcription.language or "auto", self.hub.settings.streaming)
        vad = config.turn_detection
        fmt = config.format
        rate = fmt.rate if isinstance(fmt, PcmFormat) else G711_RATE
        context = f"{config.transcription.prompt or ''} {self.context}".strip()[-_CONTEXT_CHARS:]
        # server_vad's silence ends an utterance (down to a floor: fragments decoded alone come out poorly).
        endpoint_ms = max(_MIN_SILENCE_MS, vad.silence_duration_ms) if vad else ENDPOINT_MS
        # A resumed session's checkpoint carries what a segment needs: its offset in the connection's audio and
        # the text before it (the prompt of its decodes).
        resume = Checkpoint(
            session_id=self.realtime_id,
            last_audio_ms=round(self.audio_ms),
            full_transcript=context,
            last_text_offset=len(context),
            last_text_end_ms=round(self.audio_ms),
        )
        payload = ConfigPayload(
            language=language or "auto", sample_rate=rate, model_id=self.model, resume_checkpoint=resume
        )
        session = StreamSession(
            payload,
            self.model,
            self.hub.settings.streaming,
            self.hub.runtime.streaming_decoder(
                transcriber,
                language,
                beam_size=self.hub.settings.streaming.beam_size,
                final_beam_size=self.hub.settings.streaming.final_beam_size,
            ),
            self.hub.runtime.streaming_vad(endpoint_ms, vad.threshold if vad else 0.5),
            endpoint_ms,
            # An item is a turn: one phrase per pause (or clause, in long speech), not one per confirmation.
            "utterance",
        )
        segment = _Segment(session, self.audio_ms, vad is not None, vad.prefix_padding_ms if vad else 0)
        loop = asyncio.get_running_loop()

        def publish(messages: list[dict[str, Any]]) -> None:
            loop.call_soon_threadsafe(self._on_messages, segment, messages)

        session.publish = publish
        self.segments[session.id] = segment
        self.current = segment
        self.hub.scheduler.register(session, self.deliver)
        return segment

    def _flush(self, segment: _Segment) -> None:
        """A commit: the segment's audio (or its open item's) becomes a committed item; transcription finishes."""
        item = segment.item or self._new_item(max(segment.base_ms, segment.accounted_ms))
        self._committed(item)
        for text, confidence in segment.held:
            self._add_phrase(item, text, confidence)
        segment.held.clear()
        segment.item = item
        segment.flushing = True
        segment.session.end()
        self.hub.scheduler.notify(segment.session)
        self.current = None

    def _discard(self, segment: _Segment) -> None:
        """Drop an uncommitted segment (clear), with its open item if it had one."""
        self.hub.scheduler.unregister(segment.session)
        self.segments.pop(segment.session.id, None)
        if segment.item is not None and not segment.item.committed and segment.item in self.items:
            self.items.remove(segment.item)
            self._release()
        if self.current is segment:
            self.current = None
        self.check_backpressure()

    def close_segments(self) -> None:
        """Stop scheduling every segment (the connection ended)."""
        for segment in list(self.segments.values()):
            self.hub.scheduler.unregister(segment.session)
        self.segments.clear()

    async def wind_down(self, code: int, reason: str) -> None:
        """End a connection the server stops (idle, too long): an open item is committed and every committed item
        completed before the close ``code``."""
        self.close_code, self.close_reason = code, reason
        if self.current is not None and self.current.item is not None:
            self._flush(self.current)
        deadline = time.monotonic() + _WIND_DOWN_S
        while self.items and not self.finished.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        self.finish()

    # -- recognition results -------------------------------------------------------------------------------------

    async def deliver(self, session: StreamSession, outcome: list[dict[str, Any]] | BaseException) -> None:
        """Receive one recognition step's messages (called by the scheduler)."""
        segment = self.segments.get(session.id)
        if segment is None:
            return
        if isinstance(outcome, TranscriptLimitError):
            self.reject(RealtimeError("transcript_limit", str(outcome)))
            self.finish(1009, "transcript limit")
            return
        if isinstance(outcome, BaseException):
            if segment.item is not None:
                error = {"type": "server_error", "code": "recognition_failed", "message": "recognition failed"}
                self._item_send(
                    segment.item,
                    server_event(
                        "conversation.item.input_audio_transcription.failed",
                        item_id=segment.item.id,
                        content_index=0,
                        error=error,
                    ),
                )
            self.finish(1011, "recognition failed")
            return
        self._on_messages(segment, outcome)
        self.check_backpressure()

    def check_backpressure(self) -> None:
        """Track whether the buffers have room to read more (Realtime has no event for it; metrics count it)."""
        fill = 0.0
        for segment in self.segments.values():
            action = segment.session.backpressure_change()
            if action:
                metrics.BACKPRESSURE_EVENTS.labels(action).inc()
            fill = max(fill, segment.session.fill)
        if fill >= 1.0:
            self.space.clear()
        else:
            self.space.set()

    def _on_messages(self, segment: _Segment, messages: list[dict[str, Any]]) -> None:
        if self.segments.get(segment.session.id) is not segment:
            return  # cleared meanwhile
        for message in messages:
            payload = message["payload"]
            if message["type"] == "speech.hypothesis":
                self._hypothesis(segment, payload)
            elif message["type"] == "speech.phrase" and payload["status"] == "EndOfStream":
                self._segment_done(segment)
            elif message["type"] == "speech.phrase":
                self._phrase(segment, payload)

    def _hypothesis(self, segment: _Segment, payload: dict[str, Any]) -> None:
        if segment.server_vad and segment.item is None and not segment.flushing:
            segment.item = self._speech_started(segment, payload["offset"])
        item = segment.item
        if item is None:
            return  # no item before a manual commit: nothing to show yet
        words = " ".join([*item.phrases, payload["text"]]).split()
        previous, item.hypothesis = item.hypothesis, words
        if previous is None:
            return
        stable = 0
        while stable < min(len(words), len(previous)) and _norm(words[stable]) == _norm(previous[stable]):
            stable += 1
        self._send_words(item, words, stable)

    def _phrase(self, segment: _Segment, payload: dict[str, Any]) -> None:
        text, confidence = payload["text"].strip(), float(payload["confidence"])
        if not segment.server_vad or segment.flushing:
            if segment.item is not None:
                self._add_phrase(segment.item, text, confidence)
            else:
                segment.held.append((text, confidence))
            return
        item = segment.item or self._speech_started(segment, payload["offset"])
        end_ms = payload["offset"] + payload["duration"]
        self.send(server_event("input_audio_buffer.speech_stopped", audio_end_ms=end_ms, item_id=item.id))
        self._committed(item)
        self._add_phrase(item, text, confidence)
        self._complete(item, end_ms)
        segment.item = None
        segment.accounted_ms = end_ms

    def _segment_done(self, segment: _Segment) -> None:
        if segment.item is not None:
            self._complete(segment.item, segment.base_ms + segment.appended_ms)
            segment.item = None
        self.hub.scheduler.unregister(segment.session)
        self.segments.pop(segment.session.id, None)

    # -- items ---------------------------------------------------------------------------------------------------

    def _new_item(self, start_ms: float) -> _Item:
        item = _Item(new_id("item"), start_ms)
        self.items.append(item)
        return item

    def _speech_started(self, segment: _Segment, offset_ms: int) -> _Item:
        start = max(segment.base_ms, offset_ms - segment.prefix_ms)
        item = self._new_item(start)
        self.send(server_event("input_audio_buffer.speech_started", audio_start_ms=round(start), item_id=item.id))
        return item

    def _committed(self, item: _Item) -> None:
        item.committed = True
        item.previous_id = self.last_committed
        self.send(server_event("input_audio_buffer.committed", previous_item_id=item.previous_id, item_id=item.id))
        self.send(server_event("conversation.item.added", previous_item_id=item.previous_id, item=_user_item(item)))
        self.last_committed = item.id

    def _add_phrase(self, item: _Item, text: str, confidence: float) -> None:
        if text:
            item.phrases.append(text)
            item.confidences.append(confidence)
        item.hypothesis = None
        words = item.transcript.split()
        self._send_words(item, words, len(words))

    def _send_words(self, item: _Item, words: list[str], upto: int) -> None:
        """Send the words of ``words[:upto]`` after those already sent as one delta."""
        start = _aligned(item.sent, words)
        if upto <= start:
            return
        delta = " ".join(words[start:upto])
        event = server_event(
            "conversation.item.input_audio_transcription.delta",
            item_id=item.id,
            content_index=0,
            delta=f" {delta}" if item.sent else delta,
        )
        item.sent.extend(words[start:upto])
        self._item_send(item, event)

    def _complete(self, item: _Item, end_ms: float) -> None:
        transcript = item.transcript
        event = server_event(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=transcript,
            usage={"type": "duration", "seconds": round(max(0.0, end_ms - item.start_ms) / 1000, 3)},
        )
        if LOGPROBS in self.config.include:
            # Auricle has one probability per phrase (the mean of its words'), reported as one entry per phrase.
            event["logprobs"] = [
                {"token": text, "bytes": list(text.encode()), "logprob": math.log(max(confidence, 1e-6))}
                for text, confidence in zip(item.phrases, item.confidences, strict=True)
            ]
        self.context = f"{self.context} {transcript}".strip()[-_CONTEXT_CHARS:]
        item.done = True
        self._item_send(item, event)
        done = server_event(
            "conversation.item.done", previous_item_id=item.previous_id, item=_user_item(item, transcript)
        )
        self._item_send(item, done)
        self._release()

    def _item_send(self, item: _Item, event: dict[str, Any]) -> None:
        """Send an item's transcription event now if all earlier items are complete, else hold it."""
        if self.items and self.items[0] is item:
            self.send(event)
        else:
            item.outbox.append(event)

    def _release(self) -> None:
        while self.items:
            head = self.items[0]
            for event in head.outbox:
                self.send(event)
            head.outbox.clear()
            if not head.done:
                return
            self.items.popleft()
