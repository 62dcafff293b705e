"""The real decode and VAD functions a :class:`~auricle.streaming.recognizer.StreamingRecognizer` runs on.

Decoding goes through the shared transcriber's faster-whisper model with word timestamps, no VAD filter (the
recognizer does its own endpointing), no conditioning on previous windows, and a small beam for latency.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from auricle.streaming.agreement import TimedWord
from auricle.streaming.recognizer import DecodeFn, VadFn

__all__ = ["silero_vad", "whisper_decoder"]

logger = logging.getLogger(__name__)

_MIN_SPEECH_MS = 120


def silero_vad(endpoint_ms: int, threshold: float = 0.5) -> VadFn:
    """Silero VAD (bundled with faster-whisper) returning raw spans; pauses under ``endpoint_ms`` are joined."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    options = VadOptions(
        threshold=threshold,
        min_speech_duration_ms=_MIN_SPEECH_MS,
        min_silence_duration_ms=endpoint_ms,
        speech_pad_ms=0,
    )

    def vad(samples: np.ndarray) -> list[tuple[int, int]]:
        return [(int(ts["start"]), int(ts["end"])) for ts in get_speech_timestamps(samples, options)]

    return vad


def whisper_decoder(
    transcriber: Any, language: str | None, *, beam_size: int = 1, final_beam_size: int = 5
) -> DecodeFn:
    """A decode function over a :class:`~auricle.engine.transcribe.FasterWhisperTranscriber`.

    Args:
        transcriber: the shared transcriber (its ``model`` is a ``faster_whisper.WhisperModel``).
        language: language code, or None to detect it on the first utterance and keep it.
        beam_size: beam for tentative re-decodes.
        final_beam_size: beam for the last decode of an utterance.
    """
    model = transcriber.model
    multilingual = bool(getattr(transcriber, "multilingual", True))
    state = {"language": language if multilingual else "en"}
    lock = threading.Lock()

    def decode(samples: np.ndarray, prompt: str, final: bool) -> list[TimedWord]:
        segments, info = model.transcribe(
            samples,
            language=state["language"],
            beam_size=final_beam_size if final else beam_size,
            word_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            # Temperature fallback re-decodes up to three times; a tentative decode of audio cut mid-word often
            # trips it, and it is decoded again a moment later anyway.
            temperature=[0.0, 0.4, 0.8] if final else 0.0,
        )
        words = [
            TimedWord(float(w.start), float(w.end), w.word, float(w.probability))
            for segment in segments
            for w in (segment.words or [])
        ]
        with lock:
            if state["language"] is None and final and words and info.language_probability > 0.5:
                state["language"] = info.language
                logger.info("stream language detected: %s (%.2f)", info.language, info.language_probability)
        return words

    return decode
