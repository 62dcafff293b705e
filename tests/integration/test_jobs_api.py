"""The ``/v1/jobs`` API on the embedded backend (SQLite, in-process workers) with the real ``tiny.en`` model."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from auricle.app import create_app

pytestmark = [pytest.mark.model, pytest.mark.slow]

AUDIO = Path(__file__).resolve().parents[3] / "shared" / "corpus" / "audio"
JFK = AUDIO / "jfk.flac"
LIBRI = AUDIO / "librispeech_1995-1837-0001.wav"


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    mp = pytest.MonkeyPatch()
    mp.setenv("AURICLE_DATA_DIR", str(tmp_path_factory.mktemp("jobs-api")))
    mp.setenv("AURICLE_DEFAULT_MODEL", "tiny.en")
    mp.setenv("AURICLE_WORKERS", "2")
    with TestClient(create_app()) as test_client:
        yield test_client
    mp.undo()


def files(*paths: Path) -> list[tuple[str, tuple[str, bytes, str]]]:
    return [("file", (p.name, p.read_bytes(), "application/octet-stream")) for p in paths]


def wait(client: TestClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish: {job}")


def sse(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in lines:
            out.append((lines["event"], json.loads(lines["data"])))
    return out


def test_submit_many_files_returns_at_once_and_each_finishes(client: TestClient) -> None:
    # Given two files in one request, with options and a session tag
    started = time.monotonic()
    response = client.post(
        "/v1/jobs", files=files(JFK, LIBRI), data={"word_timestamps": "true", "language": "en", "session": "t1"}
    )
    # Then both jobs come back at once as queued or running
    assert response.status_code == 202, response.text
    assert time.monotonic() - started < 5
    jobs = response.json()["jobs"]
    assert [j["filename"] for j in jobs] == ["jfk.flac", "librispeech_1995-1837-0001.wav"]
    assert all(j["status"] in ("queued", "running") and j["options"]["word_timestamps"] for j in jobs)
    # When they finish
    done = [wait(client, j["id"]) for j in jobs]
    # Then each has its own transcript, timings and the model
    assert [d["status"] for d in done] == ["succeeded", "succeeded"]
    assert done[0]["progress"] == 100 and done[0]["model"] == "tiny.en"
    assert done[0]["audio_seconds"] == pytest.approx(11.0, abs=0.1)
    assert done[0]["processing_seconds"] > 0 and done[0]["real_time_factor"] > 1
    assert done[0]["first_segment_seconds"] > 0
    assert done[0]["created_at"] <= done[0]["started_at"] <= done[0]["finished_at"]
    assert "country" in client.get(f"/v1/jobs/{jobs[0]['id']}/result?format=text").text.lower()
    srt = client.get(f"/v1/jobs/{jobs[1]['id']}/result", params={"format": "srt"})
    assert srt.headers["content-type"].startswith("application/x-subrip")
    assert "00:00:00,000 -->" in srt.text and "sorrow" in srt.text.lower()
    verbose = client.get(f"/v1/jobs/{jobs[0]['id']}/result?format=verbose_json").json()
    assert verbose["segments"] and verbose["words"]
    # And the listing filters by session, newest first
    listed = client.get("/v1/jobs", params={"session": "t1"}).json()
    assert [j["id"] for j in listed["jobs"]] == [jobs[1]["id"], jobs[0]["id"]]
    page = client.get("/v1/jobs", params={"session": "t1", "limit": 1}).json()
    assert page["next_cursor"] == "1" and len(page["jobs"]) == 1
    assert client.get("/v1/jobs", params={"session": "t1", "cursor": "1"}).json()["jobs"][0]["id"] == jobs[0]["id"]


def test_events_stream_progress_segments_then_done_and_replay_late(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", files=files(JFK)).json()["jobs"][0]["id"]
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        events = sse(response.read().decode())
    names = [name for name, _ in events]
    assert names[0] == "state" and names[-1] == "done"
    assert "progress" in names and names.count("segment") >= 1
    text = " ".join(data["segment"]["text"] for name, data in events if name == "segment").lower()
    assert "country" in text
    progress = [data["progress"] for name, data in events if name in ("progress", "segment")]
    assert progress == sorted(progress) and progress[-1] == 100
    # A client joining after the end gets the state, the segments again, and done.
    late = sse(client.get(f"/v1/jobs/{job_id}/events").text)
    assert late[0][1]["job"]["status"] == "succeeded"
    assert [n for n, _ in late].count("segment") == names.count("segment") and late[-1][0] == "done"


def test_result_before_finish_is_409_and_unknown_job_is_404(client: TestClient) -> None:
    body = client.get(f"/v1/jobs/{'0' * 32}").json()
    assert client.get(f"/v1/jobs/{'0' * 32}").status_code == 404 and body["error"]["code"] == "job_not_found"
    # Given a queue filled so the next job waits
    ids = [j["id"] for j in client.post("/v1/jobs", files=files(JFK, JFK, JFK)).json()["jobs"]]
    assert client.get(f"/v1/jobs/{ids[2]}/result").status_code == 409
    for job_id in ids:
        wait(client, job_id)


def test_audio_playback_supports_range(client: TestClient) -> None:
    job_id = client.post("/v1/jobs", files=files(LIBRI)).json()["jobs"][0]["id"]
    whole = client.get(f"/v1/jobs/{job_id}/audio")
    assert whole.status_code == 200 and whole.content == LIBRI.read_bytes()
    part = client.get(f"/v1/jobs/{job_id}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == LIBRI.read_bytes()[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{LIBRI.stat().st_size}"
    wait(client, job_id)


def test_bad_file_fails_with_decode_error_and_can_be_retried(client: TestClient) -> None:
    response = client.post("/v1/jobs", files=[("files", ("notes.wav", b"this is not audio", "audio/wav"))])
    job_id = response.json()["jobs"][0]["id"]
    failed = wait(client, job_id)
    assert failed["status"] == "failed" and "failed to decode audio" in failed["error"]
    assert client.get(f"/v1/jobs/{job_id}/result").status_code == 409
    assert client.post(f"/v1/jobs/{job_id}/retry").status_code == 202
    assert wait(client, job_id)["attempts"] == 2
    assert client.get("/v1/jobs", params={"status": "failed"}).json()["jobs"][0]["id"] == job_id


def test_bad_options_and_missing_file_are_400(client: TestClient) -> None:
    assert client.post("/v1/jobs", data={"language": "en"}).status_code == 400
    assert client.post("/v1/jobs", files=files(JFK), data={"task": "dance"}).status_code == 400
    assert client.get("/v1/jobs", params={"status": "sleeping"}).status_code == 400


def test_cancel_and_delete_queued_and_running_jobs(client: TestClient) -> None:
    # Given more jobs than workers
    ids = [j["id"] for j in client.post("/v1/jobs", files=files(*[JFK] * 6)).json()["jobs"]]
    # When the last (queued) one is cancelled, and one more deleted while queued
    assert client.post(f"/v1/jobs/{ids[-1]}/cancel").json()["status"] == "cancelled"
    assert client.delete(f"/v1/jobs/{ids[-2]}").status_code == 204
    # And the first is cancelled or deleted while running
    while client.get(f"/v1/jobs/{ids[0]}").json()["status"] == "queued":
        time.sleep(0.02)
    client.post(f"/v1/jobs/{ids[0]}/cancel")
    assert client.delete(f"/v1/jobs/{ids[1]}").status_code == 204
    # Then the cancelled ones end cancelled (or succeeded, had it just finished), the deleted ones are gone
    assert wait(client, ids[0])["status"] in ("cancelled", "succeeded")
    assert wait(client, ids[-1])["status"] == "cancelled"
    assert client.post(f"/v1/jobs/{ids[-1]}/cancel").status_code == 409
    for gone in (ids[1], ids[-2]):
        assert client.get(f"/v1/jobs/{gone}").status_code == 404
        assert client.get(f"/v1/jobs/{gone}/audio").status_code == 404
    for job_id in ids[2:4]:
        assert wait(client, job_id)["status"] == "succeeded"


def test_sync_endpoint_submits_an_ephemeral_job_and_leaves_nothing(client: TestClient) -> None:
    before = client.get("/v1/jobs", params={"limit": 500}).json()["jobs"]
    response = client.post("/asr", files={"audio_file": ("jfk.flac", JFK.read_bytes())}, params={"output": "json"})
    assert response.status_code == 200, response.text
    assert "country" in response.text.lower()
    assert client.get("/v1/jobs", params={"limit": 500}).json()["jobs"] == before
    queue = client.app.state.jobs  # type: ignore[attr-defined]
    assert queue.counts()["succeeded"] == sum(1 for j in before if j["status"] == "succeeded")
    assert client.get("/ready").status_code == 200  # model loaded by the request above, queue empty
