"""decode → VAD → transcribe → diarize → Transcript, reporting progress as it goes.

The job runner, the CLI and the HTTP layer all call :func:`run_pipeline`; nothing else chains the stages.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np

from auricle.engine import signals
from auricle.engine.decode import decode
from auricle.engine.protocols import Diarizer, LanguageGuess, Transcriber, VadModel
from auricle.engine.types import Audio, Segment, SpeechSpan, TranscribeOptions, Transcript
from auricle.errors import CancelledError

__all__ = ["PipelineEvent", "PipelineStats", "run_pipeline"]

logger = logging.getLogger(__name__)

Stage = Literal["decoding", "vad", "transcribing", "diarizing", "done"]


@dataclass
class PipelineEvent:
    """Something a watcher may want to show: a new stage, the language, or a decoded segment."""

    kind: Literal["stage", "language", "segment"]
    stage: Stage
    progress: float  # 0..1 of the audio processed
    segment: Segment | None = None
    language: LanguageGuess | None = None
    duration: float | None = None


@dataclass
class PipelineStats:
    """Timings of one run, in seconds."""

    audio_seconds: float = 0.0
    processing_seconds: float = 0.0
    first_segment_seconds: float | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def real_time_factor(self) -> float | None:
        """Audio seconds per wall second (higher is faster)."""
        return self.audio_seconds / self.processing_seconds if self.processing_seconds > 0 else None


def run_pipeline(
    source: str | Path | Audio,
    options: TranscribeOptions,
    transcriber: Transcriber,
    vad: VadModel,
    *,
    diarizer: Diarizer | None = None,
    on_event: Callable[[PipelineEvent], None] | None = None,
    cancelled: Callable[[], bool] | None = None,
    max_audio_s: float | None = None,
    stats: PipelineStats | None = None,
) -> Transcript:
    """Transcribe one file.

    Args:
        source: a path, or already decoded audio.
        options: what the caller asked for.
        transcriber: the loaded model.
        vad: speech finder (used unless ``options.vad_filter`` is false and no diarization is asked).
        diarizer: used when ``options.diarize``; required then.
        on_event: progress callback (called from this thread).
        cancelled: polled between segments; when it returns true, :class:`CancelledError` is raised.
        max_audio_s: longest audio accepted.
        stats: filled with timings when given.
    """
    stats = stats if stats is not None else PipelineStats()
    started = time.perf_counter()
    emit = on_event or (lambda _event: None)

    def stage_done(name: str, since: float) -> float:
        now = time.perf_counter()
        stats.stage_seconds[name] = stats.stage_seconds.get(name, 0.0) + now - since
        return now

    emit(PipelineEvent("stage", "decoding", 0.0))
    t = time.perf_counter()
    audio = (
        source if isinstance(source, Audio) else decode(source, keep_channels=options.diarize, max_seconds=max_audio_s)
    )
    duration = audio.duration
    stats.audio_seconds = duration
    t = stage_done("decode", t)

    per_channel = options.diarize and audio.channels is not None and _distinct_channels(audio.channels)
    spans = None
    if (options.vad_filter or options.diarize) and not per_channel:
        emit(PipelineEvent("stage", "vad", 0.0, duration=duration))
        spans = vad.speech_spans(audio.samples)
        t = stage_done("vad", t)

    language = LanguageGuess(options.language or "en", 1.0)

    def on_language(guess: LanguageGuess) -> None:
        nonlocal language
        language = guess
        emit(PipelineEvent("language", "transcribing", 0.0, language=guess, duration=duration))

    emit(PipelineEvent("stage", "transcribing", 0.0, duration=duration))
    # Speakers are attributed word by word, so diarization always aligns words (dropped again if not asked for).
    decode_options = replace(options, word_timestamps=True) if options.diarize else options

    def transcribe(samples: np.ndarray, samples_spans: list[SpeechSpan] | None, speaker: str | None) -> None:
        decode_spans = samples_spans if options.vad_filter else None
        if decode_spans is not None and not decode_spans:
            return
        for segment in transcriber.transcribe(samples, decode_options, decode_spans, on_language):
            if cancelled and cancelled():
                raise CancelledError("transcription was cancelled")
            if stats.first_segment_seconds is None:
                stats.first_segment_seconds = time.perf_counter() - started
            if speaker:
                segment.speaker = speaker
                for word in segment.words:
                    word.speaker = speaker
            segments.append(segment)
            emit(PipelineEvent("segment", "transcribing", _fraction(segment.end, duration), segment=segment))

    segments: list[Segment] = []
    channel_spans: list[list[SpeechSpan]] = []
    if per_channel:
        # A call recording (one speaker per channel): each channel is transcribed on its own, which is exact even
        # when both talk at once.
        assert audio.channels is not None
        from auricle.engine.diarize import speaker_label

        for index, channel in enumerate(audio.channels):
            samples = np.ascontiguousarray(channel)
            channel_spans.append(vad.speech_spans(samples))
            transcribe(samples, channel_spans[-1], speaker_label(index))
        segments.sort(key=lambda seg: (seg.start, seg.end))
        for index, segment in enumerate(segments):
            segment.id = index
    else:
        transcribe(audio.samples, spans, None)
    t = stage_done("transcribe", t)

    transcript = Transcript(
        language=language.language,
        language_probability=round(language.probability, 4),
        duration=round(duration, 3),
        segments=segments,
        task=options.task,
        model=getattr(transcriber, "name", None),
    )
    if options.diarize and segments:
        if cancelled and cancelled():
            raise CancelledError("transcription was cancelled")
        emit(PipelineEvent("stage", "diarizing", 1.0))
        _diarize(transcript, audio, spans or [], channel_spans, options, diarizer, vad)
        stage_done("diarize", t)
        if not options.word_timestamps:
            for segment in transcript.segments:
                segment.words = []
    stats.processing_seconds = time.perf_counter() - started
    signals.record_transcript(transcript, _speech(audio, spans, channel_spans, transcript, vad))
    emit(PipelineEvent("stage", "done", 1.0))
    return transcript


def _speech(
    audio: Audio,
    spans: list[SpeechSpan] | None,
    channel_spans: list[list[SpeechSpan]],
    transcript: Transcript,
    vad: VadModel,
) -> list[SpeechSpan]:
    """The speech VAD found in the file, for the text-without-speech signal. Without VAD filtering VAD has not run
    yet: it runs now, and only when there is text to check (2-4 % of a ``tiny.en`` run on 11-53 s of speech)."""
    if channel_spans:
        return [span for found in channel_spans for span in found]
    if spans is None and transcript.text:
        return vad.speech_spans(audio.samples)
    return spans or []


def _fraction(position: float, duration: float) -> float:
    return min(1.0, max(0.0, position / duration)) if duration > 0 else 1.0


def _diarize(
    transcript: Transcript,
    audio: Audio,
    spans: list[SpeechSpan],
    channel_spans: list[list[SpeechSpan]],
    options: TranscribeOptions,
    diarizer: Diarizer | None,
    vad: VadModel,
) -> None:
    """Label the transcript's words and segments with speakers (in place); known voices carry their names."""
    from auricle.engine import diarize as diarization
    from auricle.engine.known_speakers import enrolled_voices, name_known_speakers

    if channel_spans:
        assert audio.channels is not None
        if options.return_speaker_embeddings and diarizer is not None:
            result = diarizer.diarize_channels(audio.channels, channel_spans)  # type: ignore[attr-defined]
            transcript.speaker_embeddings = result.embeddings
        return
    if diarizer is None:
        raise RuntimeError("diarization asked but no diarizer was given")
    result = diarizer.diarize(
        audio.samples,
        spans,
        num_speakers=options.num_speakers,
        min_speakers=options.min_speakers,
        max_speakers=options.max_speakers,
    )
    known = enrolled_voices(options.known_speakers, options.known_speaker_references, diarizer, vad)
    if known:
        result = name_known_speakers(result, known)
    transcript.segments = diarization.assign_speakers(transcript.segments, result.turns)
    if options.return_speaker_embeddings:
        transcript.speaker_embeddings = result.embeddings


def _distinct_channels(channels: np.ndarray) -> bool:
    """True when a stereo file holds different signals per channel (a call recording), not duplicated mono."""
    left, right = channels[0], channels[1]
    if not left.any() or not right.any():
        return False
    corr = float(np.corrcoef(left[::4], right[::4])[0, 1])
    return corr < 0.5
