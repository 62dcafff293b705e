"""Output renderers against golden SRT, VTT, TSV and text, and the JSON response shapes."""

from __future__ import annotations

import json
import math

import pytest

from auricle.engine import formats
from auricle.engine.formats import (
    EXTENSIONS,
    FORMATS,
    MEDIA_TYPES,
    render,
    render_srt,
    render_text,
    render_tsv,
    render_vtt,
    to_asr_json,
    to_diarized_json,
    to_verbose_json,
)
from auricle.engine.types import Segment, Transcript, Word
from auricle.errors import InvalidRequestError


def plain() -> Transcript:
    """Two segments, no speakers, no words; the second past one hour."""
    return Transcript(
        language="en",
        duration=3725.5,
        segments=[
            Segment(id=0, start=0.0, end=2.5, text=" Hello world.", tokens=[50364, 2425], avg_logprob=-0.25),
            Segment(id=1, start=3723.0456, end=3725.5, text=" Past one hour."),
        ],
    )


def diarized() -> Transcript:
    """Three segments, two speakers, word timings, speaker embeddings."""
    return Transcript(
        language="en",
        duration=6.0,
        segments=[
            Segment(
                id=0,
                start=0.0,
                end=1.5,
                text=" Hi there.",
                speaker="SPEAKER_00",
                words=[
                    Word(0.0, 0.5, " Hi", 0.98765, "SPEAKER_00"),
                    Word(0.5, 1.5, " there.", 0.9, "SPEAKER_00"),
                ],
            ),
            Segment(
                id=1, start=1.5, end=3.0, text=" How are you?", speaker="SPEAKER_00", words=[Word(1.5, 3.0, " How")]
            ),
            Segment(id=2, start=3.25, end=6.0, text=" Fine, thanks.", speaker="SPEAKER_01"),
        ],
        speaker_embeddings={"SPEAKER_00": [0.1, 0.2], "SPEAKER_01": [0.3, 0.4]},
    )


def unicode_transcript() -> Transcript:
    return Transcript(
        language="zh",
        duration=2.0,
        segments=[Segment(id=0, start=0.0, end=2.0, text="你好，世界 🎉", words=[Word(0.0, 1.0, "你好")])],
    )


EMPTY = Transcript(language="en", duration=0.0)


# -- registry ---------------------------------------------------------------------------------------------------


def test_all_is_declared_and_exists() -> None:
    assert sorted(formats.__all__) == sorted(set(formats.__all__))
    for name in formats.__all__:
        assert hasattr(formats, name), name


def test_every_format_has_a_media_type_and_extension() -> None:
    assert set(FORMATS) == {"json", "text", "srt", "vtt", "tsv", "verbose_json", "diarized_json"}
    assert set(MEDIA_TYPES) == set(FORMATS) == set(EXTENSIONS)
    assert MEDIA_TYPES["vtt"].startswith("text/vtt")
    assert EXTENSIONS["text"] == "txt"
    assert not any(ext.startswith(".") for ext in EXTENSIONS.values())


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_transcript_renders_valid_output_in_every_format(fmt: str) -> None:
    out = render(EMPTY, fmt)
    assert isinstance(out, str)
    if fmt.endswith("json"):
        json.loads(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_unicode_is_kept_verbatim_in_every_format(fmt: str) -> None:
    assert "你好，世界 🎉" in render(unicode_transcript(), fmt)


def test_render_rejects_unknown_format() -> None:
    with pytest.raises(InvalidRequestError, match="unsupported response format 'docx'") as info:
        render(plain(), "docx")
    assert info.value.param == "response_format"


def test_render_rejects_options_the_format_does_not_take() -> None:
    with pytest.raises(InvalidRequestError, match="include_words"):
        render(plain(), "srt", include_words=False)


def test_render_passes_options_through() -> None:
    body = json.loads(render(diarized(), "verbose_json", include_words=False))
    assert "words" not in body
    assert render(plain(), "json", indent=2).startswith('{\n  "text"')


# -- srt --------------------------------------------------------------------------------------------------------


def test_srt_golden_without_speakers_past_one_hour() -> None:
    assert render_srt(plain()) == (
        "1\n00:00:00,000 --> 00:00:02,500\nHello world.\n\n2\n01:02:03,046 --> 01:02:05,500\nPast one hour.\n\n"
    )


def test_srt_golden_with_speakers() -> None:
    assert render_srt(diarized()) == (
        "1\n00:00:00,000 --> 00:00:01,500\n[SPEAKER_00] Hi there.\n\n"
        "2\n00:00:01,500 --> 00:00:03,000\n[SPEAKER_00] How are you?\n\n"
        "3\n00:00:03,250 --> 00:00:06,000\n[SPEAKER_01] Fine, thanks.\n\n"
    )


def test_srt_empty_transcript_is_empty_string() -> None:
    assert render_srt(EMPTY) == ""


def test_srt_skips_silent_segments_and_renumbers_and_drops_blank_lines() -> None:
    transcript = Transcript(
        language="en",
        duration=5.0,
        segments=[
            Segment(id=0, start=0, end=1, text="   "),
            Segment(id=1, start=1, end=2, text="line one\n\nline two"),
        ],
    )
    assert render_srt(transcript) == "1\n00:00:01,000 --> 00:00:02,000\nline one\nline two\n\n"


def test_srt_hours_do_not_wrap_and_negative_times_clamp() -> None:
    transcript = Transcript(
        language="en", duration=1.0, segments=[Segment(id=0, start=-0.2, end=100 * 3600 + 0.0005, text="x")]
    )
    assert render_srt(transcript) == "1\n00:00:00,000 --> 100:00:00,000\nx\n\n"


# -- vtt --------------------------------------------------------------------------------------------------------


def test_vtt_golden_without_speakers_past_one_hour() -> None:
    assert render_vtt(plain()) == (
        "WEBVTT\n\n00:00:00.000 --> 00:00:02.500\nHello world.\n\n01:02:03.046 --> 01:02:05.500\nPast one hour.\n\n"
    )


def test_vtt_golden_with_speakers() -> None:
    assert render_vtt(diarized()) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:01.500\n<v SPEAKER_00>Hi there.\n\n"
        "00:00:01.500 --> 00:00:03.000\n<v SPEAKER_00>How are you?\n\n"
        "00:00:03.250 --> 00:00:06.000\n<v SPEAKER_01>Fine, thanks.\n\n"
    )


