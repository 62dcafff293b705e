"""The live accuracy signals: which transcriptions count as text without speech, the weighted log-probability, the
bounded language label, and that every pipeline run records them."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from auricle.engine.pipeline import run_pipeline
from auricle.engine.signals import language_label, mean_avg_logprob, text_outside_speech
from auricle.engine.transcribe import _sentences
from auricle.engine.types import SAMPLE_RATE, Audio, Segment, SpeechSpan, TranscribeOptions, Word

from fakes import FakeTranscriber, FakeVad, Script


def _segment(start: float, end: float, text: str = "words", logprob: float = 0.0) -> Segment:
    return Segment(id=0, start=start, end=end, text=text, avg_logprob=logprob)


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class _DeafVad:
    """Finds no speech anywhere."""

    def speech_spans(self, samples: np.ndarray) -> list[SpeechSpan]:
        return []


def test_text_counts_as_without_speech_only_when_a_segment_overlaps_no_span() -> None:
    spans = [SpeechSpan(1.0, 3.0), SpeechSpan(5.0, 6.0)]
    assert not text_outside_speech([_segment(1.5, 2.5), _segment(2.5, 5.5)], spans)
    assert not text_outside_speech([_segment(0.0, 1.2)], spans)  # partly inside
    assert text_outside_speech([_segment(1.5, 2.5), _segment(3.2, 4.8)], spans)  # one segment in the gap
    assert text_outside_speech([_segment(6.0, 7.0)], spans)  # touching the end is not overlapping
    assert text_outside_speech([_segment(0.0, 1.0)], [])  # VAD found no speech at all
    assert not text_outside_speech([_segment(3.2, 4.8, text="  ")], spans)  # no text, nothing made up


def test_mean_logprob_is_weighted_by_segment_duration() -> None:
    segments = [_segment(0.0, 3.0, logprob=-0.2), _segment(3.0, 4.0, logprob=-1.0), _segment(4, 9, " ", -5.0)]
    assert mean_avg_logprob(segments) == pytest.approx((3 * -0.2 + 1 * -1.0) / 4)
    assert mean_avg_logprob([_segment(1.0, 1.0, logprob=-0.5)]) == pytest.approx(-0.5)
    assert mean_avg_logprob([]) is None


def test_language_label_is_a_known_code_or_a_fixed_word() -> None:
    assert language_label("EN") == "en"
    assert language_label("de") == "de"
    assert language_label("klingon") == "other"
    assert language_label(None) == "other"
    assert language_label("en", has_text=False) == "none"


def test_batched_sentences_carry_the_mean_logprob_of_their_words() -> None:
    scored = [(Word(0.0, 0.4, " Hello", 0.9), -0.2), (Word(0.5, 0.9, " there.", 0.9), -0.4)]
    scored.append((Word(1.0, 1.5, " Next.", 0.9), -1.0))
    first, second = _sentences(scored, keep_words=False)
    assert first.text == "Hello there." and first.avg_logprob == pytest.approx(-0.3)
    assert second.avg_logprob == pytest.approx(-1.0)


@pytest.mark.parametrize(("vad", "vad_filter", "outside"), [(FakeVad(), False, 0), (_DeafVad(), False, 1)])
def test_every_pipeline_run_records_the_signals(vad: object, vad_filter: bool, outside: int) -> None:
    # Given three seconds the fake model turns into text
    audio = Audio(np.full(3 * SAMPLE_RATE, 0.1, dtype=np.float32))
    before = (
        _value("auricle_transcriptions_total", language="en"),
        _value("auricle_transcriptions_text_without_speech_total"),
        _value("auricle_transcription_avg_logprob_count"),
    )
    # When it is transcribed without VAD filtering, with a VAD that hears speech throughout or nowhere
    options = TranscribeOptions(language="en", vad_filter=vad_filter)
    run_pipeline(audio, options, FakeTranscriber("tiny", Script()), vad)  # type: ignore[arg-type]
    # Then it counts once under its language, with one log-probability, and as text without speech only when VAD
    # found none
    assert _value("auricle_transcriptions_total", language="en") == before[0] + 1
    assert _value("auricle_transcriptions_text_without_speech_total") == before[1] + outside
    assert _value("auricle_transcription_avg_logprob_count") == before[2] + 1


def test_a_filtered_run_with_no_speech_counts_under_none() -> None:
    before = _value("auricle_transcriptions_total", language="none")
    audio = Audio(np.zeros(SAMPLE_RATE, dtype=np.float32))
    transcript = run_pipeline(audio, TranscribeOptions(), FakeTranscriber("tiny", Script()), _DeafVad())
    assert transcript.text == ""
    assert _value("auricle_transcriptions_total", language="none") == before + 1
