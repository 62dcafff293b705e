"""Per-connection streaming state: decoded audio waiting for recognition, the recogniser, offsets, transcript and
checkpoint.

Audio is appended on the event loop (:meth:`StreamSession.feed`) while recognition steps run on scheduler threads
(:meth:`StreamSession.run_step`); the queue between them is guarded by a lock and bounded by the configured
buffer, which is what backpressure reports on.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from typing import Any, Literal

import numpy as np

from auricle import metrics
from auricle.config import StreamingSettings
from auricle.engine.protocols import StreamingDecoder, StreamingVad
from auricle.engine.types import SAMPLE_RATE
from auricle.streaming import protocol
from auricle.streaming.audio import FrameDecoder
from auricle.streaming.protocol import ConfigPayload
from auricle.streaming.recognizer import Phrase, Policy, StepResult, StreamingRecognizer

__all__ = ["ENDPOINT_MS", "StreamSession", "TranscriptLimitError", "session_language"]

logger = logging.getLogger(__name__)

ENDPOINT_MS = 500
"""Silence (ms) that can end an utterance; the VAD's minimum silence."""
# Most new audio one step takes: a backlog is worked off in big steps, which see whole utterances.
_MAX_STEP_S = 10.0


def session_language(requested: str | None, limits: StreamingSettings) -> str | None:
    """The language a session decodes in: the client's, else the server's ``streaming.language``; None detects."""
    language = (requested or limits.language).lower()
    return None if language == "auto" else language


class TranscriptLimitError(Exception):
    """Raised when a session's transcript would pass ``max_transcript_bytes``."""