def test_vtt_empty_transcript_is_header_only() -> None:
    assert render_vtt(EMPTY) == "WEBVTT\n\n"


def test_vtt_escapes_markup_in_text() -> None:
    transcript = Transcript(
        language="en", duration=1.0, segments=[Segment(id=0, start=0, end=1, text="a <b> & c --> d")]
    )
    assert render_vtt(transcript) == "WEBVTT\n\n00:00:00.000 --> 00:00:01.000\na &lt;b&gt; &amp; c --&gt; d\n\n"


# -- tsv --------------------------------------------------------------------------------------------------------


def test_tsv_golden_without_speakers() -> None:
    assert render_tsv(plain()) == "start\tend\ttext\n0\t2500\tHello world.\n3723046\t3725500\tPast one hour.\n"


def test_tsv_golden_with_speakers_adds_column() -> None:
    transcript = diarized()
    transcript.segments[1].speaker = None
    assert render_tsv(transcript) == (
        "start\tend\ttext\tspeaker\n"
        "0\t1500\tHi there.\tSPEAKER_00\n"
        "1500\t3000\tHow are you?\t\n"
        "3250\t6000\tFine, thanks.\tSPEAKER_01\n"
    )


def test_tsv_empty_transcript_is_header_only() -> None:
    assert render_tsv(EMPTY) == "start\tend\ttext\n"


def test_tsv_replaces_tabs_and_newlines_in_text() -> None:
    transcript = Transcript(language="en", duration=1.0, segments=[Segment(id=0, start=0, end=1, text="a\tb\nc\r\nd")])
    assert render_tsv(transcript) == "start\tend\ttext\n0\t1000\ta b c d\n"


# -- text -------------------------------------------------------------------------------------------------------


def test_text_without_speakers_is_one_line() -> None:
    assert render_text(plain()) == "Hello world. Past one hour.\n"


def test_text_with_speakers_is_one_line_per_turn() -> None:
    assert render_text(diarized()) == "SPEAKER_00: Hi there. How are you?\nSPEAKER_01: Fine, thanks.\n"


def test_text_silent_segment_does_not_split_a_turn_and_unlabelled_segment_is_unprefixed() -> None:
    transcript = diarized()
    transcript.segments.insert(1, Segment(id=9, start=1.5, end=1.5, text=" ", speaker="SPEAKER_01"))
    transcript.segments.append(Segment(id=3, start=6.0, end=7.0, text=" Someone\nelse.", speaker=None))
    assert render_text(transcript) == ("SPEAKER_00: Hi there. How are you?\nSPEAKER_01: Fine, thanks.\nSomeone else.\n")


def test_text_empty_transcript_is_empty_string() -> None:
    assert render_text(EMPTY) == ""


# -- json (whisper-asr-webservice / WhisperX) ------------------------------------------------------------------


