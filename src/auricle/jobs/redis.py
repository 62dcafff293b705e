"""Scale-out backend: job state, results and events in Redis/Valkey; delivery through Dramatiq's ``RedisBroker``.

Every job is one Dramatiq message (``auricle_transcribe(job_id)``) on the ``auricle`` queue. Dramatiq acks a
message only after its actor returns, and moves the unacked messages of a worker that stopped heartbeating
(``heartbeat_timeout`` = the job lease) back to the queue, so a ``kill -9``'d worker's job is redelivered.
Delivery is at least once; the job's own lease (``claim.lua``) makes sure it runs on one worker at a time and
only the lease holder may store a result (``owned.lua``), so exactly one result is kept.

Keys, kept while the job is queued or running and expiring ``job_ttl_s`` after it finished: ``auricle:job:<id>``
(hash), ``auricle:result:<id>``, ``auricle:audio:<id>``, ``auricle:ev:<id>`` (a stream: a late watcher replays it
from the start); plus the index ``auricle:jobs`` (by creation), one set per state ``auricle:state:<status>`` and
``auricle:workers``.

**Audio to remote workers**: files up to ``inline_audio_bytes`` (64 MB) are copied into ``auricle:audio:<id>``
with the job's TTL, so workers need no shared disk. Larger files stay only in the API node's spool directory and
the worker opens the same path: run such deployments with ``data_dir`` on a shared volume. The API node keeps
its spool copy for ``GET /v1/jobs/{id}/audio`` either way.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from auricle.errors import AudioDecodeError, JobNotFoundError, JobStateError
from auricle.jobs.base import STATES, TERMINAL, Job, JobEvent, JobQueue, new_job_id, remove_file, spool_name

try:
    import dramatiq
    import redis
    from dramatiq.brokers.redis import MAINTENANCE_SCALE, RedisBroker
except ImportError as exc:  # pragma: no cover - both are core dependencies
    raise ImportError("the Redis job backend needs `pip install 'auricle[redis]'` (redis, dramatiq[redis])") from exc

__all__ = ["RedisJobQueue"]

logger = logging.getLogger(__name__)

_LUA = Path(__file__).parent / "lua"
_P = "auricle:"
_INT_FIELDS = {"attempts"}
_FLOAT_FIELDS = {"created_at", "started_at", "finished_at", "progress", "lease_until"}
_BOOL_FIELDS = {"ephemeral", "cancel_requested"}
_JSON_FIELDS = {"options", "stats"}
T = TypeVar("T")


def _to_hash(job: Job) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in job.to_dict().items():
        if value is None:
            continue
        out[key] = (
            json.dumps(value) if key in _JSON_FIELDS else ("1" if value else "0") if key in _BOOL_FIELDS else str(value)
        )
    return out


def _from_hash(data: dict[str, str]) -> Job:
    fields: dict[str, Any] = {}
    for key, value in data.items():
        if key not in Job.__dataclass_fields__ or value == "":
            continue
        if key in _JSON_FIELDS:
            fields[key] = json.loads(value)
        elif key in _INT_FIELDS:
            fields[key] = int(value)
        elif key in _FLOAT_FIELDS:
            fields[key] = float(value)
        elif key in _BOOL_FIELDS:
            fields[key] = value == "1"
        else:
            fields[key] = value
    return Job(**fields)


def _persistent(fn: Callable[..., T]) -> Callable[..., T]:
    """Retry a worker-side call through a Redis restart or failover (up to a minute) instead of losing the job."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        delay, deadline = 0.2, time.monotonic() + 60.0
        while True:
            try:
                return fn(*args, **kwargs)
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                if time.monotonic() > deadline:
                    raise
                logger.warning("redis unavailable during %s; retrying", fn.__name__)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    return wrapper


