"""Client message parsing and validation against the protocol contract (summarised in ``auricle.streaming``)."""

from __future__ import annotations

import json

import pytest

from auricle.config import StreamingSettings
from auricle.streaming.protocol import (
    INVALID_MESSAGE,
    ConfigMessage,
    EndMessage,
    ProtocolError,
    parse_client_message,
)
from auricle.streaming.session import session_language


def config(**payload) -> str:
    return json.dumps({"type": "speech.config", "payload": payload})


def test_config_defaults_follow_the_contract():
    message = parse_client_message(json.dumps({"type": "speech.config"}))
    assert isinstance(message, ConfigMessage)
    payload = message.payload
    assert (payload.sample_rate, payload.encoding) == (16000, "pcm_s16le")
    # No language is the server's `streaming.language`, which is the contract's "en" unless configured
    assert payload.language is None and session_language(payload.language, StreamingSettings()) == "en"
    assert session_language(None, StreamingSettings(language="auto")) is None
    assert session_language("DE", StreamingSettings(language="auto")) == "de"
    assert (payload.window_duration_ms, payload.overlap_duration_ms) == (5000, 500)
    assert payload.model_id is None and payload.resume_checkpoint is None


def test_end_message_parses_with_or_without_payload():
    assert isinstance(parse_client_message('{"type": "speech.end"}'), EndMessage)
    assert isinstance(parse_client_message('{"type": "speech.end", "payload": {}}'), EndMessage)


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[1, 2]",
        '{"payload": {}}',
        '{"type": "speech.nope", "payload": {}}',
        config(sample_rate=7999),
        config(sample_rate=96001),
        config(sample_rate="fast"),
        config(encoding="mp3"),
        config(window_duration_ms=999),
        config(window_duration_ms=60001),
        config(overlap_duration_ms=-1),
        config(window_duration_ms=2000, overlap_duration_ms=2000),
        config(language="x" * 17),
        config(model_id="m" * 129),
        config(resume_checkpoint={"full_transcript": "no session id"}),
        "[" * 100_000,
        '{"a":' * 50_000,
        '{"type": "speech.config", "payload": {"sample_rate": ' + "9" * 5000 + "}}",
    ],
)
def test_invalid_messages_are_invalid_message(text):
    with pytest.raises(ProtocolError) as caught:
        parse_client_message(text)
    assert caught.value.code == INVALID_MESSAGE


def test_ranges_accept_their_bounds_and_auto_language():
    message = parse_client_message(
        config(sample_rate=8000, window_duration_ms=1000, overlap_duration_ms=999, language="auto", encoding="opus")
    )
    assert isinstance(message, ConfigMessage)
    assert session_language(message.payload.language, StreamingSettings()) is None
    assert parse_client_message(config(sample_rate=96000, window_duration_ms=60000)).payload.sample_rate == 96000


def test_a_checkpoint_round_trips_as_resume_checkpoint():
    checkpoint = {
        "session_id": "abc",
        "last_audio_ms": 5000,
        "last_text_offset": 11,
        "last_text_end_ms": 4800,
        "full_transcript": "hello there",
        "buffer_config": {"window_duration_ms": 5000, "overlap_duration_ms": 500},
        "backend_model_id": "tiny.en",
    }
    message = parse_client_message(config(resume_checkpoint=checkpoint))
    assert isinstance(message, ConfigMessage)
    assert message.payload.resume_checkpoint is not None
    assert message.payload.resume_checkpoint.model_dump() == checkpoint
