"""The JobQueue contract, run against every backend (memory, SQLite, Redis)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from auricle import jobs
from auricle.errors import JobNotFoundError, JobStateError
from auricle.jobs.base import JobQueue
from auricle.jobs.codec import ErrorInfo
from auricle.jobs.events import FinishedEvent, ProgressEvent, StateEvent
from auricle.jobs.sqlite import SqliteJobQueue

from _redis import RedisServer

Audio = Callable[[], Path]
RESULT = {"language": "en", "duration": 1.0, "segments": [], "task": "transcribe"}
CANCELLED = ErrorInfo("CancelledError", "the job was cancelled")


def submit(queue: JobQueue, audio: Audio, **kwargs: object) -> str:
    return queue.enqueue(audio(), filename="talk.wav", options={"model": "tiny.en"}, **kwargs).id  # type: ignore[arg-type]


def test_all_is_declared() -> None:
    assert set(jobs.__all__) <= set(dir(jobs))


def test_enqueue_stores_a_queued_job_and_takes_the_audio(job_queue: JobQueue, audio: Audio) -> None:
    # Given an upload
    upload = audio()
    # When it is enqueued
    job = job_queue.enqueue(upload, filename="talk.wav", options={"model": "tiny.en"}, session="s1")
    # Then the job is queued, the upload moved into the spool under the job's name
    stored = job_queue.get(job.id)
    assert stored.status == "queued" and stored.filename == "talk.wav" and stored.session == "s1"
    assert stored.options == {"model": "tiny.en"}
    assert not upload.exists()
    assert Path(stored.audio_path or "").name == f"job-{job.id}.wav"
    assert job_queue.counts()["queued"] == 1
    assert job.to_public()["status"] == "queued"


def test_unknown_job_is_not_found(job_queue: JobQueue) -> None:
    # The same error, word for word, from every backend and every call.
    for call in (job_queue.get, job_queue.result, job_queue.cancel, job_queue.retry, job_queue.delete):
        with pytest.raises(JobNotFoundError, match=f"^no job {'0' * 32}$"):
            call("0" * 32)


def test_claim_leases_a_job_to_one_worker(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    claimed = job_queue.claim("w1", 30, job_id=job_id).job
    assert claimed is not None and claimed.status == "running" and claimed.attempts == 1
    # A second worker gets nothing while the lease runs, and learns until when it runs.
    refused = job_queue.claim("w2", 30, job_id=job_id)
    assert refused.job is None and refused.reason == "leased"
    assert refused.lease_until == pytest.approx(time.time() + 30, abs=5)
    # Nor does a claim of whatever is next.
    assert job_queue.claim("w2", 30).reason == "empty"
    assert job_queue.get(job_id).worker == "w1"
    assert job_queue.counts()["running"] == 1 and job_queue.counts()["queued"] == 0


def test_concurrent_claims_give_the_job_to_exactly_one(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    winners: list[str] = []
    barrier = threading.Barrier(6)

    def race(name: str) -> None:
        barrier.wait()
        if job_queue.claim(name, 30, job_id=job_id).job is not None:
            winners.append(name)

    threads = [threading.Thread(target=race, args=(f"w{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(winners) == 1


def test_expired_lease_is_claimed_again_and_only_the_holder_finishes(job_queue: JobQueue, audio: Audio) -> None:
    # Given a job leased by a worker that then stops heartbeating
    job_id = submit(job_queue, audio)
    assert job_queue.claim("dead", 0.2, job_id=job_id).job is not None
    time.sleep(0.3)
    # When another worker claims the next job after the lease ran out
    again = job_queue.claim("alive", 30).job
    assert again is not None and again.id == job_id and again.attempts == 2
    # Then the dead worker can neither heartbeat nor store its result; the holder's result is the one kept
    assert not job_queue.heartbeat(job_id, "dead", 30)
    assert not job_queue.complete(job_id, "dead", {**RESULT, "model": "dead"}, {})
    assert job_queue.complete(job_id, "alive", {**RESULT, "model": "alive"}, {"processing_seconds": 1.5})
    assert job_queue.result(job_id)["model"] == "alive"
    job = job_queue.get(job_id)
    assert job.status == "succeeded" and job.progress == 100.0 and job.finished_at is not None
    assert job.to_public()["processing_seconds"] == 1.5


def test_result_of_unfinished_job_is_a_state_error(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    with pytest.raises(JobStateError):
        job_queue.result(job_id)


def test_cancel_queued_job_at_once(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    assert job_queue.cancel(job_id).status == "cancelled"
    assert job_queue.claim("w", 30, job_id=job_id).reason == "finished"
    assert job_queue.claim("w", 30).reason == "empty"
    with pytest.raises(JobStateError, match=f"^job {job_id} is cancelled; it cannot be cancelled$"):
        job_queue.cancel(job_id)


def test_cancel_running_job_reaches_its_worker(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    job_queue.claim("w", 30, job_id=job_id)
    assert job_queue.heartbeat(job_id, "w", 30)
    # When the job is cancelled while leased
    cancelled = job_queue.cancel(job_id)
    assert cancelled.status == "running" and cancelled.cancel_requested
    assert job_queue.cancel(job_id).status == "running"  # asking twice changes nothing
    # Then nobody else may claim it, the worker's next heartbeat says stop, and its failure report stores the
    # job as cancelled
    assert job_queue.claim("w2", 30, job_id=job_id).reason == "leased"
    assert not job_queue.heartbeat(job_id, "w", 30)
    assert job_queue.fail(job_id, "w", CANCELLED)
    job = job_queue.get(job_id)
    assert job.status == "cancelled" and job.error is None and job.error_type is None
    events, _ = job_queue.read_events(job_id, None, 0.1)
    assert events[-1] == FinishedEvent("cancelled", job.to_public())


def test_lease_expiry_with_a_cancel_pending_cancels_instead_of_running_again(job_queue: JobQueue, audio: Audio) -> None:
    # Given a running job cancelled while its worker still held the lease, and then the worker died
    job_id = submit(job_queue, audio)
    assert job_queue.claim("dead", 0.3, job_id=job_id).job is not None
    assert job_queue.cancel(job_id).status == "running"
    time.sleep(0.4)
    # When another worker claims it (by id, as Dramatiq redelivers it, and as the next job)
    outcome = job_queue.claim("alive", 30, job_id=job_id)
    # Then it is not run again: it ends cancelled, once
    assert outcome.job is None and outcome.reason == "cancelled"
    job = job_queue.get(job_id)
    assert job.status == "cancelled" and job.attempts == 1 and job.worker == "dead"
    assert job_queue.claim("alive", 30).reason == "empty"
    assert job_queue.claim("alive", 30, job_id=job_id).reason == "finished"
    assert not job_queue.fail(job_id, "dead", CANCELLED)
    assert job_queue.counts()["cancelled"] == 1 and job_queue.counts()["running"] == 0


def test_lease_expiry_with_a_cancel_pending_is_cancelled_by_the_next_claim(job_queue: JobQueue, audio: Audio) -> None:
    # Given a dead worker's cancelled job, and a job queued behind it
    job_id = submit(job_queue, audio)
    job_queue.claim("dead", 0.3, job_id=job_id)
    job_queue.cancel(job_id)
    waiting = submit(job_queue, audio)
    time.sleep(0.4)
    # When a worker asks for the next job
    claimed = job_queue.claim("alive", 30).job
    # Then it gets the waiting one, and the dead worker's job is cancelled, not run
    assert claimed is not None and claimed.id == waiting
    assert job_queue.get(job_id).status == "cancelled"


def test_cancel_of_a_dead_workers_job_cancels_at_once(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    job_queue.claim("dead", 0.2, job_id=job_id)
    time.sleep(0.3)
    assert job_queue.cancel(job_id).status == "cancelled"
    assert job_queue.claim("alive", 30).reason == "empty"


@pytest.mark.parametrize("cancel", [False, True], ids=["runs-again", "cancel-pending"])
def test_sqlite_recovers_the_jobs_of_a_dead_process_at_once(tmp_path: Path, audio: Audio, cancel: bool) -> None:
    # Given a job leased for a long time to a worker of a process on this host that has died
    queue = SqliteJobQueue(tmp_path / "jobs.sqlite3", tmp_path / "spool")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    job_id = submit(queue, audio)
    assert queue.claim(f"{socket.gethostname()}:{dead.pid}:t0-abc", 3600, job_id=job_id).job is not None
    live = submit(queue, audio)
    assert queue.claim(f"{socket.gethostname()}:{os.getppid()}:t0-abc", 3600, job_id=live).job is not None
    if cancel:
        queue.cancel(job_id)
    # When the next server starts
    assert queue.recover() == 1
    # Then the dead process's job is taken by the next claim (or cancelled, when a cancel was pending)
    claimed = queue.claim("new", 30)
    if cancel:
        assert claimed.reason == "empty" and queue.get(job_id).status == "cancelled"
    else:
        assert claimed.job is not None and claimed.job.id == job_id and claimed.job.attempts == 2
    assert queue.get(live).status == "running"


def test_sqlite_drops_the_sync_jobs_of_a_previous_run(tmp_path: Path, audio: Audio) -> None:
    # Given a server that died with sync requests queued, running and finished, and a background job
    queue = SqliteJobQueue(tmp_path / "jobs.sqlite3", tmp_path / "spool")
    waiting, running, done = (submit(queue, audio, ephemeral=True) for _ in range(3))
    background = submit(queue, audio)
    queue.claim("dead", 3600, job_id=running)
    queue.claim("dead", 3600, job_id=done)
    queue.complete(done, "dead", RESULT, {})
    # When the next server starts, its sync jobs are dropped with their audio (no client waits for them)
    assert queue.drop_orphaned_sync_jobs() == 3
    for job_id in (waiting, running, done):
        assert not queue.exists(job_id)
    # Then only the background job is left to run, and no sync job file stays in the spool
    assert queue.claim("new", 30).job.id == background  # type: ignore[union-attr]
    assert [p.name for p in (tmp_path / "spool").iterdir()] == [Path(queue.get(background).audio_path or "").name]


def test_a_sync_job_whose_waiter_stopped_renewing_is_cancelled_by_a_claim_not_run(
    job_queue: JobQueue, audio: Audio
) -> None:
    # Given two sync jobs, one still waited for (renewed) and one whose waiter is gone
    job_queue.waiter_lease_s = 1.0
    kept = submit(job_queue, audio, ephemeral=True, waiter="host:1:serve-a")
    orphan = submit(job_queue, audio, ephemeral=True, waiter="host:2:serve-b")
    time.sleep(0.6)
    job_queue.keep_waiting(kept)
    time.sleep(0.6)
    # When workers claim them
    claim = job_queue.claim("w", 30, job_id=orphan)
    # Then the orphan ends cancelled without running, and the waited-for job runs
    assert claim.reason == "orphaned" and claim.job is None
    assert job_queue.get(orphan).status == "cancelled" and job_queue.get(orphan).attempts == 0
    assert job_queue.claim("w", 30).job.id == kept  # type: ignore[union-attr]


@pytest.mark.redis
def test_redis_drops_the_sync_jobs_of_a_dead_process_of_this_host_and_keeps_others(
    redis_server: RedisServer, tmp_path: Path, audio: Audio
) -> None:
    import redis

    from auricle.jobs.redis import RedisJobQueue

    redis.Redis.from_url(redis_server.url).flushall()
    queue = RedisJobQueue(redis_server.url, tmp_path / "spool", ttl_s=7 * 86400, lease_s=30)
    try:
        # Given sync jobs queued, running and finished whose API process (on this host) died, a sync job waited
        # for by a live process, and a background job
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        gone = f"{socket.gethostname()}:{dead.pid}:serve-abc"
        waiting, running, done = (submit(queue, audio, ephemeral=True, waiter=gone) for _ in range(3))
        live = submit(queue, audio, ephemeral=True, waiter=f"{socket.gethostname()}:{os.getppid()}:serve-abc")
        background = submit(queue, audio)
        queue.claim("w", 3600, job_id=running)
        queue.claim("w", 3600, job_id=done)
        queue.complete(done, "w", RESULT, {})
        # When the next API process starts
        assert queue.drop_orphaned_sync_jobs() == 3
        # Then the dead process's sync jobs are gone, the others stay
        assert not any(queue.exists(job_id) for job_id in (waiting, running, done))
        assert queue.get(live).status == "queued" and queue.get(background).status == "queued"
        # and a sync job that finished is kept minutes (its waiter reads it at once), not the jobs' TTL
        queue.claim("w", 3600, job_id=live)
        queue.complete(live, "w", RESULT, {})
        assert 0 < queue.r.ttl(f"auricle:job:{live}") <= 600
        assert queue.r.ttl(f"auricle:job:{background}") == -1
    finally:
        queue.close()


@pytest.mark.redis
def test_redis_down_at_enqueue_leaves_no_upload_in_the_spool(tmp_path: Path, audio: Audio) -> None:
    import redis

    from auricle.jobs.redis import RedisJobQueue

    from _redis import free_port

    # Given a store whose Redis is down
    queue = RedisJobQueue(f"redis://127.0.0.1:{free_port()}/0", tmp_path / "spool", ttl_s=60, lease_s=30)
    try:
        # When a job is enqueued, it is refused, and its upload does not stay in the spool
        with pytest.raises(redis.ConnectionError):
            submit(queue, audio)
        assert list((tmp_path / "spool").iterdir()) == []
    finally:
        queue.close()


@pytest.mark.redis
def test_a_job_that_cannot_reach_the_workers_is_taken_back(
    redis_server: RedisServer, tmp_path: Path, audio: Audio
) -> None:
    import redis

    from auricle.jobs.dramatiq import DramatiqTransport
    from auricle.jobs.redis import RedisJobQueue

    from _redis import free_port

    redis.Redis.from_url(redis_server.url).flushall()
    # Given a store that is up and a transport to the workers that is down
    transport = DramatiqTransport(f"redis://127.0.0.1:{free_port()}/0", lease_s=30)
    queue = RedisJobQueue(redis_server.url, tmp_path / "spool", ttl_s=60, lease_s=30, dispatcher=transport)
    try:
        # When a job is enqueued, it is refused
        with pytest.raises(redis.ConnectionError):
            submit(queue, audio)
        # Then nothing of it stays: no job waiting forever for a message, no audio in Redis or in the spool
        assert queue.counts()["queued"] == 0 and queue.list() == []
        assert queue.r.keys("auricle:audio:*") == []
        assert list((tmp_path / "spool").iterdir()) == []
    finally:
        queue.close()


def test_fail_then_retry(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    with pytest.raises(JobStateError, match=f"^job {job_id} is queued; it cannot be retried$"):
        job_queue.retry(job_id)
    job_queue.claim("w", 30, job_id=job_id)
    error = ErrorInfo("AudioDecodeError", "failed to decode audio: nope", "file")
    assert job_queue.fail(job_id, "w", error)
    assert not job_queue.fail(job_id, "w", ErrorInfo(None, "again"))  # a finished job takes no second outcome
    failed = job_queue.get(job_id)
    assert failed.status == "failed" and failed.error_info == error
    assert failed.to_public()["error"] == "failed to decode audio: nope"
    events, _ = job_queue.read_events(job_id, None, 0.1)
    assert events[-1] == FinishedEvent("failed", failed.to_public())
    retried = job_queue.retry(job_id)
    assert retried.status == "queued" and retried.error is None and retried.error_info is None
    again = job_queue.claim("w2", 30, job_id=job_id).job
    assert again is not None and again.attempts == 2
    job_queue.complete(job_id, "w2", RESULT, {})
    with pytest.raises(JobStateError, match=f"^job {job_id} is succeeded; it cannot be retried$"):
        job_queue.retry(job_id)


def test_retry_goes_to_the_back_of_the_queue_with_the_lease_cleared(job_queue: JobQueue, audio: Audio) -> None:
    # Given a cancelled job that had been running, and two jobs queued after it
    first = submit(job_queue, audio)
    job_queue.claim("w", 30, job_id=first)
    job_queue.cancel(first)
    job_queue.fail(first, "w", CANCELLED)
    second, third = submit(job_queue, audio), submit(job_queue, audio)
    # When it is retried
    retried = job_queue.retry(first)
    # Then it is queued with no trace of the old attempt, and runs after the jobs that were waiting
    for job in (retried, job_queue.get(first)):
        assert job.status == "queued" and job.lease_until is None and job.worker is None
        assert job.started_at is None and job.finished_at is None and not job.cancel_requested
        assert job.stage is None and job.progress == 0.0 and job.attempts == 1
    events, _ = job_queue.read_events(first, None, 0.1)
    assert events == [StateEvent(job_queue.get(first).to_public())]
    order = [job_queue.claim(f"w{i}", 30).job for i in range(3)]
    assert [job.id if job else None for job in order] == [second, third, first]
    # Listings stay in creation order.
    assert [j.id for j in job_queue.list()] == [third, second, first]


def test_release_by_a_stopping_worker_queues_the_job_again_at_once(job_queue: JobQueue, audio: Audio) -> None:
    # Given a job running on a worker that shuts down, and a job queued after it
    first = submit(job_queue, audio)
    job_queue.claim("w", 30, job_id=first)
    second = submit(job_queue, audio)
    # When another worker tries to release it, nothing changes; when its holder does,
    assert not job_queue.release(first, "other")
    assert job_queue.get(first).status == "running"
    assert job_queue.release(first, "w")
    # then it is queued with its lease cleared (not running until the lease runs out), the attempt not counted,
    job = job_queue.get(first)
    assert job.status == "queued" and job.lease_until is None and job.worker is None and job.attempts == 0
    # and it runs again after the job that was waiting; the old holder can no longer complete it.
    order = [job_queue.claim(f"w{i}", 30).job for i in range(2)]
    assert [j.id if j else None for j in order] == [second, first]
    assert not job_queue.complete(first, "w", RESULT, {})
    # A release after a cancel request ends the job cancelled.
    third = submit(job_queue, audio)
    job_queue.claim("w", 30, job_id=third)
    job_queue.cancel(third)
    assert job_queue.release(third, "w")
    assert job_queue.get(third).status == "cancelled"


def test_duplicate_completion_is_refused(job_queue: JobQueue, audio: Audio) -> None:
    # Given a job completed by its worker
    job_id = submit(job_queue, audio)
    job_queue.claim("w", 30, job_id=job_id)
    assert job_queue.complete(job_id, "w", {**RESULT, "model": "first"}, {"processing_seconds": 1.0})
    # When the same worker (a redelivered message) or another one completes it again
    assert not job_queue.complete(job_id, "w", {**RESULT, "model": "second"}, {"processing_seconds": 2.0})
    assert not job_queue.complete(job_id, "other", {**RESULT, "model": "third"}, {})
    assert not job_queue.fail(job_id, "w", ErrorInfo(None, "late failure"))
    # Then the first result and stats stay, with one terminal event
    assert job_queue.result(job_id)["model"] == "first"
    job = job_queue.get(job_id)
    assert job.status == "succeeded" and job.stats["processing_seconds"] == 1.0 and job.error is None
    events, _ = job_queue.read_events(job_id, None, 0.1)
    assert [e.type for e in events] == ["state", "done"]
    assert not job_queue.heartbeat(job_id, "w", 30)
    assert job_queue.claim("w", 30, job_id=job_id).reason == "finished"


def test_delete_removes_job_audio_and_stops_its_worker(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    path = Path(job_queue.get(job_id).audio_path or "")
    job_queue.claim("w", 30, job_id=job_id)
    job_queue.delete(job_id)
    assert not path.exists()
    assert not job_queue.exists(job_id)
    with pytest.raises(JobNotFoundError):
        job_queue.get(job_id)
    assert not job_queue.heartbeat(job_id, "w", 30)
    assert not job_queue.complete(job_id, "w", RESULT, {})
    assert not job_queue.fail(job_id, "w", CANCELLED)
    job_queue.report(job_id, "w", ProgressEvent("stage", "transcribing", 10.0))
    assert job_queue.claim("w", 30, job_id=job_id).reason == "missing"
    assert job_queue.claim("w", 30).reason == "empty"
    with pytest.raises(JobNotFoundError, match=f"^no job {job_id}$"):
        job_queue.delete(job_id)
    assert sum(job_queue.counts().values()) == 0


def test_delete_of_a_queued_job_takes_it_out_of_the_queue(job_queue: JobQueue, audio: Audio) -> None:
    gone, kept = submit(job_queue, audio), submit(job_queue, audio)
    job_queue.delete(gone)
    claimed = job_queue.claim("w", 30).job
    assert claimed is not None and claimed.id == kept
    assert job_queue.claim("w", 30).reason == "empty"


def test_list_is_newest_first_filtered_and_paged(job_queue: JobQueue, audio: Audio) -> None:
    ids = []
    for i in range(5):
        ids.append(submit(job_queue, audio, session="a" if i % 2 == 0 else "b"))
        time.sleep(0.002)
    submit(job_queue, audio, ephemeral=True)
    job_queue.cancel(ids[0])
    assert [j.id for j in job_queue.list()] == ids[::-1]
    assert [j.id for j in job_queue.list(limit=2, offset=1)] == ids[::-1][1:3]
    assert [j.id for j in job_queue.list(session="a")] == [ids[4], ids[2], ids[0]]
    assert [j.id for j in job_queue.list(status="cancelled")] == [ids[0]]
    assert [j.id for j in job_queue.list(status="queued", session="b")] == [ids[3], ids[1]]


def test_events_replay_from_the_start_and_follow(job_queue: JobQueue, audio: Audio) -> None:
    job_id = submit(job_queue, audio)
    job_queue.claim("w", 30, job_id=job_id)
    segment = {"id": 0, "start": 0.0, "end": 1.0, "text": " hi"}
    job_queue.report(job_id, "w", ProgressEvent("stage", "transcribing", 0.0))
    job_queue.report(job_id, "w", ProgressEvent("segment", "transcribing", 50.0, segment=segment))
    job_queue.report(job_id, "not-the-holder", ProgressEvent("segment", "transcribing", 99.0))
    assert job_queue.get(job_id).progress == 50.0 and job_queue.get(job_id).stage == "transcribing"
    # A late reader first gets everything so far (from the current attempt).
    events, cursor = job_queue.read_events(job_id, None, 0.1)
    assert [e.type for e in events] == ["state", "stage", "segment"]
    assert isinstance(events[2], ProgressEvent) and events[2].segment == segment
    # Nothing new: returns after the timeout with the same cursor.
    started = time.monotonic()
    assert job_queue.read_events(job_id, cursor, 0.2) == ([], cursor)
    assert time.monotonic() - started < 2
    # A waiting reader wakes up on the terminal event.
    finisher = threading.Timer(0.2, job_queue.complete, (job_id, "w", RESULT, {}))
    finisher.start()
    events, _ = job_queue.read_events(job_id, cursor, 5.0)
    finisher.join(5)  # the queue (and its connection) must outlive the finishing call
    assert [e.type for e in events] == ["done"]
    assert isinstance(events[0], FinishedEvent) and events[0].job["status"] == "succeeded"


def test_ttl_expiry_and_orphan_sweep(make_queue: Callable[..., JobQueue], audio: Audio) -> None:
    # Given a finished job whose TTL is one second, and a stray spool file
    queue = make_queue(ttl_s=1)
    job_id = submit(queue, audio)
    path = Path(queue.get(job_id).audio_path or "")
    queue.claim("w", 30, job_id=job_id)
    queue.complete(job_id, "w", RESULT, {})
    kept = submit(queue, audio)
    stray = queue.spool_dir / "abandoned-upload.wav"
    stray.write_bytes(b"x")
    os.utime(stray, (time.time() - 7200, time.time() - 7200))
    # When the TTL has passed and housekeeping runs
    time.sleep(2.1)
    queue.sweep()
    removed = queue.sweep_orphans(min_age_s=3600, now=time.time() + 10)
    # Then the finished job and its audio are gone; the queued job stays; the stray file is gone
    assert not queue.exists(job_id)
    assert not path.exists()
    assert removed >= 1 and not stray.exists()
    assert [j.id for j in queue.list()] == [kept]
    assert Path(queue.get(kept).audio_path or "").exists()