class RedisJobQueue(JobQueue):
    """Jobs in Redis, handed out by Dramatiq.

    Args:
        url: ``redis://`` or ``rediss://`` URL (``AURICLE_REDIS_URL``).
        spool_dir: this node's spool (uploads; audio fetched for playback or by workers).
        ttl_s: seconds keys live after a job's last change.
        lease_s: job lease; also Dramatiq's worker heartbeat timeout.
        inline_audio_bytes: files up to this size travel through Redis; larger ones need a shared spool.
    """

    def __init__(
        self, url: str, spool_dir: Path, *, ttl_s: float, lease_s: float, inline_audio_bytes: int = 64 * 1024 * 1024
    ) -> None:
        self.spool_dir = spool_dir
        self.ttl = max(1, int(ttl_s))
        self.lease_s = lease_s
        self.inline_audio_bytes = inline_audio_bytes
        self.r = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        self.raw = redis.Redis.from_url(url)
        self._claim = self.r.register_script((_LUA / "claim.lua").read_text())
        self._owned_script = self.r.register_script((_LUA / "owned.lua").read_text())
        self._control = self.r.register_script((_LUA / "control.lua").read_text())
        # Maintenance (requeueing a dead worker's messages) runs on 1 in 20 broker calls; idle consumers poll
        # about once a second, so redelivery follows the heartbeat timeout within seconds.
        self.broker = RedisBroker(
            url=url,
            namespace="auricle-dramatiq",
            heartbeat_timeout=int(lease_s * 1000),
            maintenance_chance=MAINTENANCE_SCALE // 20,
        )
        self._runner: Any = None
        self._thread_workers = threading.local()

        def auricle_transcribe(job_id: str) -> None:
            self._perform(job_id)

        self.actor = dramatiq.actor(
            auricle_transcribe,
            broker=self.broker,
            queue_name="auricle",
            max_retries=20,
            min_backoff=1000,
            max_backoff=30_000,
            time_limit=24 * 3600 * 1000,
        )

    def _keys(self, job_id: str) -> tuple[str, str, str, str]:
        return f"{_P}job:{job_id}", f"{_P}ev:{job_id}", f"{_P}result:{job_id}", f"{_P}audio:{job_id}"

    def _add_event(self, job_id: str, event: JobEvent, *, reset: bool = False) -> None:
        _, events, _, _ = self._keys(job_id)
        pipe = self.r.pipeline()
        if reset:
            pipe.delete(events)
        pipe.xadd(events, {"e": json.dumps(event)}, maxlen=20000, approximate=True)
        pipe.execute()

    def _expire(self, job_id: str, *, persist: bool = False) -> None:
        """Start a finished job's TTL on all its keys (or, ``persist``, stop it: the job is active again)."""
        pipe = self.r.pipeline()
        for key in self._keys(job_id):
            pipe.persist(key) if persist else pipe.expire(key, self.ttl)
        pipe.execute()

    # -- producer side ---------------------------------------------------------------------------------------------
    def enqueue(
        self,
        audio: Path,
        *,
        filename: str | None,
        options: dict[str, Any],
        session: str | None = None,
        ephemeral: bool = False,
    ) -> Job:
        """See :meth:`JobQueue.enqueue`. Stores the job, then sends its Dramatiq message."""
        job = Job(id=new_job_id(), filename=filename, options=options, session=session, ephemeral=ephemeral)
        path = self._spool_audio(audio, job.id, filename)
        job.audio_path = str(path.resolve())
        key, _, _, audio_key = self._keys(job.id)
        pipe = self.r.pipeline()
        pipe.hset(key, mapping=_to_hash(job))
        pipe.sadd(f"{_P}state:queued", job.id)
        if not ephemeral:
            pipe.zadd(f"{_P}jobs", {job.id: job.created_at})
        if path.stat().st_size <= self.inline_audio_bytes:
            self.raw.set(audio_key, path.read_bytes())
        pipe.execute()
        self._add_event(job.id, {"type": "state", "job": job.to_public()})
        self.actor.send(job.id)
        return job

    def get(self, job_id: str) -> Job:
        """See :meth:`JobQueue.get`."""
        data = self.r.hgetall(self._keys(job_id)[0])
        if not data:
            raise JobNotFoundError(f"no job {job_id}", param="id")
        return _from_hash(data)

    def list(
        self, *, status: str | None = None, session: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """See :meth:`JobQueue.list`. Walks the index newest first (filters cost a scan of the index)."""
        out: list[Job] = []
        skipped, start, batch = 0, 0, 200
        while len(out) < limit:
            ids = self.r.zrevrange(f"{_P}jobs", start, start + batch - 1)
            if not ids:
                break
            start += batch
            pipe = self.r.pipeline()
            for job_id in ids:
                pipe.hgetall(self._keys(job_id)[0])
            for data in pipe.execute():
                if not data:
                    continue
                job = _from_hash(data)
                if (status and job.status != status) or (session and job.session != session):
                    continue
                if skipped < offset:
                    skipped += 1
                    continue
                out.append(job)
                if len(out) >= limit:
                    break
        return out

    def result(self, job_id: str) -> dict[str, Any]:
        """See :meth:`JobQueue.result`."""
        job = self.get(job_id)
        data = self.r.get(self._keys(job_id)[2])
        if job.status != "succeeded" or data is None:
            raise JobStateError(f"job {job_id} is {job.status}, not succeeded")
        return json.loads(data)

    def _control_call(self, job_id: str, action: str) -> str:
        answer = self._control(keys=[self._keys(job_id)[0], f"{_P}state:"], args=[job_id, action, time.time()])
        if answer == "missing":
            raise JobNotFoundError(f"no job {job_id}", param="id")
        if isinstance(answer, list):
            verb = "cancelled" if action == "cancel" else "retried"
            raise JobStateError(f"job {job_id} is {answer[1]}; it cannot be {verb}")
        return str(answer)

    def cancel(self, job_id: str) -> Job:
        """See :meth:`JobQueue.cancel`. A running job's worker sees the flag at its next heartbeat."""
        if self._control_call(job_id, "cancel") == "cancelled":
            job = self.get(job_id)
            self._add_event(job_id, {"type": "cancelled", "job": job.to_public()})
            self._expire(job_id)
            return job
        return self.get(job_id)

    def retry(self, job_id: str) -> Job:
        """See :meth:`JobQueue.retry`."""
        job = self.get(job_id)
        if job.status in ("failed", "cancelled") and not (
            self.raw.exists(self._keys(job_id)[3]) or (job.audio_path and Path(job.audio_path).is_file())
        ):
            raise JobStateError(f"the audio of job {job_id} is no longer stored")
        self._control_call(job_id, "retry")
        self.r.delete(self._keys(job_id)[2])
        job = self.get(job_id)
        self._add_event(job_id, {"type": "state", "job": job.to_public()}, reset=True)
        self._expire(job_id, persist=True)
        self.actor.send(job_id)
        return job

    def delete(self, job_id: str) -> None:
        """See :meth:`JobQueue.delete`. A running job's worker stops at its next heartbeat."""
        job = self.get(job_id)
        pipe = self.r.pipeline()
        pipe.delete(*self._keys(job_id))
        pipe.zrem(f"{_P}jobs", job_id)
        for state in STATES:
            pipe.srem(f"{_P}state:{state}", job_id)
        pipe.execute()
        remove_file(job.audio_path)

    def counts(self) -> dict[str, int]:
        """See :meth:`JobQueue.counts`."""
        pipe = self.r.pipeline()
        for state in STATES:
            pipe.scard(f"{_P}state:{state}")
        return dict(zip(STATES, (int(n) for n in pipe.execute()), strict=True))

    def exists(self, job_id: str) -> bool:
        """See :meth:`JobQueue.exists`."""
        return bool(self.r.exists(self._keys(job_id)[0]))

    def audio_file(self, job_id: str) -> Path:
        """See :meth:`JobQueue.audio_file`. Fetches the audio from Redis when another node received the upload."""
        job = self.get(job_id)
        if job.audio_path and Path(job.audio_path).is_file():
            return Path(job.audio_path)
        data = self.raw.get(self._keys(job_id)[3])
        if data is None:
            raise JobNotFoundError(f"the audio of job {job_id} is no longer stored")
        return self._write_file(self.spool_dir / spool_name(job_id, job.filename), data)

    def _write_file(self, target: Path, data: bytes) -> Path:
        target.parent.mkdir(parents=True, exist_ok=True)
        part = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
        part.write_bytes(data)
        os.replace(part, target)
        return target

    def read_events(self, job_id: str, cursor: str | None, timeout: float) -> tuple[list[JobEvent], str | None]:
        """See :meth:`JobQueue.read_events`. Blocks on ``XREAD`` of the job's stream."""
        if not self.exists(job_id):
            raise JobNotFoundError(f"no job {job_id}", param="id")
        block = max(1, int(timeout * 1000))
        answer = self.r.xread({self._keys(job_id)[1]: cursor or "0-0"}, block=block, count=500)
        if not answer:
            return [], cursor
        entries = answer[0][1]
        return [json.loads(fields["e"]) for _, fields in entries], entries[-1][0]

    # -- worker side -----------------------------------------------------------------------------------------------
    @_persistent
    def claim(self, worker_id: str, lease_s: float, *, job_id: str | None = None) -> Job | None:
        """See :meth:`JobQueue.claim`. Needs ``job_id``: Dramatiq decides which job a worker gets."""
        if job_id is None:
            raise ValueError("RedisJobQueue.claim needs the job id of a Dramatiq message")
        key, events, _, _ = self._keys(job_id)
        now = time.time()
        answer = self._claim(keys=[key, f"{_P}state:", events], args=[job_id, worker_id, now, now + lease_s])
        self._thread_workers.last_claim = answer
        if answer[0] != "ok":
            return None
        job = self.get(job_id)
        if answer[1] == "running":
            logger.warning("job %s: the lease of a dead worker expired; running it again", job_id)
        self._add_event(job_id, {"type": "state", "job": job.to_public()})
        return job

    def _owned(self, job_id: str, worker_id: str, action: str, *args: Any) -> Any:
        key, events, result, _ = self._keys(job_id)
        return self._owned_script(
            keys=[key, f"{_P}state:", events, result], args=[job_id, worker_id, action, self.ttl, *args]
        )

    @_persistent
    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """See :meth:`JobQueue.heartbeat`."""
        return int(self._owned(job_id, worker_id, "heartbeat", time.time() + lease_s)) == 0

    @_persistent
    def report(self, job_id: str, worker_id: str, event: JobEvent) -> None:
        """See :meth:`JobQueue.report`."""
        self._owned(job_id, worker_id, "report", json.dumps(event), event.get("stage", ""), event.get("progress", 0))

    @_persistent
    def complete(self, job_id: str, worker_id: str, result: dict[str, Any], stats: dict[str, Any]) -> bool:
        """See :meth:`JobQueue.complete`."""
        fields = ["finished_at", time.time(), "stats", json.dumps(stats), "stage", "done", "progress", 100]
        return self._finish(job_id, worker_id, "succeeded", json.dumps(result), fields)

    @_persistent
    def fail(self, job_id: str, worker_id: str, error: str, error_type: str | None = None) -> bool:
        """See :meth:`JobQueue.fail`."""
        fields = ["finished_at", time.time(), "error", error, "error_type", error_type or ""]
        return self._finish(job_id, worker_id, "failed", "", fields)

    def _finish(self, job_id: str, worker_id: str, status: str, result: str, fields: list[Any]) -> bool:
        stored = self._owned(job_id, worker_id, "finish", status, result, *fields)
        if stored == -1:
            return False
        job = self.get(job_id)
        self._add_event(job_id, {"type": "done" if stored == "succeeded" else stored, "job": job.to_public()})
        self._expire(job_id)
        return True

    def fetch_audio(self, job: Job, work_dir: Path) -> tuple[Path, bool]:
        """See :meth:`JobQueue.fetch_audio`: from Redis into ``work_dir``, else the (shared) spool path."""
        data = _persistent(self.raw.get)(self._keys(job.id)[3])
        if data is not None:
            return self._write_file(work_dir / spool_name(job.id, job.filename), data), True
        if job.audio_path and Path(job.audio_path).is_file():
            return Path(job.audio_path), False
        raise AudioDecodeError("the job's audio is not in Redis and its spool file is not on this worker's disk")

    def _perform(self, job_id: str) -> None:
        """The Dramatiq actor: claim the job for this thread and run it."""
        runner = self._runner
        if runner is None:
            raise RuntimeError("this process takes no jobs (no runner was started)")
        worker = getattr(self._thread_workers, "id", None)
        if worker is None:
            from auricle.jobs.worker import worker_id

            worker = self._thread_workers.id = worker_id("dq")
        job = self.claim(worker, self.lease_s, job_id=job_id)
        answer = getattr(self._thread_workers, "last_claim", ["ok"])
        if job is None and answer[0] == "leased":
            # Redelivered while the old lease still runs: wait it out once; a live holder keeps renewing it.
            time.sleep(max(0.0, float(answer[1]) - time.time()) + 0.5)
            job = self.claim(worker, self.lease_s, job_id=job_id)
        if job is None:
            logger.info("job %s: nothing to run (%s)", job_id, answer[0])
            return
        if runner.run(job, worker) == "interrupted":
            # Not acked: Dramatiq retries the message, and it is claimed again once our lease has run out.
            raise RuntimeError(f"job {job_id} was interrupted by a worker shutdown")

    def start_consumer(self, runner: Any, *, threads: int) -> dramatiq.Worker:
        """Start Dramatiq worker threads in this process that run jobs with ``runner``; returns the worker
        (``stop(timeout_ms)`` to stop it)."""
        self._runner = runner
        worker = dramatiq.Worker(self.broker, queues={"auricle"}, worker_threads=threads, worker_timeout=100)
        # An idle consumer polls Redis at most every 100 ms (Dramatiq's default 1 s adds ~0.5 s to each job's wait).
        # Prefetch only what the threads can run, so idle worker processes get the waiting jobs.
        worker.queue_prefetch = threads
        worker.start()
        return worker

    # -- housekeeping ----------------------------------------------------------------------------------------------
    def register_worker(self, worker: str, threads: int) -> None:
        """Announce a live worker process (counted by :meth:`worker_count` for a while)."""
        self.r.zadd(f"{_P}workers", {f"{worker}|{threads}": time.time()})

    def unregister_worker(self, worker: str) -> None:
        """Forget a stopping worker process."""
        for member in self.r.zrange(f"{_P}workers", 0, -1):
            if member.startswith(f"{worker}|"):
                self.r.zrem(f"{_P}workers", member)

    def worker_count(self) -> int:
        """Worker threads of processes seen within two leases."""
        key = f"{_P}workers"
        self.r.zremrangebyscore(key, "-inf", time.time() - max(60.0, 2 * self.lease_s))
        return sum(int(m.rpartition("|")[2] or 0) for m in self.r.zrange(key, 0, -1))

    def sweep(self, *, now: float | None = None) -> int:
        """Drop index and state-set entries of expired jobs (Redis expires the keys themselves), and send a new
        message for a running job whose lease ran out long ago (its message was lost). Returns ids dropped."""
        now = time.time() if now is None else now
        dropped = 0
        for key in [f"{_P}jobs", *(f"{_P}state:{s}" for s in STATES)]:
            members = self.r.zrange(key, 0, -1) if key.endswith("jobs") else list(self.r.sscan_iter(key))
            pipe = self.r.pipeline()
            for job_id in members:
                pipe.exists(self._keys(job_id)[0])
            for job_id, alive in zip(members, pipe.execute(), strict=True):
                if not alive:
                    (self.r.zrem if key.endswith("jobs") else self.r.srem)(key, job_id)
                    dropped += key.endswith("jobs")
        for job_id in self.r.smembers(f"{_P}state:running"):
            lease = self.r.hget(self._keys(job_id)[0], "lease_until")
            if lease and float(lease) < now - 2 * self.lease_s:
                logger.warning("job %s: lease long expired and not redelivered; sending it again", job_id)
                self.actor.send(job_id)
        return dropped

    def sweep_work_dir(self, work_dir: Path) -> int:
        """Delete worker temp files of jobs that are gone or finished (left by a killed worker)."""
        removed = 0
        for path in work_dir.glob("job-*") if work_dir.is_dir() else []:
            status = self.r.hget(self._keys(path.name[4:36])[0], "status")
            if (status is None or status in TERMINAL) and time.time() - path.stat().st_mtime > 5:
                remove_file(str(path))
                removed += 1
        return removed

    def close(self) -> None:
        """Close the connection pools."""
        self.r.close()
        self.raw.close()
        self.broker.close()
