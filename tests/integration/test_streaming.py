"""WebSocket `/transcribe` against a real server process, with a client written only from STREAMING.md.

The client below uses nothing but `websockets` and `json`; the project is imported only to compute the batch
baseline (faster-whisper on the same model directory) and to decode corpus files to PCM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets

from tests.conftest import CORPUS, english_with_reference, free_port, normalise, wer

pytestmark = [pytest.mark.slow, pytest.mark.model]

FRAME_MS = 200


# -- a client written from STREAMING.md only ------------------------------------------------------------------------


@dataclass
class StreamResult:
    """What a session sent back."""

    messages: list[dict] = field(default_factory=list)
    final_text: str | None = None
    checkpoints: list[dict] = field(default_factory=list)
    closed: bool = False

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]


async def stream(
    url: str,
    frames: list[bytes],
    *,
    config: dict | None = None,
    pace_s: float = 0.0,
    headers: dict | None = None,
    stop_after_checkpoint_ms: int | None = None,
) -> StreamResult:
    """Send ``speech.config``, the frames (paced or not), ``speech.end``; collect every server message."""
    result = StreamResult()
    async with websockets.connect(url, additional_headers=headers or {}, max_size=None) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": config or {}}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "speech.config.ack", ack
        result.messages.append(ack)
        done = asyncio.Event()

        async def send() -> None:
            for frame in frames:
                if done.is_set():
                    return
                await ws.send(frame)
                if pace_s:
                    await asyncio.sleep(pace_s)
            if stop_after_checkpoint_ms is None:
                await ws.send(json.dumps({"type": "speech.end", "payload": {}}))

        sender = asyncio.create_task(send())
        try:
            async for raw in ws:
                message = json.loads(raw)
                result.messages.append(message)
                if message["type"] == "speech.checkpoint":
                    result.checkpoints.append(message["payload"])
                    last = message["payload"]["last_audio_ms"]
                    if stop_after_checkpoint_ms is not None and last >= stop_after_checkpoint_ms:
                        break
                if message["type"] == "speech.phrase" and message["payload"]["status"] == "EndOfStream":
                    result.final_text = message["payload"]["text"]
        except websockets.ConnectionClosed:
            result.closed = True
        done.set()
        sender.cancel()
    return result


def pcm_frames(samples: np.ndarray, rate: int = 16000, frame_ms: int = FRAME_MS) -> list[bytes]:
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    step = rate * frame_ms // 1000 * 2
    return [data[i : i + step] for i in range(0, len(data), step)]


# -- server processes ------------------------------------------------------------------------------------------------


@dataclass
class ServerProcess:
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/transcribe"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start(data_dir: Path, **env: str) -> ServerProcess:
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"server-{port}.log"
    full_env = {
        **os.environ,
        "AURICLE_DATA_DIR": str(data_dir),
        "AURICLE_DEFAULT_MODEL": "tiny.en",
        **env,
    }
    command = [sys.executable, "-m", "uvicorn", "auricle.app:create_app", "--factory", "--port", str(port)]
    process = subprocess.Popen(command, env=full_env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    server = ServerProcess(port, process, log)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"server did not start:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start(tmp_path_factory.mktemp("stream"), AURICLE_PRELOAD_MODELS="tiny.en")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """Small limits: 2 sessions, 64 kB frames."""
    srv = start(
        tmp_path_factory.mktemp("strict"),
        AURICLE_STREAMING__SESSION_LIMIT="2",
        AURICLE_STREAMING__MAX_FRAME_BYTES="65536",
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def audio():
    from auricle.engine.decode import decode

    return {e["id"]: decode(CORPUS / e["audio"]).samples for e in english_with_reference()}


@pytest.fixture(scope="module")
def batch_text(audio):
    """Batch transcription of each file with the same model (faster-whisper defaults, beam 5)."""
    from faster_whisper import WhisperModel

    from auricle.config import Settings
    from auricle.models.registry import ModelRegistry

    model = WhisperModel(str(ModelRegistry(Settings()).resolve("tiny.en")), device="cpu", compute_type="int8")
    texts = {}
    for key, samples in audio.items():
        segments, _ = model.transcribe(samples, language="en", beam_size=5)
        texts[key] = " ".join(s.text.strip() for s in segments)
    return texts


ENTRIES = {e["id"]: e for e in english_with_reference()}
EN_IDS = list(ENTRIES)


# -- (a) accuracy ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry_id", EN_IDS)
def test_unpaced_stream_matches_batch_accuracy(server, audio, batch_text, entry_id):
    # Given a client that sends the whole file as fast as the socket allows
    result = asyncio.run(stream(server.ws_url, pcm_frames(audio[entry_id])))
    # Then the final transcript is about as accurate as a batch transcription with the same model
    reference = ENTRIES[entry_id]["reference"]
    assert result.final_text is not None
    streamed, batch = wer([reference], [result.final_text]), wer([reference], [batch_text[entry_id]])
    print(f"{entry_id}: stream WER {streamed:.3f}, batch WER {batch:.3f}")
    assert streamed <= batch + 0.02 + 1e-9, (result.final_text, batch_text[entry_id])
    # And the phrases concatenate to the final transcript, followed by the final checkpoint
    phrases = [m["payload"] for m in result.of("speech.phrase") if m["payload"]["status"] == "Success"]
    assert normalise(" ".join(p["text"] for p in phrases)) == normalise(result.final_text)
    assert result.messages[-1]["type"] == "speech.checkpoint"
    assert result.checkpoints[-1]["full_transcript"] == result.final_text


def test_real_time_stream_gives_hypotheses_then_phrases(server, audio, batch_text):
    entry_id = "en_jfk_inaugural"
    result = asyncio.run(stream(server.ws_url, pcm_frames(audio[entry_id]), pace_s=FRAME_MS / 1000))
    reference = ENTRIES[entry_id]["reference"]
    assert wer([reference], [result.final_text or ""]) <= wer([reference], [batch_text[entry_id]]) + 0.02
    kinds = [m["type"] for m in result.messages]
    assert kinds.index("speech.hypothesis") < kinds.index("speech.phrase") < kinds.index("speech.checkpoint")
    first = result.of("speech.phrase")[0]["payload"]
    assert first["status"] == "Success" and 0 <= first["offset"] < 2000 and first["duration"] > 0
    assert 0 < first["confidence"] <= 1
    assert not result.of("speech.backpressure")


def test_silence_produces_no_text(server):
    result = asyncio.run(stream(server.ws_url, pcm_frames(np.zeros(16000 * 4, dtype=np.float32))))
    assert result.final_text == ""
    assert not result.of("speech.hypothesis")


def test_opus_round_trip(server, audio, batch_text):
    import av

    entry_id = "en_librispeech_1995-1837-0001"
    import soxr

    samples48 = soxr.resample(audio[entry_id], 16000, 48000)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "mono", "s16", 48000
    encoder.open()
    pcm = (np.clip(samples48, -1, 1) * 32767).astype(np.int16)
    packets: list[bytes] = []
    for index, start in enumerate(range(0, len(pcm) - 960 + 1, 960)):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 960], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, index * 960
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    result = asyncio.run(stream(server.ws_url, packets, config={"encoding": "opus", "sample_rate": 48000}))
    reference = ENTRIES[entry_id]["reference"]
    assert wer([reference], [result.final_text or ""]) <= wer([reference], [batch_text[entry_id]]) + 0.05


def test_resampled_input_is_recognised(server, audio):
    import soxr

    samples = soxr.resample(audio["en_jfk_inaugural"], 16000, 44100)
    config = {"sample_rate": 44100}
    result = asyncio.run(stream(server.ws_url, pcm_frames(samples, rate=44100), config=config))
    assert "ask not what your country" in normalise(result.final_text or "")
