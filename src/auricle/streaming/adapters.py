"""The real decode and VAD functions a :class:`~auricle.streaming.recognizer.StreamingRecognizer` runs on.

Final decodes (what phrases are made of) go through the shared transcriber's faster-whisper model with word
timestamps, no VAD filter (the recognizer does its own endpointing) and no conditioning on previous windows.

Tentative decodes (hypotheses, and the agreement that times confirmation) run many times a second per session, so
they take a short cut: Whisper's encoder is given only the audio plus a margin instead of 30 s padded (CTranslate2
accepts shorter inputs), then a greedy decode and the word alignment. That is 4-8 times faster on CPU, since the
encoder over 30 s is most of a short decode's cost. Whisper was trained on 30 s inputs, so such a decode can loop
on very short audio; a looping result is thrown away and the audio decoded the normal way.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import numpy as np
from faster_whisper.audio import pad_or_trim
from faster_whisper.tokenizer import Tokenizer
from faster_whisper.transcribe import get_compression_ratio, merge_punctuations

from auricle.streaming.agreement import TimedWord
from auricle.streaming.recognizer import DecodeFn, VadFn

__all__ = ["silero_vad", "whisper_decoder"]

logger = logging.getLogger(__name__)

_MIN_SPEECH_MS = 120
_MARGIN_FRAMES = 150  # silence after the audio in a short decode (mel frames of 10 ms), so the decoder sees the end
_BUCKET_FRAMES = 500  # short inputs are padded to a multiple of this
_FULL_FRAMES = 3000  # the 30 s input Whisper was trained on
_LOOPING_RATIO = 2.4  # gzip compression ratio of text that repeats itself (faster-whisper's threshold)
_PREPEND = "\"'“¿([{-"  # punctuation merged into the next word, as faster-whisper does
_APPEND = "\"'.。,，!！?？:：”)]}、"  # punctuation merged into the previous word


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
        if not final and state["language"] is not None:
            words = short_decode(model, samples, prompt, state["language"])
            if words is not None:
                return words
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


def short_decode(model: Any, samples: np.ndarray, prompt: str, language: str) -> list[TimedWord] | None:
    """A greedy decode with word times, the encoder fed only the audio plus a margin (see the module notes).

    Args:
        model: a ``faster_whisper.WhisperModel``.
        samples: 16 kHz audio.
        prompt: previous text to condition on.
        language: language code.

    Returns:
        The words (times relative to the audio's start), or None when the audio is too long for a short input or
        the decode looped.
    """
    features = model.feature_extractor(samples)
    content = features.shape[-1]
    frames = math.ceil((content + _MARGIN_FRAMES) / _BUCKET_FRAMES) * _BUCKET_FRAMES
    if frames >= _FULL_FRAMES:
        return None
    tokenizer = Tokenizer(model.hf_tokenizer, model.model.is_multilingual, task="transcribe", language=language)
    encoded = model.encode(pad_or_trim(features, frames))
    previous = tokenizer.encode(" " + prompt.strip()) if prompt.strip() else []
    start = model.get_prompt(tokenizer, previous, without_timestamps=True)
    # Speech is about 3 tokens a second; far more is a loop.
    budget = len(start) + int(len(samples) / 16000 * 8) + 16
    result = model.model.generate(encoded, [start], beam_size=1, max_length=min(model.max_length, budget))[0]
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    if not tokens:
        return []
    if get_compression_ratio(tokenizer.decode(tokens)) > _LOOPING_RATIO:
        return None
    alignment = model.find_alignment(tokenizer, [tokens], encoded, content)[0]
    merge_punctuations(alignment, _PREPEND, _APPEND)
    return [
        TimedWord(float(w["start"]), float(w["end"]), w["word"], float(w["probability"]))
        for w in alignment
        if w["word"]
    ]
