"""``/v1/jobs`` in-process on the fake engine: submit, list, get, result, events, audio, cancel, retry, delete."""

from __future__ import annotations

import json
import threading
import time

import pytest
from fastapi.testclient import TestClient

from fakes import Script, wav_bytes

WAV = wav_bytes(2.0)


def submit(client: TestClient, *names: str, **data: str) -> list[dict]:
    files = [("file", (name, WAV, "audio/wav")) for name in names]
    response = client.post("/v1/jobs", files=files, data=data)
    assert response.status_code == 202, response.text
    return response.json()["jobs"]


def wait(client: TestClient, job_id: str, timeout: float = 10) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not finish")


def sse(text: str) -> list[tuple[str, dict]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in fields:
            events.append((fields["event"], json.loads(fields["data"])))
    return events


def test_submit_list_get_result_events_audio_delete(client: TestClient, script: Script) -> None:
    # Given two files submitted in one request with options and a session
    jobs = submit(client, "one.wav", "two.wav", session="s1", word_timestamps="true", hotwords="Claflin")
    assert [j["filename"] for j in jobs] == ["one.wav", "two.wav"]
    assert {j["status"] for j in jobs} <= {"queued", "running"}

    # Then both succeed, with the options applied
    for job in jobs:
        assert wait(client, job["id"])["status"] == "succeeded"
    assert script.calls[-1].hotwords == "Claflin" and script.calls[-1].word_timestamps

    # And they are listed for the session, newest first, and paged
    listed = client.get("/v1/jobs", params={"session": "s1"}).json()
    assert [j["id"] for j in listed["jobs"]] == [jobs[1]["id"], jobs[0]["id"]]
    page = client.get("/v1/jobs", params={"session": "s1", "limit": 1}).json()
    assert len(page["jobs"]) == 1 and page["next_cursor"] == "1"
    rest = client.get("/v1/jobs", params={"session": "s1", "limit": 1, "cursor": page["next_cursor"]}).json()
    assert rest["jobs"][0]["id"] == jobs[0]["id"] and rest["next_cursor"] is None
    assert client.get("/v1/jobs", params={"status": "succeeded", "session": "s1"}).json()["jobs"]

    job_id = jobs[0]["id"]
    # And the result renders in every format, named after the file
    result = client.get(f"/v1/jobs/{job_id}/result", params={"format": "srt"})
    assert result.status_code == 200 and "-->" in result.text
    assert result.headers["content-disposition"] == 'inline; filename="one.srt"'
    assert client.get(f"/v1/jobs/{job_id}/result").json()["text"] == "alpha bravo. bravo charlie."

    # And a late client gets the events replayed, ending with done
    events = sse(client.get(f"/v1/jobs/{job_id}/events").text)
    names = [name for name, _ in events]
    assert names[0] == "state" and names[-1] == "done" and names.count("segment") == 2

    # And the audio comes back as sent
    audio = client.get(f"/v1/jobs/{job_id}/audio")
    assert audio.status_code == 200 and audio.content == WAV and audio.headers["content-type"] == "audio/x-wav"

    # When it is deleted, it is gone
    assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
    for path in ("", "/result", "/audio", "/events"):
        assert client.get(f"/v1/jobs/{job_id}{path}").status_code == 404


def test_cancel_a_running_job_then_retry_it(make_client) -> None:
    # Given a job held in the engine (a short lease: heartbeats, which carry the cancel, every 0.2 s)
    script = Script(gate=threading.Event())
    client = make_client(script, workers=1, job_lease_s=0.8)
    [job] = submit(client, "held.wav")
    assert script.started.wait(5)
    assert client.get(f"/v1/jobs/{job['id']}").json()["status"] == "running"
    # And its result is not there yet
    early = client.get(f"/v1/jobs/{job['id']}/result")
    assert early.status_code == 409 and early.json()["error"]["code"] == "invalid_job_state"

    # When it is cancelled, it ends cancelled once the engine yields (after a heartbeat brought the cancel)
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 200
    time.sleep(0.6)
    script.gate.set()
    assert wait(client, job["id"])["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{job['id']}/cancel").status_code == 409

    # And a retry runs it again to success
    retried = client.post(f"/v1/jobs/{job['id']}/retry")
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
    assert wait(client, job["id"])["status"] == "succeeded"
    assert client.post(f"/v1/jobs/{job['id']}/retry").status_code == 409


def test_a_failed_job_reports_the_decode_error(client: TestClient) -> None:
    response = client.post("/v1/jobs", files={"file": ("notes.wav", b"not audio at all" * 64)})
    [job] = response.json()["jobs"]
    finished = wait(client, job["id"])
    assert finished["status"] == "failed" and "failed to decode audio" in finished["error"]


@pytest.mark.parametrize(
    "params,param",
    [
        ({"status": "done"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"cursor": "x"}, "cursor"),
        ({"offset": "-1"}, "offset"),
    ],
)
def test_list_rejects_bad_parameters(client: TestClient, params, param) -> None:
    response = client.get("/v1/jobs", params=params)
    assert response.status_code == 400 and response.json()["error"]["param"] == param


def test_unknown_jobs_and_bad_submissions(client: TestClient) -> None:
    assert client.get("/v1/jobs/" + "0" * 32).json()["error"]["code"] == "job_not_found"
    assert client.post("/v1/jobs/" + "0" * 32 + "/cancel").status_code == 404
    assert client.get("/v1/jobs/" + "0" * 32 + "/result", params={"format": "docx"}).status_code == 400
    no_file = client.post("/v1/jobs", data={"model": "base"})
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    unknown = client.post("/v1/jobs", files={"file": ("a.wav", WAV)}, data={"model": "nope"})
    assert unknown.status_code == 404


def test_queue_limit_refuses_a_batch_that_does_not_fit(make_client) -> None:
    script = Script(gate=threading.Event())
    client = make_client(script, workers=1, max_queue=1)
    try:
        # Room is max_queue plus one per worker: two jobs fit, a third does not
        refused = client.post("/v1/jobs", files=[("file", (f"{i}.wav", WAV)) for i in range(3)])
        assert refused.status_code == 503 and refused.json()["error"]["code"] == "queue_full"
        assert refused.headers["retry-after"] == "5"
        assert client.get("/v1/jobs").json()["jobs"] == []
    finally:
        script.gate.set()
