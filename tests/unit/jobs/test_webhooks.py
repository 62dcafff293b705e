"""Webhook events on every backend: stored when a job ends, delivered once per attempt, retried with the same id,
signed as Standard Webhooks says (checked with the independent ``standardwebhooks`` package)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from standardwebhooks import Webhook

from _hooks import SECRET, Receiver
from auricle.config import Settings
from auricle.jobs.base import JobQueue
from auricle.jobs.codec import ErrorInfo
from auricle.jobs.sqlite import SqliteJobQueue
from auricle.jobs.webhooks import WebhookDeliverer, parse_secrets, sign

from _redis import RedisServer

Audio = Callable[[], Path]
RESULT = {"language": "en", "duration": 1.0, "segments": [], "task": "transcribe"}
STATS = {"model": "tiny.en", "audio_seconds": 1.5}


def settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "webhook_secret": SECRET,
        "webhook_backoff_s": 0.05,
        "webhook_timeout_s": 2.0,
        "webhook_max_attempts": 3,
        "url_allow_private": True,
    }
    return Settings(**{**values, **overrides})


def finished_job(queue: JobQueue, audio: Audio, url: str, *, succeed: bool = True) -> str:
    job = queue.enqueue(audio(), filename="talk.wav", options={"model": "tiny.en"}, webhook_url=url)
    claim = queue.claim("w1", 30.0)
    assert claim.job is not None and claim.job.id == job.id
    if succeed:
        assert queue.complete(job.id, "w1", RESULT, STATS)
    else:
        assert queue.fail(job.id, "w1", ErrorInfo("AudioDecodeError", "failed to decode audio: empty", "file"))
    return job.id


def verify(delivery_headers: dict[str, str], body: bytes) -> dict[str, Any]:
    payload: dict[str, Any] = Webhook(SECRET).verify(body, delivery_headers)
    return payload


def test_signature_verifies_with_the_reference_implementation_for_every_rotated_secret() -> None:
    # Given two secrets during a rotation
    other = "whsec_" + "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo="
    keys = parse_secrets(f"{SECRET} {other}")
    body = b'{"object":"event"}'
    now = int(time.time())
    # When a message is signed
    header = sign(keys, "msg_1", now, body)
    # Then it carries one signature per secret, and a receiver knowing either secret verifies it
    assert len(header.split()) == 2
    for secret in (SECRET, other):
        Webhook(secret).verify(
            body, {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
        )
    with pytest.raises(Exception, match="signature"):
        Webhook("whsec_" + "WldYWVo=").verify(
            body, {"webhook-id": "msg_1", "webhook-timestamp": str(now), "webhook-signature": header}
        )


def test_a_job_without_webhook_stores_no_event(job_queue: JobQueue, audio: Audio) -> None:
    job = job_queue.enqueue(audio(), filename="a.wav", options={})
    job_queue.claim("w1", 30.0)
    job_queue.complete(job.id, "w1", RESULT, STATS)
    assert job_queue.get(job.id).webhook is None
    assert job_queue.webhooks_due(time.time() + 10) == []


def test_an_attempt_is_claimed_once_and_retried_after_the_backoff(job_queue: JobQueue, audio: Audio) -> None:
    # Given a job that ended with a webhook destination
    job_id = finished_job(job_queue, audio, "http://127.0.0.1:9/hook", succeed=False)
    event = job_queue.get(job_id).webhook
    assert event is not None and event["state"] == "pending" and event["type"] == "job.failed"
    assert job_queue.webhooks_due(time.time()) == [job_id]
    # When one deliverer claims the attempt, a second one gets nothing
    first = job_queue.claim_webhook(job_id, "d1", 30.0)
    assert first is not None and first.webhook is not None and first.webhook["attempts"] == 1
    assert job_queue.claim_webhook(job_id, "d2", 30.0) is None
    assert job_queue.webhooks_due(time.time()) == []
    # And the attempt fails: the event is due again after the backoff, with the same id
    stored = job_queue.finish_webhook(job_id, "d1", 1, status=500, error="HTTP 500", max_attempts=2, backoff_s=0.2)
    assert stored is not None and stored.webhook is not None
    assert stored.webhook["last_status"] == 500 and stored.webhook["state"] == "pending"
    assert job_queue.claim_webhook(job_id, "d2", 30.0) is None  # not yet due
    time.sleep(0.25)
    second = job_queue.claim_webhook(job_id, "d2", 30.0)
    assert second is not None and second.webhook is not None
    assert second.webhook["attempts"] == 2 and second.webhook["id"] == event["id"]
    # Then a stale outcome of the first deliverer is ignored, and the last failure ends it failed
    assert job_queue.finish_webhook(job_id, "d1", 1, status=200, error=None, max_attempts=2, backoff_s=0.2) is None
    last = job_queue.finish_webhook(job_id, "d2", 2, status=502, error="HTTP 502", max_attempts=2, backoff_s=0.2)
    assert last is not None and last.webhook is not None and last.webhook["state"] == "failed"
    assert job_queue.webhooks_due(time.time() + 3600) == []
    assert job_queue.get(job_id).to_public()["webhook"]["attempts"] == 2


def test_a_dead_deliverers_attempt_is_taken_again_after_its_lease(job_queue: JobQueue, audio: Audio) -> None:
    job_id = finished_job(job_queue, audio, "http://127.0.0.1:9/hook")
    assert job_queue.claim_webhook(job_id, "d1", 0.2) is not None
    time.sleep(0.3)
    taken = job_queue.claim_webhook(job_id, "d2", 30.0)
    assert taken is not None and taken.webhook is not None and taken.webhook["attempts"] == 2


def test_deliverer_retries_a_failed_delivery_with_the_same_id_and_a_valid_signature(
    job_queue: JobQueue, audio: Audio
) -> None:
    with Receiver(statuses=[500]) as receiver:
        # Given a succeeded job whose receiver fails the first delivery
        job_id = finished_job(job_queue, audio, receiver.url)
        deliverer = WebhookDeliverer(job_queue, settings())
        try:
            # When the deliverer runs until the event was delivered
            deadline = time.monotonic() + 10
            while (job_queue.get(job_id).webhook or {}).get("state") == "pending":
                assert time.monotonic() < deadline
                deliverer.deliver_due()
                time.sleep(0.02)
        finally:
            deliverer.stop()
    # Then the receiver saw two deliveries of one event, each signed validly
    first, second = receiver.got
    assert [first.status, second.status] == [500, 204]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert first.body == second.body
    payload = verify(second.headers, second.body)
    assert payload["object"] == "event" and payload["type"] == "job.succeeded"
    assert payload["id"] == second.headers["webhook-id"]
    assert payload["data"] == {
        "id": job_id,
        "status": "succeeded",
        "model": "tiny.en",
        "audio_seconds": 1.5,
        "result_url": f"/v1/jobs/{job_id}/result",
        "error": None,
    }
    hook = job_queue.get(job_id).to_public()["webhook"]
    assert hook["state"] == "delivered" and hook["attempts"] == 2 and hook["last_status"] == 204


def test_deliverer_refuses_a_private_destination_without_the_setting(job_queue: JobQueue, audio: Audio) -> None:
    with Receiver() as receiver:
        # Given a stored event for a loopback receiver, and a deliverer that does not allow private addresses
        job_id = finished_job(job_queue, audio, receiver.url, succeed=False)
        deliverer = WebhookDeliverer(job_queue, settings(url_allow_private=False))
        try:
            deliverer.deliver_due()
        finally:
            deliverer.stop()
    # Then nothing was sent and the event failed at once, saying why
    assert receiver.got == []
    hook = job_queue.get(job_id).to_public()["webhook"]
    assert hook["state"] == "failed" and hook["attempts"] == 1
    assert "private, loopback or link-local" in hook["last_error"]


def test_a_pending_delivery_survives_reopening_the_store(tmp_path: Path, audio: Audio) -> None:
    path, spool = tmp_path / "jobs.sqlite3", tmp_path / "spool"
    with Receiver(statuses=[503]) as receiver:
        # Given an event whose first delivery failed, pending a retry when its process stopped
        first = SqliteJobQueue(path, spool)
        job_id = finished_job(first, audio, receiver.url)
        before = WebhookDeliverer(first, settings(webhook_backoff_s=0.2))
        assert before.deliver_due() == 1
        before.stop()
        first.close()
        assert receiver.wait(1)[0].status == 503
        # When a new process opens the store and runs its deliverer
        second = SqliteJobQueue(path, spool)
        after = WebhookDeliverer(second, settings())
        try:
            deadline = time.monotonic() + 10
            while len(receiver.got) < 2:
                assert time.monotonic() < deadline
                after.deliver_due()
                time.sleep(0.05)
        finally:
            after.stop()
        # Then the event arrives, with its first id
        one, two = receiver.got
        assert two.status == 204 and two.headers["webhook-id"] == one.headers["webhook-id"]
        assert json.loads(two.body)["data"]["id"] == job_id
        assert (second.get(job_id).webhook or {})["state"] == "delivered"
        second.close()


@pytest.mark.redis
def test_redis_two_deliverers_make_each_attempt_once(redis_server: RedisServer, tmp_path: Path, audio: Audio) -> None:
    from auricle.jobs.redis import RedisJobQueue

    redis.Redis.from_url(redis_server.url).flushall()
    queue_a = RedisJobQueue(redis_server.url, tmp_path / "a", ttl_s=3600, lease_s=30)
    queue_b = RedisJobQueue(redis_server.url, tmp_path / "b", ttl_s=3600, lease_s=30)
    first_seen: set[str] = set()

    def fail_first(headers: dict[str, str]) -> int:
        # The receiver answers 500 to the first delivery of each webhook-id, 204 after.
        if headers["webhook-id"] in first_seen:
            return 204
        first_seen.add(headers["webhook-id"])
        return 500

    with Receiver(delay_s=0.02, status_for=fail_first) as receiver:
        # Given ten ended jobs, stored through one node
        ids = [finished_job(queue_a, audio, receiver.url) for _ in range(10)]
        # When two nodes' deliverers run at the same time until all are delivered
        nodes = [WebhookDeliverer(queue_a, settings()), WebhookDeliverer(queue_b, settings())]
        stop = threading.Event()

        def run(deliverer: WebhookDeliverer) -> None:
            while not stop.is_set():
                deliverer.deliver_due()

        threads = [threading.Thread(target=run, args=(d,)) for d in nodes]
        for thread in threads:
            thread.start()
        try:
            deadline = time.monotonic() + 20
            while any((queue_b.get(i).webhook or {}).get("state") == "pending" for i in ids):
                assert time.monotonic() < deadline
                time.sleep(0.05)
        finally:
            stop.set()
            for thread in threads:
                thread.join()
            for deliverer in nodes:
                deliverer.stop()
    # Then every event was delivered in exactly two attempts (no attempt made twice), by either node
    per_id: dict[str, int] = {}
    for delivery in receiver.got:
        per_id[delivery.headers["webhook-id"]] = per_id.get(delivery.headers["webhook-id"], 0) + 1
    assert sorted(per_id.values()) == [2] * 10
    assert {(queue_b.get(i).webhook or {})["attempts"] for i in ids} == {2}
    assert {(queue_b.get(i).webhook or {})["state"] for i in ids} == {"delivered"}
    queue_a.close()
    queue_b.close()


def test_a_secret_that_is_not_base64_is_refused_at_start() -> None:
    with pytest.raises(ValueError, match="whsec_"):
        Settings(webhook_secret="whsec_not*base64")


def test_due_events_are_delivered_side_by_side(tmp_path: Path, audio: Audio) -> None:
    queue = SqliteJobQueue(tmp_path / "jobs.sqlite3", tmp_path / "spool")
    with Receiver(delay_s=0.5) as receiver:
        # Given four ended jobs and a receiver taking half a second per request
        ids = [finished_job(queue, audio, receiver.url) for _ in range(4)]
        deliverer = WebhookDeliverer(queue, settings())
        # When one round runs
        started = time.monotonic()
        try:
            assert deliverer.deliver_due() == 4
        finally:
            deliverer.stop()
        # Then the four were sent at once, not one after another
        assert time.monotonic() - started < 1.5
    assert {(queue.get(i).webhook or {})["state"] for i in ids} == {"delivered"}
    queue.close()
