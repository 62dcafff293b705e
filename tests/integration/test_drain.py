"""Graceful drain on SIGTERM, with real processes and real signals (``auricle serve`` and ``auricle worker``).

Given work of every kind in flight, when the process gets SIGTERM, then ``/ready`` says ``draining`` at once while
the process still answers, new work gets a JSON 503 with ``Retry-After``, running work finishes within the grace
time, streaming sessions get their final phrase and checkpoint and a 1001 close, what could not finish is queued
again (never lost, never left ``running``), and the process exits 0.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import websockets

from _redis import AUDIO, Process, RedisServer, long_clip
from support import Server, normalise, start_server

pytestmark = [pytest.mark.slow, pytest.mark.model]

JFK = AUDIO / "jfk.flac"


def _sonnet() -> Path:
    matches = sorted(AUDIO.glob("librivox_sonnet001.*"))
    assert matches, "the corpus has the 53 s sonnet"
    return matches[0]


def _serve(data_dir: Path, **env: str) -> Server:
    return start_server(
        data_dir,
        {"AURICLE_DEFAULT_MODEL": "tiny.en", "AURICLE_PRELOAD_MODELS": "tiny.en", "AURICLE_WORKERS": "1", **env},
    )


class Call(threading.Thread):
    """One HTTP request in a thread; ``response`` or ``error`` afterwards."""

    def __init__(self, url: str, path: str, audio: Path, **data: str) -> None:
        super().__init__(daemon=True)
        self.url, self.path, self.audio, self.data = url, path, audio, data
        self.response: httpx.Response | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.url, timeout=120) as client:
                files = {"audio_file": (self.audio.name, self.audio.read_bytes())}
                self.response = client.post(self.path, files=files, data=self.data)
        except BaseException as exc:  # a dropped connection is a failure the test reports
            self.error = exc


class Stream(threading.Thread):
    """A ``/transcribe`` session that sends audio and never ``speech.end``: only the server can end it."""

    def __init__(self, ws_url: str, samples: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.ws_url, self.samples = ws_url, samples
        self.messages: list[dict[str, Any]] = []
        self.close_code: int | None = None
        self.sent = threading.Event()

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        pcm = (np.clip(self.samples, -1, 1) * 32767).astype("<i2").tobytes()
        async with websockets.connect(self.ws_url, max_size=None) as ws:
            await ws.send(json.dumps({"type": "speech.config", "payload": {}}))
            for i in range(0, len(pcm), 6400):
                await ws.send(pcm[i : i + 6400])
            self.sent.set()
            try:
                async for raw in ws:
                    self.messages.append(json.loads(raw))
            except websockets.ConnectionClosed:
                pass
        self.close_code = ws.close_code


class RealtimeStream(Stream):
    """A ``/v1/realtime`` transcription session that appends audio and never commits: only the server ends it."""

    async def _run(self) -> None:
        import base64

        # 24 kHz PCM, the Realtime API's default input format.
        at_24k = np.interp(np.arange(0, len(self.samples), 2 / 3), np.arange(len(self.samples)), self.samples)
        pcm = (np.clip(at_24k, -1, 1) * 32767).astype("<i2").tobytes()
        url = self.ws_url.replace("/transcribe", "/v1/realtime?intent=transcription")
        async with websockets.connect(url, max_size=None) as ws:
            for i in range(0, len(pcm), 4800):
                event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm[i : i + 4800]).decode()}
                await ws.send(json.dumps(event))
            try:
                async for raw in ws:
                    self.messages.append(json.loads(raw))
                    # Ready once the server has heard speech: an item is open, not yet committed.
                    if self.messages[-1]["type"] == "input_audio_buffer.speech_started":
                        self.sent.set()
            except websockets.ConnectionClosed:
                pass
        self.close_code = ws.close_code


def _metric(server: Server, name: str) -> float:
    for line in httpx.get(server.url + "/metrics", timeout=5).text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _stored_status(data_dir: Path, job_id: str) -> str:
    from auricle.jobs.sqlite import SqliteJobQueue

    queue = SqliteJobQueue(data_dir / "jobs.sqlite3", data_dir / "spool")
    try:
        return queue.get(job_id).status
    finally:
        queue.close()


def test_sigterm_drains_serve_finishing_work_and_requeueing_the_rest(tmp_path: Path) -> None:
    from auricle.engine.decode import decode

    data_dir = tmp_path / "data"
    # -- a generous grace: everything running finishes ----------------------------------------------------------
    server = _serve(data_dir, AURICLE_SHUTDOWN_GRACE_S="60")
    client = server.client()
    try:
        # Given a sync request running, a background job queued behind it, a sync request waiting behind both
        # and an open streaming session with audio sent,
        running = Call(server.url, "/asr", _sonnet(), output="json")
        running.start()
        _wait(lambda: _metric(server, "auricle_transcriptions_in_flight") >= 1, 60, "the first request to run")
        background = client.post("/v1/jobs", files={"file": ("jfk.flac", JFK.read_bytes())})
        assert background.status_code == 202, background.text
        background_id = background.json()["jobs"][0]["id"]
        waiting = Call(server.url, "/asr", JFK, output="json")
        waiting.start()
        _wait(lambda: _metric(server, "auricle_transcriptions_waiting") >= 1, 30, "the second request to wait")
        stream = Stream(server.ws_url, decode(JFK).samples[: 16000 * 8])
        stream.start()
        realtime = RealtimeStream(server.ws_url, decode(JFK).samples[: 16000 * 8])
        realtime.start()
        assert stream.sent.wait(30) and realtime.sent.wait(30)
        time.sleep(0.5)

        # When the server gets SIGTERM,
        server.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        # then /ready answers 503 "draining" at once while the process still serves,
        ready = httpx.get(server.url + "/ready", timeout=5)
        assert ready.status_code == 503, ready.text
        assert "draining" in ready.json()["reasons"]
        assert ready.headers.get("Retry-After")
        assert time.monotonic() - signalled < 3
        assert httpx.get(server.url + "/health", timeout=5).status_code == 200
        # new work gets a JSON 503 with Retry-After (sync and background alike),
        refused = client.post("/asr", files={"audio_file": ("jfk.flac", JFK.read_bytes())})
        assert refused.status_code == 503, refused.text
        assert refused.headers.get("Retry-After")
        assert "shutting down" in refused.json()["detail"]
        refused_job = client.post("/v1/jobs", files={"file": ("jfk.flac", JFK.read_bytes())})
        assert refused_job.status_code == 503, refused_job.text
        assert refused_job.json()["error"]["code"] == "draining"

        # the running and the waiting sync requests finish with their transcripts,
        for call in (running, waiting):
            call.join(90)
            assert call.error is None, repr(call.error)
            assert call.response is not None and call.response.status_code == 200, call.response
        assert "country" in normalise(waiting.response.json()["text"])  # type: ignore[union-attr]
        assert len(normalise(running.response.json()["text"]).split()) > 50  # type: ignore[union-attr]

        # the streaming session gets its final phrase and checkpoint, then 1001,
        stream.join(60)
        kinds = [m["type"] for m in stream.messages]
        assert kinds[-2:] == ["speech.phrase", "speech.checkpoint"], kinds
        assert "country" in normalise(stream.messages[-1]["payload"]["full_transcript"])
        assert stream.close_code == 1001
        # and so does a Realtime session: what it sent is transcribed, then 1001.
        realtime.join(60)
        completed = [
            m for m in realtime.messages if m["type"] == "conversation.item.input_audio_transcription.completed"
        ]
        assert completed and "country" in normalise(" ".join(m["transcript"] for m in completed)), realtime.messages
        assert realtime.close_code == 1001

        # and the process exits 0, with the background job (which no client waits for) still queued.
        assert server.process.wait(60) == 0, server.log.read_text()[-3000:]
    finally:
        client.close()
        server.stop()
    assert _stored_status(data_dir, background_id) == "queued"

    # -- a short grace: what is still running is handed back, and waiting sync requests get a JSON 503 --------
    long_audio = long_clip(tmp_path / "clips", seconds=85)
    server = _serve(data_dir, AURICLE_SHUTDOWN_GRACE_S="1")
    client = server.client()
    try:
        long_job = client.post("/v1/jobs", files={"file": (long_audio.name, long_audio.read_bytes())})
        assert long_job.status_code == 202, long_job.text
        long_id = long_job.json()["jobs"][0]["id"]
        _wait(lambda: client.get(f"/v1/jobs/{long_id}").json()["status"] == "running", 60, "the long job to run")
        late = Call(server.url, "/asr", JFK, output="json")
        late.start()
        _wait(lambda: _metric(server, "auricle_transcriptions_waiting") >= 1, 30, "a sync request to wait")

        server.process.send_signal(signal.SIGTERM)
        late.join(30)
        assert late.error is None, repr(late.error)
        assert late.response is not None
        assert late.response.status_code == 503, late.response.text
        assert late.response.headers["content-type"].startswith("application/json")
        assert late.response.headers.get("Retry-After")
        assert server.process.wait(30) == 0, server.log.read_text()[-3000:]
    finally:
        client.close()
        server.stop()
    # The interrupted job is queued again at once, not left running until its lease runs out.
    assert _stored_status(data_dir, long_id) == "queued"

    # -- after a restart nothing was lost ----------------------------------------------------------------------
    server = _serve(data_dir)
    try:
        with server.client() as client:
            _wait(
                lambda: all(
                    client.get(f"/v1/jobs/{i}").json()["status"] == "succeeded" for i in (background_id, long_id)
                ),
                120,
                "the queued jobs to succeed after the restart",
            )
            assert "country" in normalise(client.get(f"/v1/jobs/{background_id}/result?format=text").text)
    finally:
        server.stop()


@pytest.mark.redis
def test_sigterm_drains_auricle_worker(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis").start()
    env = {
        "AURICLE_REDIS_URL": redis.url,
        "AURICLE_LOCAL_WORKERS": "false",
        "AURICLE_DEFAULT_MODEL": "tiny.en",
        "AURICLE_WORKERS": "1",
    }
    data_dir = tmp_path / "data"
    api = start_server(data_dir, env)
    long_audio = long_clip(tmp_path / "clips", seconds=85)
    workers: list[Process] = []

    def worker(name: str, grace: str) -> Process:
        args = [sys.executable, "-m", "auricle", "worker"]
        proc = Process(
            args, {**env, "AURICLE_DATA_DIR": str(data_dir), "AURICLE_SHUTDOWN_GRACE_S": grace}, tmp_path / name
        )
        workers.append(proc)
        return proc

    try:
        with api.client() as client:
            # Given a worker with a generous grace running a job, when it gets SIGTERM, the job finishes there.
            first = worker("first.log", "60")
            job = client.post("/v1/jobs", files={"file": ("jfk.flac", JFK.read_bytes())}).json()["jobs"][0]["id"]
            _wait(lambda: client.get(f"/v1/jobs/{job}").json()["status"] == "running", 90, "the job to run")
            first.proc.send_signal(signal.SIGTERM)
            assert first.proc.wait(60) == 0, first.tail()
            assert client.get(f"/v1/jobs/{job}").json()["status"] == "succeeded"

            # Given a worker with a 1 s grace running a long job, when it gets SIGTERM, the job is queued again
            # at once (not left running until its lease ends) and another worker finishes it.
            second = worker("second.log", "1")
            long_id = client.post("/v1/jobs", files={"file": (long_audio.name, long_audio.read_bytes())}).json()[
                "jobs"
            ][0]["id"]
            _wait(lambda: client.get(f"/v1/jobs/{long_id}").json()["status"] == "running", 90, "the long job to run")
            second.proc.send_signal(signal.SIGTERM)
            assert second.proc.wait(30) == 0, second.tail()
            assert client.get(f"/v1/jobs/{long_id}").json()["status"] == "queued"
            worker("third.log", "60")
            _wait(lambda: client.get(f"/v1/jobs/{long_id}").json()["status"] == "succeeded", 180, "another worker")
    finally:
        for proc in workers:
            proc.stop()
        api.stop()
        redis.stop()
