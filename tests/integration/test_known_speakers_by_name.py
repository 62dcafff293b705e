"""Known speakers through the real server: voices enrolled from one recording are named in another recording of
the same people (different utterances of the same two readers), as Speakr sends back the ``speaker_embeddings`` it
stored, and as OpenAI clients send ``known_speaker_names[]`` with short reference clips."""

from __future__ import annotations

import base64
import io
import json
import wave

import numpy as np
import pytest

from diarization_real import Conversation, recording_of

from support import SPEAKR_DIARIZE

pytestmark = [pytest.mark.model, pytest.mark.slow]

READERS = ["sonnet_reader", "simplicissimus_reader"]
NAMES = {"sonnet_reader": "Ann", "simplicissimus_reader": "Bert"}


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def true_voice(recording: Conversation, start: float, end: float) -> str:
    """The reader who speaks most between ``start`` and ``end``."""
    overlap = {v: 0.0 for v in recording.voices}
    for turn in recording.turns:
        overlap[turn.speaker] += max(0.0, min(end, turn.end) - max(start, turn.start))
    return max(overlap, key=lambda v: overlap[v])


def labelled_time(recording: Conversation, segments: list[dict], label_to_voice) -> tuple[float, float]:
    """(seconds whose label names the right reader, seconds of all segments)."""
    right = total = 0.0
    for segment in segments:
        length = segment["end"] - segment["start"]
        total += length
        if label_to_voice(segment["speaker"]) == true_voice(recording, segment["start"], segment["end"]):
            right += length
    return right, total


@pytest.fixture(scope="module")
def recordings() -> tuple[Conversation, Conversation]:
    return recording_of(READERS, 0), recording_of(READERS, 1)


@pytest.fixture(scope="module")
def enrolled(server, recordings) -> dict[str, list[float]]:
    """What an app like Speakr keeps from the first recording: each speaker's embedding, under the name a person
    gave that speaker after listening."""
    first, _ = recordings
    params = {**SPEAKR_DIARIZE, "return_speaker_embeddings": "true"}
    with server.client(timeout=300) as client:
        response = client.post("/asr", params=params, files={"audio_file": ("first.wav", wav_bytes(first.samples))})
    assert response.status_code == 200, response.text
    body = response.json()
    by_label: dict[str, dict[str, float]] = {}
    for segment in body["segments"]:
        voice = true_voice(first, segment["start"], segment["end"])
        by_label.setdefault(segment["speaker"], {}).setdefault(voice, 0.0)
        by_label[segment["speaker"]][voice] += segment["end"] - segment["start"]
    label_of = {max(votes, key=lambda v: votes[v]): label for label, votes in by_label.items()}
    assert set(label_of) == set(READERS), f"the first recording's two readers were not told apart: {by_label}"
    return {NAMES[voice]: body["speaker_embeddings"][label] for voice, label in label_of.items()}


def test_speakr_embeddings_name_the_same_people_in_another_recording(server, recordings, enrolled):
    # Given the embeddings kept from the first recording, under the names a person gave them
    _, second = recordings
    # When the second recording (other utterances of the same two readers) is sent with them
    with server.client(timeout=300) as client:
        response = client.post(
            "/asr",
            params=SPEAKR_DIARIZE,
            data={"known_speakers": json.dumps(enrolled)},
            files={"audio_file": ("second.wav", wav_bytes(second.samples))},
        )
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    # Then each reader's speech carries that reader's name
    assert {s["speaker"] for s in segments} == {"Ann", "Bert"}
    voice_of = {name: voice for voice, name in NAMES.items()}
    right, total = labelled_time(second, segments, voice_of.get)
    assert right >= 0.85 * total, (right, total, [(s["start"], s["end"], s["speaker"]) for s in segments])


def test_openai_reference_clips_name_the_speakers(server, recordings):
    # Given one short clip of each reader, cut from the first recording (OpenAI's known_speaker_references[])
    first, second = recordings
    clips = []
    for voice in READERS:
        turn = next(t for t in first.turns if t.speaker == voice)
        clip = first.samples[int(turn.start * 16000) : int(turn.end * 16000)]
        clips.append("data:audio/wav;base64," + base64.b64encode(wav_bytes(clip)).decode())
    # When the second recording is transcribed as diarized_json with the names and clips
    with server.client(timeout=300) as client:
        response = client.post(
            "/v1/audio/transcriptions",
            data={
                # tiny.en, as the Speakr tests: the two readers speak English and German, and a multilingual
                # model locked to one language keeps little of the other (the diarization is not what differs)
                "model": "tiny.en",
                "response_format": "diarized_json",
                "known_speaker_names[]": [NAMES[v] for v in READERS],
                "known_speaker_references[]": clips,
            },
            files={"file": ("second.wav", wav_bytes(second.samples))},
        )
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    # Then the speakers are named, and each name sits on its reader's speech
    assert {s["speaker"] for s in segments} == {"Ann", "Bert"}
    voice_of = {name: voice for voice, name in NAMES.items()}
    right, total = labelled_time(second, segments, voice_of.get)
    assert right >= 0.85 * total, (right, total)


def test_a_voice_that_matches_no_one_keeps_its_anonymous_label(server, recordings, enrolled):
    # Given only one of the two readers enrolled
    _, second = recordings
    with server.client(timeout=300) as client:
        response = client.post(
            "/asr",
            params=SPEAKR_DIARIZE,
            data={"known_speakers": json.dumps({"Ann": enrolled["Ann"]})},
            files={"audio_file": ("second.wav", wav_bytes(second.samples))},
        )
    # Then the other reader stays SPEAKER_NN
    speakers = {s["speaker"] for s in response.json()["segments"]}
    assert "Ann" in speakers and len(speakers) == 2 and all(s == "Ann" or s.startswith("SPEAKER_") for s in speakers)


@pytest.mark.parametrize(
    "endpoint,data,message",
    [
        ("/asr", {"known_speakers": json.dumps({"Ann": [0.1] * 3})}, "256 numbers"),
        ("/asr", {"known_speakers": "{not json"}, "must be JSON"),
        (
            "/v1/audio/transcriptions",
            {
                "response_format": "diarized_json",
                "known_speaker_names[]": ["Ann", "Bert"],
                "known_speaker_references[]": ["data:audio/wav;base64,AAAA"],
            },
            "give one clip per name",
        ),
        (
            "/v1/audio/transcriptions",
            {
                "response_format": "diarized_json",
                "known_speaker_names[]": ["Ann"],
                "known_speaker_references[]": ["https://example.org/ann.wav"],
            },
            "data URL",
        ),
        (
            "/v1/audio/transcriptions",
            {
                "response_format": "diarized_json",
                "known_speaker_names[]": ["Ann"],
                "known_speaker_references[]": [
                    "data:audio/wav;base64," + base64.b64encode(b"not audio at all").decode()
                ],
            },
            "not decodable audio",
        ),
    ],
)
def test_bad_known_speakers_are_a_clear_400(server, recordings, endpoint, data, message):
    _, second = recordings
    field = "audio_file" if endpoint == "/asr" else "file"
    params = SPEAKR_DIARIZE if endpoint == "/asr" else None
    with server.client(timeout=300) as client:
        response = client.post(endpoint, params=params, data=data, files={field: ("x.wav", wav_bytes(second.samples))})
        assert response.status_code == 400, response.text
        assert message in response.text
        # And the server goes on serving
        assert client.get("/health").status_code == 200
