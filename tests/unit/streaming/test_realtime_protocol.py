"""OpenAI Realtime events: session.update merging, client event parsing and its errors, G.711 decoding."""

from __future__ import annotations

import base64
import json
import warnings

import pytest

from auricle.streaming.realtime_protocol import (
    AppendEvent,
    PcmaFormat,
    PcmFormat,
    RealtimeError,
    SessionConfig,
    decode_g711,
    error_event,
    parse_client_event,
)


def test_an_update_replaces_only_the_fields_it_names():
    # Given a session updated to manual commits, G.711 A-law and a language
    config = SessionConfig().updated(
        {
            "type": "transcription",
            "audio": {"input": {"format": {"type": "audio/pcma"}, "transcription": {"language": "de"}}},
        }
    )
    config = config.updated({"type": "transcription", "audio": {"input": {"turn_detection": None}}})
    # When a later update names only the turn detection
    # Then the format and transcription stay as they were
    assert isinstance(config.audio_input.format, PcmaFormat)
    assert config.audio_input.transcription.language == "de"
    assert config.server_vad is None


def test_defaults_are_openais():
    config = SessionConfig()
    assert config.audio_input.format == PcmFormat(type="audio/pcm", rate=24_000)
    assert config.server_vad is not None and config.server_vad.silence_duration_ms == 500
    described = config.describe("sess_1", "tiny.en")
    assert described["object"] == "realtime.transcription_session"
    assert described["audio"]["input"]["transcription"]["model"] == "tiny.en"


def test_a_format_without_type_is_pcm_at_the_given_rate():
    config = SessionConfig().updated({"type": "transcription", "audio": {"input": {"format": {"rate": 16000}}}})
    assert config.audio_input.format == PcmFormat(rate=16000)


@pytest.mark.parametrize(
    ("session", "param"),
    [
        ({"type": "realtime"}, "session.type"),
        (
            {"type": "transcription", "audio": {"input": {"format": {"type": "audio/flac"}}}},
            "session.audio.input.format",
        ),
        ({"type": "transcription", "audio": {"input": {"format": {"rate": 10}}}}, "session.audio.input.format.rate"),
        (
            {"type": "transcription", "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}},
            "session.audio.input.turn_detection.threshold",
        ),
        ({"type": "transcription", "include": ["everything"]}, "session.include"),
    ],
)
def test_a_bad_update_names_the_field(session, param):
    with pytest.raises(RealtimeError) as caught:
        SessionConfig().updated(session)
    assert caught.value.code == "invalid_value" and caught.value.param == param


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{nope", "invalid_json"),
        ("[" * 100_000, "invalid_json"),
        ('{"type": "session.update", "event_id": ' + "1" * 5000 + "}", "invalid_json"),
        ("[1]", "invalid_json"),
        (json.dumps({"audio": "AA=="}), "missing_required_parameter"),
        (json.dumps({"type": "response.create"}), "invalid_value"),
        (json.dumps({"type": "input_audio_buffer.append"}), "invalid_value"),
    ],
)
def test_bad_events_raise_openai_error_codes(text, code):
    with pytest.raises(RealtimeError) as caught:
        parse_client_event(text)
    assert caught.value.code == code


def test_errors_carry_the_client_event_id():
    with pytest.raises(RealtimeError) as caught:
        parse_client_event(json.dumps({"type": "conversation.item.create", "event_id": "evt_9"}))
    event = error_event(caught.value)
    assert event["type"] == "error" and event["event_id"].startswith("event_")
    assert event["error"] == {
        "type": "invalid_request_error",
        "code": "invalid_value",
        "message": caught.value.message,
        "param": "type",
        "event_id": "evt_9",
    }


def test_append_decodes_base64_and_refuses_anything_else():
    event = parse_client_event(json.dumps({"type": "input_audio_buffer.append", "audio": "AAEC"}))
    assert isinstance(event, AppendEvent) and event.audio_bytes() == b"\x00\x01\x02"
    bad = parse_client_event(json.dumps({"type": "input_audio_buffer.append", "audio": "not base64!"}))
    with pytest.raises(RealtimeError):
        bad.audio_bytes()


@pytest.mark.parametrize("kind", ["audio/pcmu", "audio/pcma"])
def test_g711_tables_match_the_standard_decoder(kind):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import audioop

    every_code = bytes(range(256))
    expected = audioop.ulaw2lin(every_code, 2) if kind == "audio/pcmu" else audioop.alaw2lin(every_code, 2)
    assert decode_g711(every_code, kind) == expected
    assert len(decode_g711(base64.b64decode("AAAA"), kind)) == 6


@pytest.mark.parametrize(
    ("sent", "final", "rest"),
    [
        ("", "and so my fellow americans", "and so my fellow americans"),
        ("And so my fellow", "And so my fellow Americans.", "Americans."),
        # The final decode has a word more before the last word sent: no word is repeated
        ("And so my fellow", "And so am I fellow Americans.", "Americans."),
        # ... or a word fewer: none is skipped
        ("ask not what your", "ask what your country", "country"),
        # Nothing to align on: continue after as many words as were sent
        ("one two three", "four five six seven", "seven"),
    ],
)
def test_deltas_continue_after_the_last_word_sent(sent, final, rest):
    from auricle.streaming.realtime import _aligned

    words = final.split()
    assert " ".join(words[_aligned(sent.split(), words) :]) == rest