def test_asr_json_shape_without_speakers_or_words() -> None:
    body = to_asr_json(plain())
    assert list(body) == ["text", "language", "language_probability", "segments", "word_segments"]
    assert body["text"] == "Hello world. Past one hour."
    assert body["language"] == "en"
    assert body["word_segments"] == []
    assert body["segments"][0] == {
        "id": 0,
        "start": 0.0,
        "end": 2.5,
        "text": " Hello world.",
        "words": [],
        "avg_logprob": -0.25,
        "no_speech_prob": 0.0,
        "temperature": 0.0,
        "compression_ratio": 0.0,
        "tokens": [50364, 2425],
    }
    assert body["segments"][1]["start"] == 3723.046


def test_asr_json_shape_with_speakers_words_and_embeddings() -> None:
    body = to_asr_json(diarized())
    assert body["speaker_embeddings"] == {"SPEAKER_00": [0.1, 0.2], "SPEAKER_01": [0.3, 0.4]}
    first = body["segments"][0]
    assert first["speaker"] == "SPEAKER_00"
    assert first["words"][0] == {
        "start": 0.0,
        "end": 0.5,
        "word": " Hi",
        "probability": 0.9877,
        "score": 0.9877,
        "speaker": "SPEAKER_00",
    }
    # A word without a speaker has no speaker key.
    assert body["segments"][1]["words"] == [
        {"start": 1.5, "end": 3.0, "word": " How", "probability": 1.0, "score": 1.0}
    ]
    assert [w["word"] for w in body["word_segments"]] == [" Hi", " there.", " How"]
    json.dumps(body, allow_nan=False)


def test_asr_json_maps_non_finite_scores_to_null() -> None:
    transcript = Transcript(
        language="en", duration=1.0, segments=[Segment(id=0, start=0, end=1, text="x", avg_logprob=-math.inf)]
    )
    assert json.loads(render(transcript, "json"))["segments"][0]["avg_logprob"] is None


def test_asr_json_empty() -> None:
    assert json.loads(render(EMPTY, "json")) == {
        "text": "",
        "language": "en",
        "language_probability": 1.0,
        "segments": [],
        "word_segments": [],
    }


def test_json_keeps_unicode_unescaped() -> None:
    assert "\\u" not in render(unicode_transcript(), "json")


# -- verbose_json and diarized_json (OpenAI) -------------------------------------------------------------------


def test_verbose_json_shape_without_words() -> None:
    body = to_verbose_json(plain())
    assert list(body) == ["task", "language", "language_probability", "duration", "text", "segments"]
    assert body["task"] == "transcribe"
    assert body["language"] == "english"
    assert body["duration"] == 3725.5
    assert body["segments"][1] == {
        "id": 1,
        "seek": 372304,
        "start": 3723.046,
        "end": 3725.5,
        "text": " Past one hour.",
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": 0.0,
        "compression_ratio": 0.0,
        "no_speech_prob": 0.0,
    }


def test_verbose_json_with_words_and_speakers() -> None:
    body = to_verbose_json(diarized())
    assert body["words"] == [
        {"word": "Hi", "start": 0.0, "end": 0.5},
        {"word": "there.", "start": 0.5, "end": 1.5},
        {"word": "How", "start": 1.5, "end": 3.0},
    ]
    assert [s["speaker"] for s in body["segments"]] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01"]


def test_verbose_json_granularity_switches() -> None:
    body = to_verbose_json(diarized(), include_words=False, include_segments=False)
    assert list(body) == ["task", "language", "language_probability", "duration", "text"]


def test_verbose_json_chinese_language_name() -> None:
    assert to_verbose_json(unicode_transcript())["language"] == "chinese"


def test_diarized_json_shape() -> None:
    transcript = diarized()
    transcript.segments.append(Segment(id=3, start=6.0, end=7.0, text=" Who?"))
    body = to_diarized_json(transcript)
    assert list(body) == ["task", "duration", "text", "segments"]
    assert body["task"] == "transcribe"
    assert body["duration"] == 6.0
    assert body["segments"][0] == {
        "type": "transcript.text.segment",
        "id": "seg_0",
        "start": 0.0,
        "end": 1.5,
        "text": "Hi there.",
        "speaker": "SPEAKER_00",
    }
    assert [s["id"] for s in body["segments"]] == ["seg_0", "seg_1", "seg_2", "seg_3"]
    assert body["segments"][3]["speaker"] == "unknown"


def test_openai_json_empty() -> None:
    assert to_verbose_json(EMPTY) == {
        "task": "transcribe",
        "language": "english",
        "language_probability": 1.0,
        "duration": 0.0,
        "text": "",
        "segments": [],
    }
    assert to_diarized_json(EMPTY) == {"task": "transcribe", "duration": 0.0, "text": "", "segments": []}
