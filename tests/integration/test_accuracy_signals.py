"""The live accuracy signals on a real ``auricle serve`` with ``tiny.en``: real speech counts under ``en`` with a
log-probability on every way in (``/asr``, ``/v1/audio/transcriptions``, ``/v1/jobs``, a ``/transcribe`` stream);
silence that the model turns into text with VAD filtering off counts as text without speech, and the same silence
with VAD on, or speech with VAD off, does not."""

from __future__ import annotations

import asyncio
import io
import json
import time
import wave
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
import websockets

from auricle.engine.decode import decode

from support import CORPUS, Server, start_server

pytestmark = [pytest.mark.slow, pytest.mark.model]

JFK = CORPUS / "audio" / "jfk.flac"
LANGUAGE = "auricle_transcriptions_total"
WITHOUT_SPEECH = "auricle_transcriptions_text_without_speech_total"
LOGPROB = "auricle_transcription_avg_logprob"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("signals"), {"AURICLE_DEFAULT_MODEL": "tiny.en"})
    yield srv
    srv.stop()


def _silence_wav() -> bytes:
    """Four seconds of digital silence, which ``tiny.en`` turns into "You" when nothing filters it out (as Whisper
    models often do; white, pink and mains-hum noise and a chord came out empty)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(bytes(4 * 16000 * 2))
    return buffer.getvalue()


def _metrics(server: Server) -> dict[str, float]:
    values: dict[str, float] = {}
    for line in httpx.get(server.url + "/metrics", timeout=10).text.splitlines():
        if line.startswith(("auricle_transcription", "auricle_transcriptions")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


class Moves:
    """How far each signal moved across one action."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.before = _metrics(server)

    def __call__(self, name: str) -> float:
        return _metrics(self.server).get(name, 0.0) - self.before.get(name, 0.0)


def _asr(server: Server, data: bytes, **params: str) -> str:
    response = httpx.post(
        server.url + "/asr", params={"output": "json", **params}, files={"audio_file": data}, timeout=120
    )
    assert response.status_code == 200, response.text
    return str(response.json()["text"]).strip()


async def _stream(url: str, pcm: bytes) -> str:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": {}}))
        await ws.recv()
        for offset in range(0, len(pcm), 6400):
            await ws.send(pcm[offset : offset + 6400])
        await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
        final = ""
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "speech.phrase" and message["payload"]["status"] == "EndOfStream":
                final = message["payload"]["text"]
    return final


def test_speech_counts_under_its_language_with_a_logprob_on_every_way_in(served: Server) -> None:
    moved = Moves(served)
    # Given JFK's 11 s of speech sent to /asr, to the OpenAI endpoint, and as a background job
    assert "country" in _asr(served, JFK.read_bytes()).lower()
    with served.client() as client:
        response = client.post("/v1/audio/transcriptions", files={"file": JFK.open("rb")}, data={"model": "tiny.en"})
        assert response.status_code == 200, response.text
        job = client.post("/v1/jobs", files={"file": JFK.open("rb")}).json()["jobs"][0]
        deadline = time.monotonic() + 120
        while client.get(f"/v1/jobs/{job['id']}").json()["status"] not in ("succeeded", "failed"):
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.3)
        assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    # and streamed over /transcribe
    samples = decode(JFK).samples
    final = asyncio.run(_stream(served.ws_url, (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()))
    assert "country" in final.lower()

    # Then each counts once under "en"; the three files have a log-probability each, a confident one
    assert moved(f'{LANGUAGE}{{language="en"}}') == 4
    assert moved(f"{LOGPROB}_count") == 3
    # (no _sum: prometheus_client leaves it out of a histogram with negative buckets; the buckets tell): all three
    # between -0.6 and -0.1, so a real log-probability and not the 0.0 of a segment that carries none
    assert moved(f'{LOGPROB}_bucket{{le="-0.6"}}') == 0
    assert moved(f'{LOGPROB}_bucket{{le="-0.1"}}') == 3
    # and none is text without speech
    assert moved(WITHOUT_SPEECH) == 0


def test_text_without_speech_counts_only_when_vad_found_none_under_the_text(served: Server) -> None:
    silence = _silence_wav()
    # Given speech with VAD filtering off: the text lies on speech, so it does not count
    moved = Moves(served)
    assert "country" in _asr(served, JFK.read_bytes(), vad_filter="false").lower()
    assert moved(WITHOUT_SPEECH) == 0 and moved(f'{LANGUAGE}{{language="en"}}') == 1

    # When silence goes through with VAD filtering off, the model makes text up, and it counts
    moved = Moves(served)
    assert _asr(served, silence, vad_filter="false")
    assert moved(WITHOUT_SPEECH) == 1

    # But with VAD filtering on (the default) nothing is decoded: no text, counted under "none", not as made up
    moved = Moves(served)
    assert _asr(served, silence) == ""
    assert moved(WITHOUT_SPEECH) == 0
    assert moved(f'{LANGUAGE}{{language="none"}}') == 1
    assert moved(f"{LOGPROB}_count") == 0
