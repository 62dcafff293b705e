"""Voice activity detection with the Silero VAD model that ships inside faster-whisper (ONNX, no torch)."""

from __future__ import annotations

import numpy as np

from auricle.engine.types import SAMPLE_RATE, SpeechSpan

__all__ = ["SileroVad"]

# Silero runs over blocks of this many seconds: it batches a whole block through ONNX at once, which cost about
# 170 MB for 10 minutes of audio (27 MB for 2 minutes). Spans touching a block edge are joined again.
_BLOCK_S = 120.0
_JOIN_GAP_S = 0.2


class SileroVad:
    """Finds speech with Silero VAD v6 (bundled ONNX file of faster-whisper).

    Args:
        threshold: speech probability above which a frame is speech.
        min_silence_ms: silence needed to end a span.
        speech_pad_ms: padding added on each side of a span.
        max_span_s: longer spans are split (at a pause when there is one).
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

    def speech_spans(self, samples: np.ndarray) -> list[SpeechSpan]:
        """Return speech spans in seconds, in order."""
        from faster_whisper.vad import get_speech_timestamps

        block = int(_BLOCK_S * SAMPLE_RATE)
        spans: list[SpeechSpan] = []
        for offset in range(0, len(samples), block):
            piece = samples[offset : offset + block]
            if len(piece) < SAMPLE_RATE // 10:
                continue
            for ts in get_speech_timestamps(piece, self._options):
                start = (offset + ts["start"]) / SAMPLE_RATE
                end = (offset + ts["end"]) / SAMPLE_RATE
                if spans and start - spans[-1].end <= _JOIN_GAP_S and offset and ts["start"] < SAMPLE_RATE:
                    spans[-1] = SpeechSpan(spans[-1].start, end)
                else:
                    spans.append(SpeechSpan(round(start, 3), round(end, 3)))
        return spans
