"""Metrics and health of a real ``auricle serve`` process after a job, a streaming session and refused requests:
the README's metrics table lists exactly what ``/metrics`` exposes, and the new counters move."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest
import websockets

from support import CORPUS, ROOT, Server, start_server

pytestmark = [pytest.mark.slow, pytest.mark.model]

KEY = "observability-key"
JFK = CORPUS / "audio" / "jfk.flac"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {
        "AURICLE_DEFAULT_MODEL": "tiny.en",
        # `small` is not on this machine and downloads are off: its load fails and /health says so.
        "AURICLE_PRELOAD_MODELS": "small",
        "AURICLE_API_KEYS": KEY,
        "AURICLE_MODEL_IDLE_TTL_S": "1",
    }
    srv = start_server(tmp_path_factory.mktemp("observability"), env, wait_ready=False)
    yield srv
    srv.stop()


def _samples(server: Server) -> tuple[str, Samples]:
    text = httpx.get(server.url + "/metrics", headers={"Authorization": f"Bearer {KEY}"}, timeout=10).text
    samples: Samples = {}
    for line in text.splitlines():
        match = re.fullmatch(r"(auricle_\w+)(?:\{(.*)\})? (\S+)", line)
        if match:
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', match.group(2) or ""))
            samples[(match.group(1), labels)] = float(match.group(3))
    return text, samples


def _value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def _exposed_names(text: str) -> set[str]:
    names = set(re.findall(r"^# HELP (auricle_\w+)", text, re.MULTILINE))
    # prometheus_client adds a `_created` series for each unlabelled counter and histogram: not a metric of ours.
    return {n for n in names if not (n.endswith("_created") and any(m != n and m.startswith(n[:-8]) for m in names))}


def _readme_names() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| metric | kind | meaning |") :].split("\n\n", 1)[0]
    return set(re.findall(r"^\| `(auricle_\w+)", table, re.MULTILINE))


async def _stream_once(url: str) -> list[dict]:
    received = []
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": {}}))
        received.append(json.loads(await ws.recv()))
        await ws.send(bytes(32000))  # one second of silence, 16 kHz s16le
        await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
        async for message in ws:
            received.append(json.loads(message))
    return received


def test_health_lists_failed_models_and_queue_depth(served: Server) -> None:
    deadline = time.monotonic() + 60
    while True:
        health = httpx.get(served.url + "/health", timeout=10).json()
        if health["failed_models"] or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert [m["model"] for m in health["failed_models"]] == ["small"]
    assert health["failed_models"][0]["error"].startswith("ModelUnavailableError: model 'small'")
    assert health["queue_depth"] == 0
    assert {"status", "version", "device", "loaded_models", "active_sessions", "max_sessions"} <= set(health)


def test_readme_table_lists_exactly_the_exposed_metrics_and_new_counters_move(served: Server) -> None:
    _, before = _samples(served)
    # Given refused requests: one without a key, one with a wrong key
    assert httpx.get(served.url + "/v1/models", timeout=10).status_code == 401
    assert httpx.get(served.url + "/v1/models", headers={"Authorization": "Bearer nope"}, timeout=10).status_code == 401
    # and a transcription and a streaming session
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=300) as client:
        response = client.post("/v1/audio/transcriptions", files={"file": JFK.open("rb")}, data={"model": "whisper-1"})
        assert response.status_code == 200, response.text
    messages = asyncio.run(_stream_once(served.ws_url))
    assert messages[0]["type"] == "speech.config.ack"
    # When the idle model has been unloaded (TTL 1 s)
    deadline = time.monotonic() + 30
    while True:
        text, after = _samples(served)
        if _value(after, "auricle_model_evictions_total", model="tiny.en") or time.monotonic() > deadline:
            break
        time.sleep(0.5)

    # Then the README's table names exactly what /metrics exposes
    assert len(_readme_names()) >= 30
    assert _exposed_names(text) == _readme_names()

    def moved(name: str, **labels: str) -> float:
        return _value(after, name, **labels) - _value(before, name, **labels)

    assert moved("auricle_model_evictions_total", model="tiny.en") >= 1
    assert moved("auricle_auth_rejections_total", reason="missing_key") == 1
    assert moved("auricle_auth_rejections_total", reason="invalid_key") == 1
    assert moved("auricle_upload_bytes_count") == 1
    assert moved("auricle_upload_bytes_sum") == JFK.stat().st_size
    assert moved("auricle_audio_duration_seconds_count") == 1
    assert 10.5 < moved("auricle_audio_duration_seconds_sum") < 11.5
    assert moved("auricle_stream_connections_total", endpoint="transcribe", outcome="accepted") == 1
    assert moved("auricle_stream_sessions_opened_total", endpoint="transcribe") == 1
    assert moved("auricle_stream_sessions_closed_total", endpoint="transcribe", reason="completed") == 1
    health = httpx.get(served.url + "/health", timeout=10).json()
    info = {"version": health["version"], "device": health["device"], "compute_type": health["compute_type"]}
    assert _value(after, "auricle_service_info", **info) == 1
