"""The Whisper decode a streaming session runs (:class:`FasterWhisperStreamingDecoder`).

Final decodes (what phrases are made of) go through the shared transcriber's faster-whisper model with word
timestamps, no VAD filter (the streaming recognizer does its own endpointing) and no conditioning on previous
windows.

Tentative decodes (hypotheses, and the agreement that times confirmation) run many times a second per session, so
they take a short cut: Whisper's encoder is given only the audio plus a margin instead of 30 s padded (CTranslate2
accepts shorter inputs), then a greedy decode and the word alignment. That is 4-8 times faster on CPU, since the
encoder over 30 s is most of a short decode's cost. Whisper was trained on 30 s inputs, so such a decode can loop
on very short audio; a looping result is thrown away and the audio decoded the normal way. This short cut uses
faster-whisper internals (``model.model.generate``, ``find_alignment``, ``hf_tokenizer``, ``merge_punctuations``),
which is why it lives in the engine, beside the transcriber.
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

from auricle.engine.transcribe import FasterWhisperTranscriber
from auricle.engine.types import SAMPLE_RATE, Word

__all__ = ["FasterWhisperStreamingDecoder", "short_decode"]

logger = logging.getLogger(__name__)

_MARGIN_FRAMES = 150  # silence after the audio in a short decode (mel frames of 10 ms), so the decoder sees the end
_BUCKET_FRAMES = 500  # short inputs are padded to a multiple of this
_FULL_FRAMES = 3000  # the 30 s input Whisper was trained on
_LOOPING_RATIO = 2.4  # gzip compression ratio of text that repeats itself (faster-whisper's threshold)
_PREPEND = "\"'“¿([{-"  # punctuation merged into the next word, as faster-whisper does
_APPEND = "\"'.。,，!！?？:：”)]}、"  # punctuation merged into the previous word


class FasterWhisperStreamingDecoder:
    """A streaming decoder over a shared :class:`~auricle.engine.transcribe.FasterWhisperTranscriber`.

    One per session: it remembers the language it detected on the session's first utterance.

    Args:
        transcriber: the shared transcriber.
        language: language code, or None to detect it on the first utterance and keep it.
        beam_size: beam for tentative re-decodes.
        final_beam_size: beam for the last decode of an utterance.
    """

    def __init__(
        self,
        transcriber: FasterWhisperTranscriber,
        language: str | None,
        *,
        beam_size: int = 1,
        final_beam_size: int = 5,
    ) -> None:
        self._model = transcriber.model
        self._language = language if transcriber.multilingual else "en"
        self._beam_size = beam_size
        self._final_beam_size = final_beam_size
        self._lock = threading.Lock()

    @property
    def language(self) -> str | None:
        """The session's language, once given or detected."""
        return self._language

    def decode(self, samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        """Words of ``samples`` with times relative to their start (see the module notes)."""
        language = self._language
        if not final and language is not None:
            words = short_decode(self._model, samples, prompt, language, beam_size=self._beam_size)
            if words is not None:
                return words
        segments, info = self._model.transcribe(
            samples,
            language=language,
            beam_size=self._final_beam_size if final else self._beam_size,
            word_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            # Temperature fallback re-decodes up to three times; a tentative decode of audio cut mid-word often
            # trips it, and it is decoded again a moment later anyway.
            temperature=[0.0, 0.4, 0.8] if final else 0.0,
        )
        words = [
            Word(float(w.start), float(w.end), w.word, float(w.probability))
            for segment in segments
            for w in (segment.words or [])
        ]
        with self._lock:
            if self._language is None and final and words and info.language_probability > 0.5:
                self._language = info.language
                logger.info("stream language detected: %s (%.2f)", info.language, info.language_probability)
        return words


def short_decode(
    model: Any, samples: np.ndarray, prompt: str, language: str, *, beam_size: int = 1
) -> list[Word] | None:
    """A decode with word times (greedy by default), the encoder fed only the audio plus a margin (see the module
    notes).

    Args:
        model: a ``faster_whisper.WhisperModel``.
        samples: 16 kHz audio.
        prompt: previous text to condition on.
        language: language code.
        beam_size: beam width (1 = greedy).

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
    budget = len(start) + int(len(samples) / SAMPLE_RATE * 8) + 16
    result = model.model.generate(encoded, [start], beam_size=beam_size, max_length=min(model.max_length, budget))[0]
    tokens = [t for t in result.sequences_ids[0] if t < tokenizer.eot]
    if not tokens:
        return []
    if get_compression_ratio(tokenizer.decode(tokens)) > _LOOPING_RATIO:
        return None
    alignment = model.find_alignment(tokenizer, [tokens], encoded, content)[0]
    merge_punctuations(alignment, _PREPEND, _APPEND)
    return [
        Word(float(w["start"]), float(w["end"]), w["word"], float(w["probability"])) for w in alignment if w["word"]
    ]
