"""``/v1/jobs`` integrations in-process on the fake engine, against real local HTTP servers: webhooks (also across
an app restart), jobs from URLs with each failure's message, the address guard, session delete, linked re-runs and
the bounded ``beam_size``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standardwebhooks import Webhook

from _hooks import SECRET, FileServer, Receiver

from fakes import Script, wav_bytes

MakeClient = Callable[..., TestClient]
WAV = wav_bytes(2.0)
HOOKS = {
    "webhook_secret": SECRET,
    "webhook_poll_s": 0.05,
    "webhook_backoff_s": 0.1,
    "url_allow_private": True,
}


def wait(client: TestClient, job_id: str, timeout: float = 10) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


def submit(client: TestClient, *, files: int = 1, **data: Any) -> list[dict[str, Any]]:
    upload = [("file", (f"a{i}.wav", WAV, "audio/wav")) for i in range(files)]
    response = client.post("/v1/jobs", files=upload or None, data=data)
    assert response.status_code == 202, response.text
    jobs: list[dict[str, Any]] = response.json()["jobs"]
    return jobs


# -- webhooks ------------------------------------------------------------------------------------------------------


def test_webhook_fails_once_then_arrives_signed_with_the_same_id(make_client: MakeClient) -> None:
    client = make_client(**HOOKS)
    with Receiver(statuses=[500]) as receiver:
        # Given a job whose receiver fails the first delivery
        [job] = submit(client, webhook_url=receiver.url)
        assert wait(client, job["id"])["status"] == "succeeded"
        # When the deliverer retries
        first, second = receiver.wait(2)
    # Then both deliveries carry one id, and the second verifies with the reference implementation
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    payload = Webhook(SECRET).verify(second.body, second.headers)
    assert payload["type"] == "job.succeeded" and payload["data"]["id"] == job["id"]
    assert payload["data"]["result_url"] == f"/v1/jobs/{job['id']}/result"
    hook = client.get(f"/v1/jobs/{job['id']}").json()["webhook"]
    deadline = time.monotonic() + 5
    while hook["state"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.02)
        hook = client.get(f"/v1/jobs/{job['id']}").json()["webhook"]
    assert hook["attempts"] == 2 and hook["last_status"] == 204
    metrics = client.get("/metrics").text
    assert 'auricle_webhook_deliveries_total{outcome="retry"}' in metrics
    assert 'auricle_webhook_deliveries_total{outcome="delivered"}' in metrics


def test_server_default_webhook_hears_a_cancelled_job(make_client: MakeClient) -> None:
    gate = threading.Event()
    with Receiver() as receiver:
        # Given a server-wide webhook and a job held running, with a second one queued behind it
        client = make_client(Script(gate=gate), webhook_url=receiver.url, workers=1, **HOOKS)
        running, queued = submit(client, files=2)
        # When the queued one is cancelled and the running one then finishes
        assert client.post(f"/v1/jobs/{queued['id']}/cancel").status_code == 200
        gate.set()
        events = {}
        for delivery in receiver.wait(2):
            payload = Webhook(SECRET).verify(delivery.body, delivery.headers)
            events[payload["data"]["id"]] = payload["type"]
    # Then each end was told
    assert events == {queued["id"]: "job.cancelled", running["id"]: "job.succeeded"}


def test_pending_webhook_is_delivered_after_an_app_restart(make_client: MakeClient, tmp_path: Any) -> None:
    data_dir = tmp_path / "restart"
    with Receiver(statuses=[503]) as receiver:
        # Given a job whose event failed its first delivery, when the server stops
        first = make_client(data_dir=data_dir, **{**HOOKS, "webhook_backoff_s": 1.0})
        [job] = submit(first, webhook_url=receiver.url)
        receiver.wait(1)
        first.__exit__(None, None, None)
        assert len(receiver.got) == 1
        # When a new server starts on the same data directory
        make_client(data_dir=data_dir, **HOOKS)
        # Then the event arrives with the same id
        one, two = receiver.wait(2)
    assert two.headers["webhook-id"] == one.headers["webhook-id"]
    assert Webhook(SECRET).verify(two.body, two.headers)["data"]["id"] == job["id"]


def test_private_destinations_are_refused_without_the_setting(make_client: MakeClient) -> None:
    client = make_client()
    for data, param in (
        ({"webhook_url": "http://127.0.0.1:9/hook"}, "webhook_url"),
        ({"webhook_url": "http://169.254.169.254/latest"}, "webhook_url"),
        ({"webhook_url": "http://10.0.0.7/hook"}, "webhook_url"),
        ({"url": "http://[::1]:9/a.wav"}, "url"),
        ({"url": "ftp://example.org/a.wav"}, "url"),
    ):
        upload = [("file", ("a.wav", WAV, "audio/wav"))] if param == "webhook_url" else None
        response = client.post("/v1/jobs", files=upload, data=data)
        assert response.status_code == 400, (data, response.text)
        assert response.json()["error"]["param"] == param
    assert "AURICLE_URL_ALLOW_PRIVATE" in client.post("/v1/jobs", data={"url": "http://localhost/a"}).text
    assert client.get("/v1/jobs").json()["jobs"] == []


# -- jobs from URLs ------------------------------------------------------------------------------------------------


def test_url_jobs_fetch_keep_the_audio_and_report_each_failure(make_client: MakeClient) -> None:
    routes = {
        "/talk.wav": (200, "audio/wav", WAV),
        "/moved": (302, "", b"/talk.wav"),
        "/loop": (302, "", b"/loop"),
        "/page": (200, "text/html; charset=utf-8", b"<html>hello</html>"),
        "/big.wav": (200, "audio/wav", WAV * 20),
    }
    with FileServer(routes) as files:
        client = make_client(max_upload_mb=0.5, url_max_redirects=3, url_allow_private=True)
        # Given one URL of each kind, and one upload beside them
        jobs = submit(
            client,
            files=1,
            url=[files.url(p) for p in ("/talk.wav", "/moved", "/missing.wav", "/loop", "/page", "/big.wav")],
        )
        by_url = {job["source_url"]: job for job in jobs[1:]}
        done = {url: wait(client, job["id"]) for url, job in by_url.items()}
    assert wait(client, jobs[0]["id"])["status"] == "succeeded"
    # Then the audio URLs were transcribed, their audio kept like an upload (playback), and a retry works
    good = done[files.url("/talk.wav")]
    assert good["status"] == "succeeded" and good["filename"] == "talk.wav"
    assert done[files.url("/moved")]["status"] == "succeeded"
    audio = client.get(f"/v1/jobs/{good['id']}/audio")
    assert audio.status_code == 200 and audio.content == WAV
    # And each failure says what went wrong
    errors = {path: done[files.url(path)]["error"] for path in ("/missing.wav", "/loop", "/page", "/big.wav")}
    assert "HTTP 404" in errors["/missing.wav"]
    assert "more than 3 redirects" in errors["/loop"]
    assert "did not return audio" in errors["/page"]
    assert "larger than the upload limit" in errors["/big.wav"]


def test_unreachable_url_fails_with_its_reason(make_client: MakeClient) -> None:
    with FileServer({}) as files:
        closed = files.url("/gone.wav")
    client = make_client(url_allow_private=True)
    [job] = submit(client, files=0, url=closed)
    done = wait(client, job["id"])
    assert done["status"] == "failed" and "unreachable" in done["error"]


# -- bulk and small gaps -------------------------------------------------------------------------------------------


def test_delete_by_session_removes_only_that_sessions_jobs(make_client: MakeClient) -> None:
    client = make_client()
    mine = submit(client, files=3, session="batch-1")
    other = submit(client, files=1, session="batch-2")
    response = client.delete("/v1/jobs", params={"session": "batch-1"})
    assert response.status_code == 200 and response.json()["deleted"] == 3
    for job in mine:
        assert client.get(f"/v1/jobs/{job['id']}").status_code == 404
    assert client.get(f"/v1/jobs/{other[0]['id']}").status_code == 200
    assert client.delete("/v1/jobs").status_code == 400


def test_retry_of_a_succeeded_job_with_other_options_makes_a_linked_job(make_client: MakeClient) -> None:
    client = make_client()
    [job] = submit(client, language="en")
    assert wait(client, job["id"])["status"] == "succeeded"
    # A plain retry of a succeeded job is still refused
    assert client.post(f"/v1/jobs/{job['id']}/retry").status_code == 409
    # With changed options, a new job runs on the same audio, linked to the original
    response = client.post(f"/v1/jobs/{job['id']}/retry", data={"language": "de", "beam_size": "2"})
    assert response.status_code == 202, response.text
    rerun = response.json()
    assert rerun["id"] != job["id"] and rerun["retry_of"] == job["id"]
    assert rerun["options"]["language"] == "de" and rerun["options"]["beam_size"] == 2
    assert wait(client, rerun["id"])["status"] == "succeeded"
    assert client.get(f"/v1/jobs/{rerun['id']}/audio").content == WAV
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "succeeded"


@pytest.mark.parametrize(("value", "status"), [("3", 202), ("0", 400), ("11", 400), ("x", 400)])
def test_beam_size_is_bounded(make_client: MakeClient, value: str, status: int) -> None:
    client = make_client(max_beam_size=10)
    response = client.post("/v1/jobs", files=[("file", ("a.wav", WAV, "audio/wav"))], data={"beam_size": value})
    assert response.status_code == status, response.text
