"""Live accuracy signals of finished transcriptions, fed into the process metrics (``GET /metrics``).

They are recorded by the process that transcribes: :func:`~auricle.engine.pipeline.run_pipeline` for files (sync
requests and jobs alike, whichever process runs them); a streaming session counts itself under its language when
it ends with text (``streaming/session.py``: its words come only from speech VAD found, and the streaming decoder
keeps no log-probabilities).

- ``auricle_transcriptions_total{language}``: one per transcription, labelled with the language of its text (a code
  of :data:`~auricle.engine.languages.LANGUAGES`, so the label set stays bounded), or ``none`` when no text came out.
- ``auricle_transcriptions_text_without_speech_total``: transcriptions with at least one segment of text that
  overlaps no VAD speech span, which includes text from a file where VAD found no speech at all. With VAD filtering
  on (the default) only speech is decoded, so this mostly counts ``vad_filter=false`` requests that made text up.
- ``auricle_transcription_avg_logprob``: the duration-weighted mean of the segments' ``avg_logprob``.
"""

from __future__ import annotations

from collections.abc import Sequence

from auricle import metrics
from auricle.engine.languages import LANGUAGES
from auricle.engine.types import Segment, SpeechSpan, Transcript

__all__ = ["language_label", "mean_avg_logprob", "record_transcript", "text_outside_speech"]


def language_label(code: str | None, has_text: bool = True) -> str:
    """The ``language`` label: a known Whisper code, ``none`` without text, ``other`` for anything else."""
    if not has_text:
        return "none"
    key = (code or "").strip().lower()
    return key if key in LANGUAGES else "other"


def text_outside_speech(segments: Sequence[Segment], spans: Sequence[SpeechSpan]) -> bool:
    """Whether a segment with text overlaps none of ``spans`` (always true for text when ``spans`` is empty)."""
    return any(
        segment.text.strip() and not any(span.start < segment.end and segment.start < span.end for span in spans)
        for segment in segments
    )


def mean_avg_logprob(segments: Sequence[Segment]) -> float | None:
    """The mean ``avg_logprob`` of the segments with text, weighted by their duration; ``None`` without any."""
    scored = [(max(s.end - s.start, 0.0), s.avg_logprob) for s in segments if s.text.strip()]
    total = sum(weight for weight, _ in scored)
    if not scored:
        return None
    if total <= 0:
        return sum(logprob for _, logprob in scored) / len(scored)
    return sum(weight * logprob for weight, logprob in scored) / total


def record_transcript(transcript: Transcript, spans: Sequence[SpeechSpan]) -> None:
    """Record one finished file transcription; ``spans`` is the speech VAD found in it (all channels)."""
    has_text = bool(transcript.text)
    metrics.TRANSCRIPTIONS.labels(language_label(transcript.language, has_text)).inc()
    if not has_text:
        return
    if text_outside_speech(transcript.segments, spans):
        metrics.TEXT_WITHOUT_SPEECH.inc()
    logprob = mean_avg_logprob(transcript.segments)
    if logprob is not None:
        metrics.TRANSCRIPTION_AVG_LOGPROB.observe(logprob)
