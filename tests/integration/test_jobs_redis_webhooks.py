"""Webhooks and URL jobs in Redis mode, as real processes: an API node without workers and two ``auricle worker``
processes, each running a webhook deliverer. Every attempt of an event is made by exactly one of the three."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from standardwebhooks import Webhook

from _hooks import SECRET, FileServer, Receiver

from _redis import AUDIO, JobsServer, RedisServer, WorkerProcess, wait_all

pytestmark = [pytest.mark.redis, pytest.mark.model, pytest.mark.slow]

CLIPS = ["jfk.flac", "librispeech_1995-1837-0001.wav"]


def test_url_jobs_on_two_workers_and_each_webhook_attempt_made_once(tmp_path: Path) -> None:
    seen: set[str] = set()
    lock = threading.Lock()

    def fail_first(headers: dict[str, str]) -> int:
        # Each event's first delivery fails (500); its retry succeeds.
        with lock:
            first = headers["webhook-id"] not in seen
            seen.add(headers["webhook-id"])
        return 500 if first else 204

    routes = {f"/{name}": (200, "audio/wav", (AUDIO / name).read_bytes()) for name in CLIPS}
    server = RedisServer(tmp_path / "redis").start()
    env = {
        "AURICLE_REDIS_URL": server.url,
        "AURICLE_JOB_LEASE_S": "5",
        "AURICLE_URL_ALLOW_PRIVATE": "true",
        "AURICLE_WEBHOOK_SECRET": SECRET,
        "AURICLE_WEBHOOK_POLL_S": "0.1",
        "AURICLE_WEBHOOK_BACKOFF_S": "0.3",
    }
    processes: list[WorkerProcess | JobsServer] = []
    try:
        with FileServer(routes) as files, Receiver(status_for=fail_first, delay_s=0.05) as receiver:
            api = JobsServer(tmp_path / "api", {**env, "AURICLE_LOCAL_WORKERS": "false"})
            processes.append(api)
            for n in (1, 2):
                worker_env = {**env, "AURICLE_WORKERS": "1"}
                processes.append(WorkerProcess(tmp_path / f"worker{n}", worker_env, name=f"worker{n}"))
            with api.client() as client:
                # Given six URL jobs with a webhook, submitted to an API node that runs no worker
                urls = [files.url(f"/{CLIPS[i % 2]}") for i in range(6)]
                response = client.post("/v1/jobs", data={"url": urls, "webhook_url": receiver.url})
                assert response.status_code == 202, response.text
                ids = [job["id"] for job in response.json()["jobs"]]
                # When the workers fetched and ran them
                jobs = wait_all(client, ids)
                assert {j["status"] for j in jobs.values()} == {"succeeded"}, jobs
                # Then the fetched audio plays back from the API node (it travelled through Redis)
                assert client.get(f"/v1/jobs/{ids[0]}/audio").content == (AUDIO / CLIPS[0]).read_bytes()
                # And every event was delivered in exactly two attempts, each made once, by one of three nodes
                deadline = time.monotonic() + 30
                while any(client.get(f"/v1/jobs/{i}").json()["webhook"]["state"] != "delivered" for i in ids):
                    assert time.monotonic() < deadline, [client.get(f"/v1/jobs/{i}").json()["webhook"] for i in ids]
                    time.sleep(0.1)
                time.sleep(0.5)  # a duplicate attempt, had there been one, would arrive now
        per_event = Counter(d.headers["webhook-id"] for d in receiver.got)
        assert sorted(per_event.values()) == [2] * 6, per_event
        events = {Webhook(SECRET).verify(d.body, d.headers)["data"]["id"] for d in receiver.got if d.status == 204}
        assert events == set(ids)
    finally:
        for process in processes:
            process.stop()
        server.stop()
