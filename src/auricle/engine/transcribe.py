"""The faster-whisper (CTranslate2) transcriber: the only module that imports ``faster_whisper`` for decoding.

Long audio is decoded as VAD-delimited windows of at most 30 s, in groups: each group's features are computed,
batch-decoded and dropped before the next, so memory stays nearly flat with duration while the batched decoder
gives about 1.8x the speed of the sequential one on CPU (see bench/transcribe_long.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from auricle.engine.protocols import LanguageGuess
from auricle.engine.types import SAMPLE_RATE, Segment, SpeechSpan, TranscribeOptions, Word
from auricle.engine.vad import merge_spans
from auricle.errors import UnsupportedLanguageError

__all__ = ["FasterWhisperTranscriber", "resolve_device"]

logger = logging.getLogger(__name__)

_WINDOW_S = 30.0
# Sequential (no-VAD) decoding goes through pieces of this length so its feature matrix stays bounded.
_PIECE_S = 600.0


def resolve_device(device: str, compute_type: str) -> tuple[str, str]:
    """Pick the device and compute type: int8 on CPU, float16 on CUDA, unless configured otherwise."""
    if device == "auto":
        import ctranslate2

        device = "cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    if compute_type == "default":
        compute_type = "float16" if device == "cuda" else "int8"
    return device, compute_type


class FasterWhisperTranscriber:
    """Transcriber over one loaded CTranslate2 Whisper model, safe to share between threads.

    Args:
        model: a loaded ``faster_whisper.WhisperModel``.
        name: the registry name, reported in results.
        beam_size: default beam size.
        batch_size: windows decoded together.
    """

    def __init__(self, model: Any, name: str, *, beam_size: int = 5, batch_size: int = 8) -> None:
        from faster_whisper import BatchedInferencePipeline

        self.model = model
        self.name = name
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.multilingual: bool = bool(model.model.is_multilingual)
        self._batched = BatchedInferencePipeline(model)

    @classmethod
    def load(
        cls,
        name: str,
        path: Path,
        *,
        device: str = "auto",
        compute_type: str = "default",
        cpu_threads: int = 1,
        workers: int = 1,
        beam_size: int = 5,
        batch_size: int = 8,
    ) -> FasterWhisperTranscriber:
        """Load a CTranslate2 model directory; ``workers`` is how many threads may decode at once."""
        from faster_whisper import WhisperModel

        device, compute_type = resolve_device(device, compute_type)
        model = WhisperModel(
            str(path),
            device=device,
            compute_type=compute_type,
            cpu_threads=cpu_threads,
            num_workers=workers,
            local_files_only=True,
        )
        logger.info("model %s on %s (%s), %d thread(s) x %d worker(s)", name, device, compute_type, cpu_threads, workers)
        return cls(model, name, beam_size=beam_size, batch_size=batch_size)

    def detect_language(self, samples: np.ndarray) -> LanguageGuess:
        """Guess the language from the first 30 s."""
        if not self.multilingual:
            return LanguageGuess("en", 1.0)
        language, probability, _ = self.model.detect_language(audio=samples[: int(_WINDOW_S * SAMPLE_RATE)])
        return LanguageGuess(language, float(probability))

    def _check(self, options: TranscribeOptions) -> None:
        if self.multilingual:
            return
        if options.language and options.language != "en":
            raise UnsupportedLanguageError(
                f"model '{self.name}' is English-only and cannot transcribe language '{options.language}'; "
                "use a multilingual model such as 'base'",
                param="language",
            )
        if options.task == "translate":
            raise UnsupportedLanguageError(
                f"model '{self.name}' is English-only and cannot translate; use a multilingual model such as 'base'",
                param="task",
            )

    def _decode_args(self, options: TranscribeOptions) -> dict[str, Any]:
        temperature = options.temperature if options.temperature is not None else 0.0
        return {
            "task": options.task,
            "beam_size": options.beam_size or self.beam_size,
            "initial_prompt": options.initial_prompt or None,
            "hotwords": options.hotwords or None,
            "word_timestamps": options.word_timestamps,
            "temperature": temperature,
        }

    def transcribe(
        self,
        samples: np.ndarray,
        options: TranscribeOptions,
        spans: list[SpeechSpan] | None,
        on_language: Callable[[LanguageGuess], None] | None = None,
    ) -> Iterator[Segment]:
        """Yield segments as they are decoded (see the module docstring for how)."""
        self._check(options)
        if options.language:
            guess = LanguageGuess(options.language, 1.0)
        elif spans is not None and spans:
            first = spans[0]
            guess = self.detect_language(samples[int(first.start * SAMPLE_RATE) :])
        else:
            guess = self.detect_language(samples)
        if on_language:
            on_language(guess)
        if spans is None:
            yield from self._sequential(samples, options, guess.language)
        else:
            yield from self._batched_windows(samples, options, guess.language, spans)

    def _batched_windows(
        self, samples: np.ndarray, options: TranscribeOptions, language: str, spans: list[SpeechSpan]
    ) -> Iterator[Segment]:
        windows = merge_spans(spans, max_length_s=_WINDOW_S)
        group = self.batch_size * 4
        args = self._decode_args(options)
        if isinstance(args["temperature"], list):
            args["temperature"] = args["temperature"][0]
        index = 0
        for first in range(0, len(windows), group):
            clips = [{"start": w.start, "end": min(w.end, w.start + _WINDOW_S)} for w in windows[first : first + group]]
            segments, _info = self._batched.transcribe(
                samples,
                language=language,
                clip_timestamps=clips,
                batch_size=self.batch_size,
                without_timestamps=False,
                vad_filter=False,
                **args,
            )
            for segment in segments:
                converted = _convert(segment, index, 0.0)
                if converted.text.strip():
                    index += 1
                    yield converted

    def _sequential(self, samples: np.ndarray, options: TranscribeOptions, language: str) -> Iterator[Segment]:
        args = self._decode_args(options)
        piece = int(_PIECE_S * SAMPLE_RATE)
        index = 0
        prompt = args.pop("initial_prompt")
        for offset in range(0, max(len(samples), 1), piece):
            segments, _info = self.model.transcribe(
                samples[offset : offset + piece],
                language=language,
                vad_filter=False,
                initial_prompt=prompt,
                **args,
            )
            for segment in segments:
                converted = _convert(segment, index, offset / SAMPLE_RATE)
                if converted.text.strip():
                    index += 1
                    prompt = converted.text
                    yield converted


def _convert(segment: Any, index: int, offset: float) -> Segment:
    words = [
        Word(
            start=round(float(w.start) + offset, 3),
            end=round(float(w.end) + offset, 3),
            word=w.word,
            probability=round(float(w.probability), 4),
        )
        for w in (segment.words or [])
    ]
    return Segment(
        id=index,
        start=round(float(segment.start) + offset, 3),
        end=round(float(segment.end) + offset, 3),
        text=segment.text.strip(),
        words=words,
        avg_logprob=float(segment.avg_logprob),
        no_speech_prob=float(segment.no_speech_prob),
        compression_ratio=float(segment.compression_ratio),
        temperature=float(segment.temperature or 0.0),
        tokens=list(segment.tokens),
    )
