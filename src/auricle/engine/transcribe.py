"""The faster-whisper (CTranslate2) transcriber of whole files. The streaming decode over the same loaded model is
:mod:`auricle.engine.streaming_decoder`; only ``engine/`` imports ``faster_whisper``.

Short files (under ``batched_min_s``) go through faster-whisper's sequential decoder, exactly as a direct call
would. Longer files go through its batched pipeline (VAD windows of up to 30 s decoded together, faster on CPU),
one piece of about two minutes (``_PIECE_S``, 120 s) at a time, cut in a pause: each piece's features are
computed, decoded and dropped before the next, so memory stays nearly flat with duration (see
bench/transcribe_long.py).
Batched windows come back as one segment each; aligned words split them into sentence segments.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from faster_whisper import BatchedInferencePipeline

from auricle.engine.protocols import LanguageGuess
from auricle.engine.types import SAMPLE_RATE, Segment, SpeechSpan, TranscribeOptions, Word
from auricle.errors import UnsupportedLanguageError

__all__ = ["FasterWhisperTranscriber", "resolve_device"]

logger = logging.getLogger(__name__)

_WINDOW_S = 30.0
# Decoding goes through pieces of this length so the feature matrix never covers a whole long file.
_PIECE_S = 120.0
# Speech (per VAD) this long without any recognised word is decoded again.
_GAP_S = 1.5
_WORD_MARGIN_S = 0.3
_TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_SENTENCE_END = (".", "?", "!", "。", "？", "！", "…")
_PAUSE_S = 1.0
_MAX_SEGMENT_S = 12.0
_HARD_MAX_S = 20.0


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

    def __init__(
        self,
        model: Any,
        name: str,
        *,
        beam_size: int = 5,
        batch_size: int = 1,
        batched_min_s: float = 90.0,
        parallel: int = 1,
    ) -> None:
        self.model = model
        self.name = name
        self.beam_size = beam_size
        self.batch_size = batch_size
        self.batched_min_s = batched_min_s
        self.parallel = max(1, parallel)
        self.multilingual: bool = bool(model.model.is_multilingual)

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
        batch_size: int = 1,
        batched_min_s: float = 90.0,
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
        logger.info(
            "model %s on %s (%s), %d thread(s) x %d worker(s)", name, device, compute_type, cpu_threads, workers
        )
        return cls(
            model, name, beam_size=beam_size, batch_size=batch_size, batched_min_s=batched_min_s, parallel=workers
        )

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
        # No temperature given: faster-whisper's fallback schedule (0.0, 0.2 ... 1.0), as a direct call would use.
        temperature = options.temperature if options.temperature is not None else list(_TEMPERATURES)
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
        if spans is not None and not spans:
            return
        if options.language:
            guess = LanguageGuess(options.language, 1.0)
        else:
            start = int(spans[0].start * SAMPLE_RATE) if spans else 0
            guess = self.detect_language(samples[start:])
        if on_language:
            on_language(guess)
        duration = len(samples) / SAMPLE_RATE
        if spans is None or duration < self.batched_min_s:
            yield from self._sequential(samples, options, guess.language, vad=spans is not None)
        else:
            yield from self._batched_pieces(samples, options, guess.language, spans)

    def _batched_pieces(
        self, samples: np.ndarray, options: TranscribeOptions, language: str, spans: list[SpeechSpan]
    ) -> Iterator[Segment]:
        """Batched decoding over pieces of about ``_PIECE_S`` cut in pauses, so features never cover the file."""
        args = self._decode_args(options)
        if isinstance(args["temperature"], list):
            args["temperature"] = args["temperature"][0]
        # Batched windows come back as one segment each; aligned words let us split them into sentences.
        args["word_timestamps"] = True

        def decode_piece(piece: tuple[float, float]) -> list[tuple[Word, float]]:
            piece_start, piece_end = piece
            offset = int(piece_start * SAMPLE_RATE)
            # A pipeline per call: it keeps per-call state (the last speech timestamp) on itself.
            segments, _info = BatchedInferencePipeline(self.model).transcribe(
                samples[offset : int(piece_end * SAMPLE_RATE)],
                language=language,
                batch_size=self.batch_size,
                vad_filter=True,
                **args,
            )
            # Each word keeps the avg_logprob of the window it came from, for its sentence's avg_logprob.
            scored = [(_word(w, piece_start), float(d.avg_logprob)) for d in segments for w in (d.words or [])]
            inside = [s for s in spans if piece_start <= s.start < piece_end]
            scored += self._repair(samples, inside, [w for w, _ in scored], language, args)
            return sorted(scored, key=lambda item: item[0].start)

        # Pieces are decoded by up to ``parallel`` threads at once (one CTranslate2 worker each, one thread per
        # worker: on CPU that beats one decode using every core), and yielded in order.
        index = 0
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="piece") as pool:
            for words in pool.map(decode_piece, _pieces(spans, len(samples) / SAMPLE_RATE)):
                for segment in _sentences(words, options.word_timestamps):
                    segment.id = index
                    index += 1
                    yield segment

    def _repair(
        self, samples: np.ndarray, spans: list[SpeechSpan], words: list[Word], language: str, args: dict[str, Any]
    ) -> list[tuple[Word, float]]:
        """Decode again, sequentially, speech the batched pass left without words (each with its avg_logprob).

        Without timestamps a batched window sometimes ends early after a pause (the sequential decoder would seek
        on and continue); the rest of that window would be lost. VAD tells us where speech was.
        """
        repaired: list[tuple[Word, float]] = []
        for start, end in _uncovered(spans, words):
            piece = samples[int(start * SAMPLE_RATE) : int(end * SAMPLE_RATE)]
            before = [w.word for w in words if w.end <= start][-40:]
            prompt = "".join(before).strip() or args.get("initial_prompt")
            segments, _info = self.model.transcribe(
                piece, language=language, vad_filter=False, **{**args, "initial_prompt": prompt}
            )
            repaired += [(_word(w, start), float(s.avg_logprob)) for s in segments for w in (s.words or [])]
        if repaired:
            logger.debug("re-decoded %d stretch(es) the batched pass skipped", len(repaired))
        return repaired

    def _sequential(
        self, samples: np.ndarray, options: TranscribeOptions, language: str, *, vad: bool
    ) -> Iterator[Segment]:
        """faster-whisper's own sequential decoding (prompted by the previous text), over bounded pieces."""
        args = self._decode_args(options)
        piece = int(_PIECE_S * SAMPLE_RATE)
        index = 0
        prompt = args.pop("initial_prompt")
        for offset in range(0, max(len(samples), 1), piece):
            segments, _info = self.model.transcribe(
                samples[offset : offset + piece],
                language=language,
                vad_filter=vad,
                initial_prompt=prompt,
                **args,
            )
            for segment in segments:
                converted = _convert(segment, index, offset / SAMPLE_RATE)
                if converted.text.strip():
                    index += 1
                    prompt = converted.text
                    yield converted


