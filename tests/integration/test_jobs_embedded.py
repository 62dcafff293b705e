"""The embedded backend as a real server process: many jobs at once, and a ``kill -9`` of the server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from _redis import JobsServer, assert_results_match, submit_clips, wait_all

pytestmark = [pytest.mark.model, pytest.mark.slow]

ENV = {"AURICLE_WORKERS": "2", "AURICLE_MAX_QUEUE": "100", "AURICLE_JOB_LEASE_S": "5"}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def server(data_dir: Path) -> Iterator[JobsServer]:
    srv = JobsServer(data_dir, ENV)
    yield srv
    srv.stop()


def test_fifty_jobs_at_once_all_finish_with_their_own_text(server: JobsServer) -> None:
    with server.client() as client:
        # Given 50 jobs submitted in one request, cycling through four different clips
        clip_of = submit_clips(client, 50)
        assert len(clip_of) == 50
        # When they have all run
        jobs = wait_all(client, list(clip_of))
        # Then every one succeeded with its own clip's transcript
        assert {j["status"] for j in jobs.values()} == {"succeeded"}
        assert_results_match(client, clip_of)
        assert client.get("/v1/jobs", params={"status": "succeeded", "limit": 100}).json()["jobs"][0]["id"] in clip_of


def test_server_killed_with_jobs_queued_and_running_finishes_all_after_restart(
    server: JobsServer, data_dir: Path
) -> None:
    with server.client() as client:
        # Given jobs queued and running
        clip_of = submit_clips(client, 8, clips=["jfk.flac", "librispeech_1995-1837-0001.wav"])
        ids = list(clip_of)
        deadline = time.monotonic() + 30
        while client.get(f"/v1/jobs/{ids[0]}").json()["status"] == "queued" and time.monotonic() < deadline:
            time.sleep(0.02)
    # When the server dies hard and starts again on the same data directory
    server.kill()
    states = {}
    restarted = JobsServer(data_dir, ENV)
    try:
        with restarted.client() as client:
            states = {i: client.get(f"/v1/jobs/{i}").json()["status"] for i in ids}
            # Then every job finishes, exactly once each, with its own result
            jobs = wait_all(client, ids)
            assert {j["status"] for j in jobs.values()} == {"succeeded"}, states
            assert_results_match(client, clip_of)
            assert any(j["attempts"] >= 2 for j in jobs.values()), "a job that was running ran again"
    finally:
        restarted.stop()


def test_cli_submit_watch_list_result(server: JobsServer, tmp_path: Path) -> None:
    import io

    from auricle.cli import jobs as cli_jobs

    from _redis import AUDIO

    out = io.StringIO()
    files = [AUDIO / "jfk.flac", AUDIO / "librispeech_1995-1837-0001.wav"]
    assert cli_jobs.submit(files, out, url=server.url, options={"language": "en"}, session="cli") == 0
    ids = [line.split("\t")[0] for line in out.getvalue().splitlines()]
    assert len(ids) == 2
    bars = io.StringIO()
    assert cli_jobs.watch(ids, bars, url=server.url) == 0
    assert "100" in bars.getvalue() and "succeeded" in bars.getvalue()
    listing = io.StringIO()
    assert cli_jobs.list_jobs(listing, url=server.url, session="cli") == 0
    assert all(job_id in listing.getvalue() for job_id in ids)
    srt = tmp_path / "jfk.srt"
    assert cli_jobs.result(ids[0], io.StringIO(), url=server.url, fmt="srt", output=srt) == 0
    assert "-->" in srt.read_text() and "country" in srt.read_text().lower()
    error = io.StringIO()
    assert cli_jobs.result("0" * 32, error, url=server.url) == 2 and "404" in error.getvalue()