class StreamSession:
    """One WebSocket session.

    Args:
        config: the validated ``speech.config`` payload.
        model_name: the canonical model name decoding this session.
        limits: streaming settings (buffer size, transcript limit).
        decoder: the session's decoder (``Runtime.streaming_decoder``).
        vad: the session's speech detector, with ``endpoint_ms`` minimum silence (``Runtime.streaming_vad``).
        endpoint_ms: silence that can end an utterance; the VAD's minimum silence must be the same.
        policy: when words become final (default: ``limits.policy``; see :class:`StreamingRecognizer`).
    """

    def __init__(
        self,
        config: ConfigPayload,
        model_name: str,
        limits: StreamingSettings,
        decoder: StreamingDecoder,
        vad: StreamingVad,
        endpoint_ms: int = ENDPOINT_MS,
        policy: Policy | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex
        self.config = config
        self.model_name = model_name
        self.limits = limits
        self.decoder = FrameDecoder(config.encoding, config.sample_rate)
        resume = config.resume_checkpoint
        self._base_s = resume.last_audio_ms / 1000 if resume else 0.0
        self._transcript = resume.full_transcript.strip() if resume else ""
        # Checkpoints from clients that do not know Auricle's field fall back to the resume point.
        self._last_text_end_ms = (
            (resume.last_text_end_ms if resume.last_text_end_ms is not None else resume.last_audio_ms) if resume else 0
        )
        self.window_s = config.window_duration_ms / 1000
        self.policy: Policy = policy or limits.policy
        # The plain LocalAgreement-2 contender decodes in fixed 1 s steps, as published.
        self.step_s = 1.0 if self.policy == "la2" else limits.step_s
        self.recognizer = StreamingRecognizer(
            decoder,
            vad,
            base_s=self._base_s,
            window_s=self.window_s,
            overlap_s=config.overlap_duration_ms / 1000,
            interval_s=self.step_s,
            endpoint_s=endpoint_ms / 1000,
            max_buffer_s=limits.buffer_s * 0.8,
            committed_time=self._last_text_end_ms / 1000,
            prompt=self._transcript,
            policy=self.policy,
        )
        self._stream_decoder = decoder
        self._text = ""  # this session's own words (a resumed session's transcript starts with the earlier text)
        self._lock = threading.Lock()
        self._pending: deque[np.ndarray] = deque()
        self._pending_samples = 0
        self._received_samples = 0
        # (session sample index at the end of a frame, monotonic arrival time), for latency metrics.
        self._arrivals: deque[tuple[int, float]] = deque(maxlen=8192)
        self.ending = False
        self.finished = False
        self.slowed = False
        self.started = time.monotonic()
        self.publish: Callable[[list[dict[str, Any]]], None] | None = None
        """Sends messages to the client from a scheduler thread, mid-step (set by the connection)."""

    # -- event-loop side -----------------------------------------------------------------------------------------

    def feed(self, frame: bytes) -> None:
        """Decode one binary frame and queue its samples.

        Raises:
            ProtocolError: ``AUDIO_ERROR`` when the frame cannot be decoded.
        """
        samples = self.decoder.decode(frame)
        metrics.STREAM_AUDIO_BYTES.inc(len(frame))
        self._queue(samples)

    def end(self) -> None:
        """No more audio will come: queue what the resampler holds and let recognition flush."""
        self._queue(self.decoder.flush())
        self.ending = True

    def _queue(self, samples: np.ndarray) -> None:
        if not len(samples):
            return
        with self._lock:
            self._pending.append(samples)
            self._pending_samples += len(samples)
            self._received_samples += len(samples)
            self._arrivals.append((self._base_samples + self._received_samples, time.monotonic()))

    @property
    def _base_samples(self) -> int:
        return round(self._base_s * SAMPLE_RATE)

    @property
    def fill(self) -> float:
        """Share of the audio buffer in use: queued plus held by the recogniser."""
        queued = self._pending_samples / SAMPLE_RATE + self.recognizer.buffered_s
        return queued / self.limits.buffer_s

    def backpressure_change(self) -> Literal["slow_down", "ok"] | None:
        """The backpressure message due now, if any (over 80% full: slow down; back under 50%: ok)."""
        fill = self.fill
        if not self.slowed and fill > 0.8:
            self.slowed = True
            return "slow_down"
        if self.slowed and fill < 0.5:
            self.slowed = False
            return "ok"
        return None

    def ready(self) -> bool:
        """Whether a recognition step has work: enough new audio, or the end to flush."""
        if self.finished:
            return False
        return self.ending or self._pending_samples >= self.step_s * SAMPLE_RATE

    # -- scheduler-thread side -----------------------------------------------------------------------------------

    def run_step(self) -> list[dict[str, Any]]:
        """Run one recognition step and return the server messages it produced (thread-safe per session)."""
        started = time.monotonic()
        with self._lock:
            # Under overload the pending audio grows: the step takes it all (up to _MAX_STEP_S), so steps get
            # longer and hypotheses fewer instead of the session falling behind without bound.
            metrics.STREAM_LAG_SECONDS.observe(self._pending_samples / SAMPLE_RATE)
            limit = round(_MAX_STEP_S * SAMPLE_RATE)
            taken: list[np.ndarray] = []
            count = 0
            while self._pending and count < limit:
                taken.append(self._pending.popleft())
                count += len(taken[-1])
            self._pending_samples -= count
            final = self.ending and not self._pending
        samples = np.concatenate(taken) if taken else np.zeros(0, dtype=np.float32)
        publish = self.publish
        early = (lambda part: publish(self._messages(part))) if publish else None
        messages = self._messages(self.recognizer.step(samples, final=final, early=early))
        if final:
            self.finished = True
            messages.extend(self._final_messages())
        metrics.STREAM_STEP_SECONDS.observe(time.monotonic() - started)
        return messages

    def _messages(self, result: StepResult) -> list[dict[str, Any]]:
        """Observe the latency metrics of a step's result and turn its events into server messages."""
        now = time.monotonic()
        for end_s in result.hypothesized:
            metrics.STREAM_FIRST_HYPOTHESIS_SECONDS.observe(max(0.0, now - self._arrival(end_s)))
        for end_s in result.confirmed:
            metrics.STREAM_CONFIRM_SECONDS.observe(max(0.0, now - self._arrival(end_s)))
        messages: list[dict[str, Any]] = []
        for event in result.events:
            if isinstance(event, Phrase):
                messages.extend(self._phrase_messages(event))
            else:
                offset, duration = self._span_ms(event.start, event.end)
                messages.append(protocol.hypothesis(self.id, offset, duration, event.text))
        return messages

    def _arrival(self, end_s: float) -> float:
        target = round(end_s * SAMPLE_RATE)
        with self._lock:
            arrivals = list(self._arrivals)
        index = bisect.bisect_left(arrivals, (target, 0.0))
        return arrivals[min(index, len(arrivals) - 1)][1] if arrivals else time.monotonic()

    def _span_ms(self, start: float, end: float) -> tuple[int, int]:
        offset = max(0, round(start * 1000))
        return offset, max(0, round(end * 1000) - offset)

    def _phrase_messages(self, event: Phrase) -> list[dict[str, Any]]:
        addition = event.text.strip()
        grown = f"{self._transcript} {addition}".strip()
        if len(grown.encode()) > self.limits.max_transcript_bytes:
            raise TranscriptLimitError(f"transcript passed {self.limits.max_transcript_bytes} bytes")
        self._transcript = grown
        self._text = f"{self._text} {addition}"
        self._last_text_end_ms = round(event.end * 1000)
        offset, duration = self._span_ms(event.start, event.end)
        return [
            protocol.phrase(self.id, offset, duration, addition, event.confidence),
            self.checkpoint_message(event.resume_s),
        ]

    def _final_messages(self) -> list[dict[str, Any]]:
        end_s = self.recognizer.accounted_s
        duration = max(0, round(end_s * 1000) - round(self._base_s * 1000))
        messages = [
            protocol.phrase(self.id, 0, round(end_s * 1000), self._transcript, 1.0, status="EndOfStream"),
            self.checkpoint_message(end_s),
        ]
        logger.info("stream %s ended: %.1f s of audio, %d chars", self.id, duration / 1000, len(self._transcript))
        if self._text:
            # Counted like a file (engine/signals.py). Text only comes from decodes in a language faster-whisper
            # accepted, so the label is a Whisper code; "other" while detection has not settled on one.
            metrics.TRANSCRIPTIONS.labels(getattr(self._stream_decoder, "language", None) or "other").inc()
        return messages

    # -- checkpoint ----------------------------------------------------------------------------------------------

    @property
    def transcript(self) -> str:
        """The confirmed transcript so far (including a resumed session's)."""
        return self._transcript

    def checkpoint(self, resume_s: float | None = None) -> dict[str, Any]:
        """The checkpoint payload (see :mod:`auricle.streaming.protocol` for what its offsets mean)."""
        resume = self.recognizer.accounted_s if resume_s is None else resume_s
        return {
            "session_id": self.id,
            "last_audio_ms": round(resume * 1000),
            "last_text_offset": len(self._transcript),
            "last_text_end_ms": self._last_text_end_ms,
            "full_transcript": self._transcript,
            "buffer_config": {
                "window_duration_ms": self.config.window_duration_ms,
                "overlap_duration_ms": self.config.overlap_duration_ms,
            },
            "backend_model_id": self.model_name,
        }

    def checkpoint_message(self, resume_s: float | None = None) -> dict[str, Any]:
        """``speech.checkpoint`` for the current state."""
        return protocol.server_message("speech.checkpoint", self.id, self.checkpoint(resume_s))

    def effective_config(self) -> dict[str, Any]:
        """The configuration in force, as the ack reports it."""
        data = self.config.model_dump(exclude={"resume_checkpoint"})
        data["model_id"] = self.model_name
        data["language"] = self.config.language or self.limits.language
        data["resumed_from_ms"] = round(self._base_s * 1000)
        return data