def _word(w: Any, offset: float) -> Word:
    return Word(
        start=round(float(w.start) + offset, 3),
        end=round(float(w.end) + offset, 3),
        word=w.word,
        probability=round(float(w.probability), 4),
    )


def _pieces(spans: list[SpeechSpan], duration: float) -> list[tuple[float, float]]:
    """Cut the file into pieces of about ``_PIECE_S`` seconds, each cut in the middle of a pause between spans."""
    pieces: list[tuple[float, float]] = []
    start = 0.0
    for current, following in zip(spans, spans[1:], strict=False):
        if following.start - start >= _PIECE_S:
            cut = (current.end + following.start) / 2
            pieces.append((start, cut))
            start = cut
    pieces.append((start, duration))
    return pieces


def _uncovered(spans: list[SpeechSpan], words: list[Word]) -> list[tuple[float, float]]:
    """Stretches of VAD speech of at least ``_GAP_S`` with no recognised word, joined into <=30 s regions."""
    gaps: list[tuple[float, float]] = []
    cursor = 0
    for span in spans:
        position = span.start
        while cursor < len(words) and words[cursor].end < span.start:
            cursor += 1
        j = cursor
        while j < len(words) and words[j].start < span.end:
            if words[j].start - _WORD_MARGIN_S - position >= _GAP_S:
                gaps.append((position, words[j].start))
            position = max(position, words[j].end + _WORD_MARGIN_S)
            j += 1
        if span.end - position >= _GAP_S:
            gaps.append((position, span.end))
    regions: list[tuple[float, float]] = []
    for start, end in gaps:
        if regions and start - regions[-1][1] < 1.0 and end - regions[-1][0] <= _WINDOW_S:
            regions[-1] = (regions[-1][0], end)
        else:
            regions.append((start, min(end, start + _WINDOW_S)))
    return regions


def _sentences(scored: list[tuple[Word, float]], keep_words: bool) -> Iterator[Segment]:
    """Split a window's words into sentence-like segments (at sentence ends, long pauses, or a length cap); a
    segment's avg_logprob is the mean of its words' (each word carries the avg_logprob of its decoding window)."""
    words = [w for w, _ in scored]
    current: list[Word] = []
    logprobs: list[float] = []
    for i, word in enumerate(words):
        current.append(word)
        logprobs.append(scored[i][1])
        nxt = words[i + 1] if i + 1 < len(words) else None
        text = word.word.strip()
        ends_sentence = text.endswith(_SENTENCE_END)
        pause = nxt is not None and nxt.start - word.end > _PAUSE_S
        too_long = word.end - current[0].start > _MAX_SEGMENT_S and text.endswith((",", "，", "、", ";"))
        if nxt is None or ends_sentence or pause or too_long or word.end - current[0].start > _HARD_MAX_S:
            yield Segment(
                id=0,
                start=current[0].start,
                end=current[-1].end,
                text="".join(w.word for w in current).strip(),
                words=current if keep_words else [],
                avg_logprob=sum(logprobs) / len(logprobs),
            )
            current = []
            logprobs = []


def _convert(segment: Any, index: int, offset: float) -> Segment:
    words = [_word(w, offset) for w in (segment.words or [])]
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
