"""``/health``, ``/ready`` in each of its states, and ``/metrics`` with gauges that move during a job."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from fakes import Script, wav_bytes

WAV = wav_bytes(1.0)
IDLE_SESSIONS = {"active_sessions": 0, "max_sessions": 20, "sessions_available": 20}


def gauges(client: TestClient) -> dict[str, float]:
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
        if not sample.labels
    }


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_health_names_the_models_and_device(client: TestClient) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["default_model"] == "base"
    assert body["models_loaded"] == ["base"] and body["device"] == "cpu" and body["compute_type"] == "int8"
    # WhisperX ASR services' and OpenASR's field names, for their clients
    assert body["loaded_models"] == ["base"]
    assert (body["active_sessions"], body["max_sessions"], body["sessions_available"]) == (0, 20, 20)


def test_health_and_ready_count_open_streaming_sessions(client: TestClient) -> None:
    # Given one open WebSocket session
    with client.websocket_connect("/transcribe"):
        # Then both report it, and the room left
        for path in ("/health", "/ready"):
            body = client.get(path).json()
            assert (body["active_sessions"], body["sessions_available"]) == (1, body["max_sessions"] - 1), path
    # And once it closed, it is no longer counted
    eventually(lambda: client.get("/health").json()["active_sessions"] == 0)


def test_ready_is_503_while_the_default_model_loads_then_200(make_client) -> None:
    # Given a model that takes its time to load
    script = Script(load_gate=threading.Event())
    client = make_client(script)
    try:
        # Then the server is alive but not ready, and says why
        response = client.get("/ready")
        assert response.status_code == 503, response.text
        assert response.json()["reasons"] == ["loading the default model"]
        assert response.headers["retry-after"] == "5"
        assert client.get("/health").status_code == 200
    finally:
        script.load_gate.set()
    # When the model is in memory, it is ready
    eventually(lambda: client.get("/ready").status_code == 200)
    assert client.get("/ready").json() == {"ready": True, "pending": 0, "capacity": 10, "reasons": [], **IDLE_SESSIONS}


def test_ready_is_503_when_the_default_model_cannot_load(make_client) -> None:
    client = make_client(default_model="large-v3")  # not installed, and downloads are off
    eventually(lambda: client.get("/ready").json()["reasons"] == ["model not loaded"])
    assert client.get("/ready").status_code == 503


def test_ready_is_200_on_an_api_node_without_a_model(make_client) -> None:
    client = make_client(local_workers=False)
    response = client.get("/ready")
    assert response.status_code == 200, response.text
    assert client.get("/health").json()["models_loaded"] == []


def test_ready_is_503_while_the_queue_is_full(make_client) -> None:
    # Given one worker busy and room for max_queue + workers = 2 waiting jobs
    script = Script(gate=threading.Event())
    client = make_client(script, workers=1, max_queue=1)
    try:
        first = client.post("/v1/jobs", files={"file": ("a.wav", WAV)}).json()["jobs"][0]
        assert script.started.wait(5)
        assert client.get("/ready").status_code == 200
        client.post("/v1/jobs", files=[("file", ("b.wav", WAV)), ("file", ("c.wav", WAV))])
        # Then it is not ready while the queue is full
        response = client.get("/ready")
        assert response.status_code == 503
        assert response.json() == {
            "ready": False,
            "pending": 2,
            "capacity": 2,
            "reasons": ["queue is full"],
            "active_sessions": 0,
            "max_sessions": 20,
            "sessions_available": 20,
        }
        # And a submit beyond the room is 503 whose message counts what waits against the room it has
        refused = client.post("/v1/jobs", files={"file": ("d.wav", WAV)})
        assert refused.status_code == 503 and refused.headers["retry-after"]
        assert (
            refused.json()["error"]["message"] == "the job queue is full: 2 job(s) wait and at most 2 may; retry later"
        )
    finally:
        script.gate.set()
    # And ready again once the jobs ran
    eventually(lambda: client.get(f"/v1/jobs/{first['id']}").json()["status"] == "succeeded")
    eventually(lambda: client.get("/ready").status_code == 200)


def test_sync_gauges_count_waiting_then_in_flight_requests(make_client) -> None:
    # Given one worker and a transcription held in the engine
    script = Script(gate=threading.Event())
    client = make_client(script, workers=1)
    at_rest = gauges(client)
    assert at_rest["auricle_transcriptions_in_flight"] == 0 and at_rest["auricle_transcriptions_waiting"] == 0
    results: list[int] = []

    def post() -> None:
        results.append(client.post("/asr", files={"audio_file": ("a.wav", WAV)}).status_code)

    first = threading.Thread(target=post)
    first.start()
    try:
        # When the first request's job runs, it is in flight
        assert script.started.wait(5)
        eventually(lambda: gauges(client)["auricle_transcriptions_in_flight"] == 1)
        assert gauges(client)["auricle_transcriptions_waiting"] == 0
        # And a second request waits for the busy worker
        second = threading.Thread(target=post)
        second.start()
        eventually(lambda: gauges(client)["auricle_transcriptions_waiting"] == 1)
        assert gauges(client)["auricle_transcriptions_in_flight"] == 1
    finally:
        script.gate.set()
    first.join(10)
    second.join(10)
    # Then both finish and the gauges are back at rest
    assert results == [200, 200]
    after = gauges(client)
    assert after["auricle_transcriptions_in_flight"] == 0 and after["auricle_transcriptions_waiting"] == 0
    assert after["auricle_models_loaded"] == 1


def test_request_metrics_are_labelled_by_route_template(client: TestClient) -> None:
    client.get("/v1/jobs/" + "0" * 32)
    text = client.get("/metrics").text
    assert 'auricle_http_requests_total{method="GET",route="/v1/jobs/{job_id}",status="404"}' in text
    assert 'auricle_errors_total{type="job_not_found"}' in text
