"""Speaker labels through the real server: Speakr's diarization request, OpenAI's diarized_json, every output
format with speakers, per-channel stereo, and jobs/CLI `--diarize`."""

from __future__ import annotations

import io
import subprocess
import sys
import wave

import numpy as np
import pytest

from diarization_synth import flite_available, make_conversation
from support import CORPUS, SPEAKR_DIARIZE

pytestmark = [pytest.mark.model, pytest.mark.slow]


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory) -> bytes:
    if not flite_available():
        pytest.fail("flite is required (scripts/setup --dev installs it)")
    conversation = make_conversation(tmp_path_factory.mktemp("conv"), ("awb", "slt"), turns=6, seed=3)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(conversation.samples, -1, 1) * 32767).astype("<i2").tobytes())
    return buffer.getvalue()


def test_speakr_request_finds_two_speakers_with_embeddings(server, two_speakers):
    params = {**SPEAKR_DIARIZE, "encode": "true", "task": "transcribe", "return_speaker_embeddings": "true"}
    with server.client() as client:
        response = client.post("/asr", params=params, files={"audio_file": ("meeting.wav", two_speakers)})
    assert response.status_code == 200, response.text
    body = response.json()
    speakers = {s["speaker"] for s in body["segments"]}
    assert speakers == {"SPEAKER_00", "SPEAKER_01"}
    assert set(body["speaker_embeddings"]) == speakers
    assert all(len(v) == 256 for v in body["speaker_embeddings"].values())
    assert all("speaker" in w for s in body["segments"] for w in s["words"])


def test_one_speaker_file_is_not_split(server):
    with server.client() as client, open(CORPUS / "audio" / "librivox_sonnet001.mp3", "rb") as f:
        response = client.post(
            "/asr", params={"diarize": "true", "model": "tiny.en"}, files={"audio_file": ("sonnet.mp3", f)}
        )
    assert {s["speaker"] for s in response.json()["segments"]} == {"SPEAKER_00"}


@pytest.mark.parametrize(
    "output,marker", [("srt", "[SPEAKER_0"), ("vtt", "<v SPEAKER_0"), ("tsv", "\tspeaker"), ("txt", "SPEAKER_01:")]
)
def test_subtitle_outputs_carry_speakers(server, two_speakers, output, marker):
    with server.client() as client:
        response = client.post(
            "/asr",
            params={"diarize": "true", "output": output, "model": "tiny.en"},
            files={"audio_file": ("meeting.wav", two_speakers)},
        )
    assert response.status_code == 200 and marker in response.text


def test_openai_diarized_json(server, two_speakers):
    with server.client() as client:
        response = client.post(
            "/v1/audio/transcriptions",
            data={"model": "tiny.en", "response_format": "diarized_json"},
            files={"file": ("m.wav", two_speakers)},
        )
    assert response.status_code == 200, response.text
    segments = response.json()["segments"]
    assert {s["type"] for s in segments} == {"transcript.text.segment"}
    assert {s["speaker"] for s in segments} == {"SPEAKER_00", "SPEAKER_01"}


def test_stereo_call_is_split_per_channel(server):
    with server.client() as client, open(CORPUS / "audio" / "stereo_two_speakers.wav", "rb") as f:
        body = client.post(
            "/asr", params={"diarize": "true", "model": "tiny.en"}, files={"audio_file": ("call.wav", f)}
        ).json()
    by_speaker = {}
    for segment in body["segments"]:
        by_speaker.setdefault(segment["speaker"], []).append(segment["text"].lower())
    assert len(by_speaker) == 2
    assert any("horizon" in " ".join(texts) for texts in by_speaker.values())


def test_cli_diarize(tmp_path, two_speakers):
    path = tmp_path / "meeting.wav"
    path.write_bytes(two_speakers)
    result = subprocess.run(
        [sys.executable, "-m", "auricle", "transcribe", str(path), "--diarize", "--model", "tiny.en", "-o", "text"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "SPEAKER_00:" in result.stdout and "SPEAKER_01:" in result.stdout
