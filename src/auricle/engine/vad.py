"""Voice activity detection with the Silero VAD model that ships inside faster-whisper (ONNX, no torch).

One class serves both callers: batch transcription asks for padded spans in seconds over a whole file
(:meth:`SileroVad.speech_spans`); a streaming session asks, many times a second, for raw sample spans of its short
buffer (:meth:`SileroVad.speech_samples`, see :meth:`SileroVad.for_streaming`).
"""

from __future__ import annotations

import math

import numpy as np

from auricle.engine.types import SAMPLE_RATE, SpeechSpan

__all__ = ["SileroVad"]

# Silero runs over blocks of this many seconds: it batches a whole block through ONNX at once, which cost about
# 170 MB for 10 minutes of audio (27 MB for 2 minutes). Spans touching a block edge are joined again.
_BLOCK_S = 120.0
_JOIN_GAP_S = 0.2
_STREAM_MIN_SPEECH_MS = 120  # a streaming buffer's shorter blips are not speech


class SileroVad:
    """Finds speech with Silero VAD v6 (bundled ONNX file of faster-whisper).

    Args:
        threshold: speech probability above which a frame is speech.
        min_silence_ms: silence needed to end a span.
        speech_pad_ms: padding added on each side of a span.
        max_span_s: longer spans are split (at a pause when there is one); ``math.inf`` never splits.
        min_speech_ms: shorter spans are dropped.
    """

    def __init__(
        self,
        threshold: float = 0.5,
        min_silence_ms: int = 160,
        speech_pad_ms: int = 400,
        max_span_s: float = 30.0,
        min_speech_ms: int = 0,
    ) -> None:
        from faster_whisper.vad import VadOptions

        self._options = VadOptions(
            threshold=threshold,
            min_silence_duration_ms=min_silence_ms,
            speech_pad_ms=speech_pad_ms,
            max_speech_duration_s=max_span_s,
            min_speech_duration_ms=min_speech_ms,
        )

    @classmethod
    def for_streaming(cls, endpoint_ms: int, threshold: float = 0.5) -> SileroVad:
        """The VAD a streaming session endpoints with: unpadded spans, pauses under ``endpoint_ms`` joined."""
        return cls(
            threshold=threshold,
            min_silence_ms=endpoint_ms,
            speech_pad_ms=0,
            max_span_s=math.inf,
            min_speech_ms=_STREAM_MIN_SPEECH_MS,
        )

    def speech_samples(self, samples: np.ndarray) -> list[tuple[int, int]]:
        """Speech spans as ``(start, end)`` sample indices, from one pass over ``samples`` (keep it short)."""
        from faster_whisper.vad import get_speech_timestamps

        return [(int(ts["start"]), int(ts["end"])) for ts in get_speech_timestamps(samples, self._options)]

    def speech_spans(self, samples: np.ndarray) -> list[SpeechSpan]:
        """Return speech spans in seconds, in order."""
        block = int(_BLOCK_S * SAMPLE_RATE)
        spans: list[SpeechSpan] = []
        for offset in range(0, len(samples), block):
            piece = samples[offset : offset + block]
            if len(piece) < SAMPLE_RATE // 10:
                continue
            for first, last in self.speech_samples(piece):
                start = (offset + first) / SAMPLE_RATE
                end = (offset + last) / SAMPLE_RATE
                if spans and start - spans[-1].end <= _JOIN_GAP_S and offset and first < SAMPLE_RATE:
                    spans[-1] = SpeechSpan(spans[-1].start, end)
                else:
                    spans.append(SpeechSpan(round(start, 3), round(end, 3)))
        return spans
