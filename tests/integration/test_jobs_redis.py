"""The Redis backend as real processes: an API node without workers or model, ``auricle worker`` processes,
and a ``redis-server`` with AOF started by the test. Workers are killed, Redis is restarted: nothing is lost."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis

from _redis import (
    JobsServer,
    RedisServer,
    WorkerProcess,
    assert_results_match,
    cancel_while_running,
    free_port,
    long_clip,
    submit_clips,
    wait_all,
)

pytestmark = [pytest.mark.redis, pytest.mark.model, pytest.mark.slow]

LONG = "ami_excerpt_dev00.wav"


class Cluster:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.redis = RedisServer(root / "redis", appendonly=True).start()
        self.env = {"AURICLE_REDIS_URL": self.redis.url, "AURICLE_JOB_LEASE_S": "3", "AURICLE_MAX_QUEUE": "100"}
        self.api = JobsServer(root / "api", {**self.env, "AURICLE_LOCAL_WORKERS": "false"})
        self.workers = [self.add_worker() for _ in range(2)]

    def add_worker(self) -> WorkerProcess:
        n = len(getattr(self, "workers", [])) + 1
        env = {**self.env, "AURICLE_WORKERS": "1"}
        return WorkerProcess(self.root / f"worker{n}", env, name=f"worker{n}", metrics_port=free_port())

    def db(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis.url, decode_responses=True)

    def stop(self) -> None:
        for process in [*self.workers, self.api]:
            process.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.stop()


def wait_running(cluster: Cluster, ids: list[str], timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    db = cluster.db()
    while time.monotonic() < deadline:
        for job_id in ids:
            if db.hget(f"auricle:job:{job_id}", "status") == "running":
                return job_id
        time.sleep(0.01)
    raise AssertionError("no job started running")


def test_fifty_jobs_through_two_worker_processes_each_get_their_own_result(cluster: Cluster) -> None:
    with cluster.api.client() as client:
        clip_of = submit_clips(client, 50)
        jobs = wait_all(client, list(clip_of))
        assert {j["status"] for j in jobs.values()} == {"succeeded"}
        assert_results_match(client, clip_of)
        # Both worker processes took part.
        workers = {cluster.db().hget(f"auricle:job:{i}", "worker").split(":")[1] for i in clip_of}
        assert workers == {str(w.pid) for w in cluster.workers}
        # And the workers, which transcribed, counted the 50 English transcriptions on their metrics port; the
        # API node counted none
        counted = [_sample(httpx.get(w.metrics_url, timeout=10).text, 'language="en"') for w in cluster.workers]
        assert sum(counted) == 50 and all(counted)
        assert _sample(client.get("/metrics").text, 'language="en"') == 0


def _sample(text: str, labels: str) -> float:
    line = f"auricle_transcriptions_total{{{labels}}} "
    return sum(float(row.removeprefix(line)) for row in text.splitlines() if row.startswith(line))


def test_cancel_reaches_a_running_job_on_a_worker(cluster: Cluster) -> None:
    with cluster.api.client() as client:
        # Given a job of several minutes of speech that has decoded its first segment on a worker
        clip = long_clip(cluster.root / "clips")
        response = client.post("/v1/jobs", files=[("file", (clip.name, clip.read_bytes(), "audio/wav"))])
        assert response.status_code == 202, response.text
        job_id = response.json()["jobs"][0]["id"]
        # When it is cancelled then
        answer, final = cancel_while_running(client, job_id)
        # Then the cancel found it running, and it ends cancelled (not succeeded) well before it could finish
        assert answer["status"] == "running"
        assert final == "cancelled"
        events = client.get(f"/v1/jobs/{job_id}/events").text
        assert "event: segment" in events and events.rstrip().split("\n\n")[-1].startswith("event: cancelled")
        job = client.get(f"/v1/jobs/{job_id}").json()
        assert job["status"] == "cancelled" and job["error"] is None and job["progress"] < 100
        assert client.get(f"/v1/jobs/{job_id}/result").status_code == 409
        assert client.delete(f"/v1/jobs/{job_id}").status_code == 204
        assert not cluster.db().exists(f"auricle:audio:{job_id}")


def test_worker_killed_mid_job_the_job_finishes_on_another_worker_once(cluster: Cluster) -> None:
    with cluster.api.client() as client:
        # Given long jobs being worked on
        clip_of = submit_clips(client, 3, clips=[LONG])
        victim_job = wait_running(cluster, list(clip_of))
        pid = int(cluster.db().hget(f"auricle:job:{victim_job}", "worker").split(":")[1])
        victim = next(w for w in cluster.workers if w.pid == pid)
        # When its worker process is killed with SIGKILL
        victim.kill()
        cluster.workers.remove(victim)
        # Then the job is redelivered to the other worker and finishes there, exactly once
        jobs = wait_all(client, list(clip_of), timeout=90)
        assert {j["status"] for j in jobs.values()} == {"succeeded"}
        assert jobs[victim_job]["attempts"] == 2
        assert cluster.db().hget(f"auricle:job:{victim_job}", "worker").split(":")[1] != str(pid)
        assert client.get(f"/v1/jobs/{victim_job}/result").json()["text"]
    cluster.workers.append(cluster.add_worker())


def test_redis_restart_loses_no_job(cluster: Cluster) -> None:
    with cluster.api.client() as client:
        # Given jobs queued and running
        clip_of = submit_clips(client, 12)
        wait_running(cluster, list(clip_of))
        # When Redis restarts (AOF on)
        cluster.redis.restart(down_s=1.0)
        # Then every job still finishes with its own result
        jobs = wait_all(client, list(clip_of), timeout=120)
        assert {j["status"] for j in jobs.values()} == {"succeeded"}
        assert_results_match(client, clip_of)


def test_server_killed_mid_sync_request_drops_its_sync_job_and_finishes_background_jobs(tmp_path: Path) -> None:
    # Given a single node on Redis (local workers) running a sync request's job and a background job, with one
    # more background job queued
    db_server = RedisServer(tmp_path / "redis").start()
    env = {"AURICLE_REDIS_URL": db_server.url, "AURICLE_JOB_LEASE_S": "3", "AURICLE_WORKERS": "2"}
    data_dir = tmp_path / "node"
    server = JobsServer(data_dir, env)
    restarted: JobsServer | None = None
    db = redis.Redis.from_url(db_server.url, decode_responses=True)
    clip = long_clip(tmp_path)

    def sync_request() -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(base_url=server.url, timeout=120) as client:
            client.post("/asr", files={"audio_file": (clip.name, clip.read_bytes(), "audio/wav")})

    def running(ids: list[str]) -> list[str]:
        return [i for i in ids if db.hget(f"auricle:job:{i}", "status") == "running"]

    try:
        threading.Thread(target=sync_request, daemon=True).start()
        deadline = time.monotonic() + 60
        while not (sync_ids := running(list(db.smembers("auricle:sync")))):
            assert time.monotonic() < deadline, server.tail()
            time.sleep(0.05)
        with server.client() as client:
            clip_of = submit_clips(client, 2, clips=[LONG, "jfk.flac"])
        while not running(list(clip_of)):
            assert time.monotonic() < deadline, server.tail()
            time.sleep(0.05)
        assert running(sync_ids), "the sync request's job finished before the server was killed"
        # When the server is killed with SIGKILL mid request and started again on the same store
        server.kill()
        restarted = JobsServer(data_dir, env)
        # Then the sync job (no client waits for it any more) is gone at once: it neither runs again nor stays
        assert not any(db.exists(f"auricle:job:{i}") for i in sync_ids), db.hgetall(f"auricle:job:{sync_ids[0]}")
        # and the background jobs are handed out again and finish, with their own text
        with restarted.client() as client:
            jobs = wait_all(client, list(clip_of), timeout=180)
            assert {j["status"] for j in jobs.values()} == {"succeeded"}
            assert max(j["attempts"] for j in jobs.values()) == 2, "the job running at the kill ran again"
            assert_results_match(client, {i: clip for i, clip in clip_of.items() if clip != LONG})
        assert not any(db.exists(f"auricle:job:{i}") for i in sync_ids)
    finally:
        for process in (server, restarted):
            if process is not None:
                process.stop()
        db_server.stop()


def test_worker_serves_its_metrics_with_service_info_when_given_a_port(tmp_path: Path) -> None:
    # Given an `auricle worker` with a metrics port
    db_server = RedisServer(tmp_path / "redis").start()
    port = free_port()
    env = {"AURICLE_REDIS_URL": db_server.url, "AURICLE_WORKERS": "1"}
    worker = WorkerProcess(tmp_path / "worker", env, metrics_port=port)
    try:
        # When Prometheus scrapes it
        deadline, text = time.monotonic() + 90, ""
        while "auricle_service_info" not in text:
            assert time.monotonic() < deadline and worker.proc.poll() is None, worker.tail()
            with contextlib.suppress(httpx.HTTPError):
                text = httpx.get(worker.metrics_url, timeout=2).text
            time.sleep(0.3)
        # Then it sees the worker's version, device and compute type, and its job metrics
        assert re.search(r'auricle_service_info\{compute_type="int8",device="cpu",version="[^"]+"\} 1\.0', text), text
        assert "auricle_workers 1.0" in text and "auricle_job_run_seconds_count" in text
    finally:
        worker.stop()
        db_server.stop()
