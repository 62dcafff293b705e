"""Scale-out store: job state, results, events and audio in Redis/Valkey, shared by API nodes and workers.

Only storage lives here; :mod:`auricle.jobs.base` decides every state change, and delivery to worker processes is
:mod:`auricle.jobs.dramatiq`, plugged in as the :class:`Dispatcher` that hears of every queued job.

A change is optimistic: read the job hash (with its version ``_v``), let :mod:`~auricle.jobs.base` decide, then
store the change with ``lua/store.lua``, a compare-and-set on the version that also keeps the indexes, the event
stream, the result and the expiry in step, atomically. On a conflict (another node changed the job meanwhile) the
job is read and decided again. This keeps one copy of the rules in Python instead of a second one in Lua.

Keys, kept while the job is queued or running and expiring ``ttl_s`` after it finished: ``auricle:job:<id>``
(hash), ``auricle:result:<id>``, ``auricle:audio:<id>``, ``auricle:ev:<id>`` (a stream: a late watcher replays it
from the start). Indexes: ``auricle:jobs`` (listing, by creation), ``auricle:queue`` (queued jobs, in queue
order), ``auricle:webhooks`` (jobs with a pending webhook event, by when it is due), ``auricle:sync`` (sync
requests' jobs), one set per state ``auricle:state:<status>`` and ``auricle:workers`` (the worker registry).

**Sync requests' jobs** are read and deleted by the API process that waits for them, so a finished one is kept
only ``_SYNC_TTL_S``; one whose waiter is gone is dropped by the next API process to start on the waiter's host
(a crash and restart) or, once its wait runs out, by any node's sweep, and a claim never runs it
(:func:`~auricle.jobs.base.orphaned`).

**Audio to remote workers**: files up to ``inline_audio_bytes`` (64 MB) are copied into ``auricle:audio:<id>``,
so workers need no shared disk. Larger files stay only in the API node's spool directory and the worker opens the
same path: run such deployments with ``data_dir`` on a shared volume. The API node keeps its spool copy for
``GET /v1/jobs/{id}/audio`` either way.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ParamSpec, Protocol, TypeVar, cast

from auricle.errors import AudioDecodeError, JobNotFoundError, JobStateError
from auricle.jobs._names import process_gone
from auricle.jobs.base import STATES, Change, Claim, Job, JobQueue, not_found, orphaned, spool_name, webhook_due
from auricle.jobs.codec import ErrorInfo
from auricle.jobs.events import JobEvent, ProgressEvent, event_from_dict

try:
    import redis
except ImportError as exc:  # pragma: no cover - redis is a core dependency
    raise ImportError("the Redis job store needs the `redis` package: `pip install redis`") from exc

__all__ = ["Dispatcher", "RedisJobQueue"]

logger = logging.getLogger(__name__)

_LUA = Path(__file__).parent / "lua"
_P = "auricle:"
_INT_FIELDS = {"attempts"}
_FLOAT_FIELDS = {"created_at", "started_at", "finished_at", "progress", "lease_until", "waiter_until"}
_BOOL_FIELDS = {"ephemeral", "cancel_requested"}
_JSON_FIELDS = {"options", "stats", "webhook"}
_CONFLICT_RETRIES = 100
_SYNC_TTL_S = 600
P = ParamSpec("P")
T = TypeVar("T")


class Dispatcher(Protocol):
    """Hands queued jobs to worker processes (:class:`~auricle.jobs.dramatiq.DramatiqTransport`)."""

    def send(self, job_id: str) -> None:
        """Tell the workers that ``job_id`` is queued (at least once)."""

    def close(self) -> None:
        """Release connections."""


def _to_hash(job: Job) -> list[str]:
    out: list[str] = []
    for key, value in job.to_dict().items():
        if value is None:
            continue
        if key in _JSON_FIELDS:
            text = json.dumps(value)
        elif key in _BOOL_FIELDS:
            text = "1" if value else "0"
        else:
            text = str(value)
        out += [key, text]
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


def _persistent(fn: Callable[P, T]) -> Callable[P, T]:
    """Retry a worker-side call through a Redis restart or failover (up to a minute) instead of losing the job."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
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
    """Jobs in Redis.

    Args:
        url: ``redis://`` or ``rediss://`` URL (``AURICLE_REDIS_URL``).
        spool_dir: this node's spool (uploads; audio fetched for playback or by workers).
        ttl_s: seconds keys live after a job finished.
        lease_s: job lease (how long before a silent worker's job is redelivered).
        inline_audio_bytes: files up to this size travel through Redis; larger ones need a shared spool.
        dispatcher: told of every queued job (None: nobody is, e.g. in tests that claim by hand).
    """

    def __init__(
        self,
        url: str,
        spool_dir: Path,
        *,
        ttl_s: float,
        lease_s: float,
        inline_audio_bytes: int = 64 * 1024 * 1024,
        dispatcher: Dispatcher | None = None,
    ) -> None:
        super().__init__()
        self.spool_dir = spool_dir
        self.ttl = max(1, int(ttl_s))
        self.lease_s = lease_s
        self.inline_audio_bytes = inline_audio_bytes
        self.dispatcher = dispatcher
        self.worker_ttl_s = max(60.0, 2 * lease_s)
        self.waiter_lease_s = max(60.0, 2 * lease_s)
        self.r = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        self.raw = redis.Redis.from_url(url)
        self._store_script = self.r.register_script((_LUA / "store.lua").read_text())

    @staticmethod
    def _keys(job_id: str) -> tuple[str, str, str, str]:
        """The job hash, events stream, result and audio keys."""
        return f"{_P}job:{job_id}", f"{_P}ev:{job_id}", f"{_P}result:{job_id}", f"{_P}audio:{job_id}"

    # The client decodes responses, so every reply is text; redis-py's types cannot say so.
    def _hash(self, job_id: str) -> dict[str, str]:
        return cast("dict[str, str]", self.r.hgetall(self._keys(job_id)[0]))

    @staticmethod
    def _strings(reply: Any) -> list[str]:
        return [str(item) for item in reply]

    # -- storage primitives ----------------------------------------------------------------------------------------
    def _write(self, change: Change, expected: str, *, index: float | None = None) -> bool:
        """Run the compare-and-set; False on a conflict."""
        job = change.job
        flags = {
            "reset_events": change.reset_events,
            "requeue": change.requeue,
            "drop_result": change.drop_result,
            "finished": job.finished,
            "index": index if index is not None else False,
            "hook_due": webhook_due(job) or False,
            "sync": job.ephemeral,
        }
        events = json.dumps([json.dumps(event.to_dict()) for event in change.events])
        result = json.dumps(change.result) if change.result is not None else ""
        keys = [*self._keys(job.id), f"{_P}state:", f"{_P}queue", f"{_P}queue:seq", f"{_P}jobs", f"{_P}webhooks"]
        keys.append(f"{_P}sync")
        ttl = min(self.ttl, _SYNC_TTL_S) if job.ephemeral else self.ttl
        args = [job.id, expected, str(ttl), json.dumps(flags), result, events, *_to_hash(job)]
        return int(self._store_script(keys=keys, args=args)) != -1

    def _insert(self, change: Change) -> None:
        job = change.job
        path = Path(job.audio_path or "")
        audio_key = self._keys(job.id)[3]
        if path.is_file() and path.stat().st_size <= self.inline_audio_bytes:
            self.raw.set(audio_key, path.read_bytes())
        try:
            stored = self._write(change, "new", index=None if job.ephemeral else job.created_at)
        except BaseException:
            with contextlib.suppress(Exception):  # Redis went down meanwhile: it keeps no audio of a job it lacks
                self.raw.delete(audio_key)
            raise
        if not stored:
            raise JobStateError(f"job {job.id} already exists")

    def _apply(self, job_id: str, decide: Callable[[Job], Change | None]) -> tuple[Job, bool]:
        for _ in range(_CONFLICT_RETRIES):
            data = self._hash(job_id)
            if not data:
                raise not_found(job_id)
            job = _from_hash(data)
            change = decide(job)
            if change is None:
                return job, False
            if self._write(change, data.get("_v", "0")):
                return change.job, True
        raise RuntimeError(f"job {job_id}: too many concurrent changes")

    def _claimable(self, now: float, *, limit: int) -> list[str]:
        ids: list[str] = []
        for job_id in self._strings(self.r.smembers(f"{_P}state:running")):
            lease = cast("str | None", self.r.hget(self._keys(job_id)[0], "lease_until"))
            if lease is not None and float(lease) < now:
                ids.append(job_id)
        return [*ids, *self._strings(self.r.zrange(f"{_P}queue", 0, limit - 1))][:limit]

    def _webhooks_due(self, now: float, *, limit: int) -> list[str]:
        return self._strings(self.r.zrangebyscore(f"{_P}webhooks", "-inf", now, start=0, num=limit))

    def _remove(self, job_id: str) -> Job:
        job = self.get(job_id)
        pipe = self.r.pipeline()
        pipe.delete(*self._keys(job_id))
        pipe.zrem(f"{_P}jobs", job_id)
        pipe.zrem(f"{_P}webhooks", job_id)
        pipe.zrem(f"{_P}queue", job_id)
        pipe.srem(f"{_P}sync", job_id)
        for state in STATES:
            pipe.srem(f"{_P}state:{state}", job_id)
        pipe.execute()
        return job

    def _audio_stored(self, job: Job) -> bool:
        return bool(self.raw.exists(self._keys(job.id)[3])) or super()._audio_stored(job)

    def _queued(self, job_id: str) -> None:
        if self.dispatcher is not None:
            self.dispatcher.send(job_id)

    # -- reading ---------------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """See :meth:`JobQueue.get`."""
        data = self._hash(job_id)
        if not data:
            raise not_found(job_id)
        return _from_hash(data)

    def list(
        self, *, status: str | None = None, session: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """See :meth:`JobQueue.list`. Walks the index newest first (filters cost a scan of the index)."""
        out: list[Job] = []
        skipped, start, batch = 0, 0, 200
        while len(out) < limit:
            ids = self._strings(self.r.zrevrange(f"{_P}jobs", start, start + batch - 1))
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
        data = cast("str | None", self.r.get(self._keys(job_id)[2]))
        if job.status != "succeeded" or data is None:
            raise JobStateError(f"job {job_id} is {job.status}, not succeeded")
        result: dict[str, Any] = json.loads(data)
        return result

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
        data = cast("bytes | None", self.raw.get(self._keys(job_id)[3]))
        if data is None:
            raise JobNotFoundError(f"the audio of job {job_id} is no longer stored")
        return _write_file(self.spool_dir / spool_name(job_id, job.filename), data)

    def read_events(
        self, job_id: str, cursor: str | None, timeout: float
    ) -> tuple[builtins.list[JobEvent], str | None]:
        """See :meth:`JobQueue.read_events`. Blocks on ``XREAD`` of the job's stream."""
        if not self.exists(job_id):
            raise not_found(job_id)
        block = max(1, int(timeout * 1000))
        answer = cast(
            "list[tuple[str, list[tuple[str, dict[str, str]]]]]",
            self.r.xread({self._keys(job_id)[1]: cursor or "0-0"}, block=block, count=500),
        )
        if not answer:
            return [], cursor
        entries = answer[0][1]
        return [event_from_dict(json.loads(fields["e"])) for _, fields in entries], str(entries[-1][0])

    # -- worker side: retried through a Redis restart ----------------------------------------------------------
    @_persistent
    def claim(self, worker_id: str, lease_s: float, *, job_id: str | None = None) -> Claim:
        """See :meth:`JobQueue.claim`."""
        return super().claim(worker_id, lease_s, job_id=job_id)

    @_persistent
    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """See :meth:`JobQueue.heartbeat`."""
        return super().heartbeat(job_id, worker_id, lease_s)

    @_persistent
    def report(self, job_id: str, worker_id: str, event: ProgressEvent) -> None:
        """See :meth:`JobQueue.report`."""
        super().report(job_id, worker_id, event)

    @_persistent
    def complete(self, job_id: str, worker_id: str, result: dict[str, Any], stats: dict[str, Any]) -> bool:
        """See :meth:`JobQueue.complete`."""
        return super().complete(job_id, worker_id, result, stats)

    @_persistent
    def fail(self, job_id: str, worker_id: str, error: ErrorInfo) -> bool:
        """See :meth:`JobQueue.fail`."""
        return super().fail(job_id, worker_id, error)

    @_persistent
    def fetch_audio(self, job: Job, work_dir: Path) -> tuple[Path, bool]:
        """See :meth:`JobQueue.fetch_audio`: from Redis into ``work_dir``, else the (shared) spool path."""
        data = cast("bytes | None", self.raw.get(self._keys(job.id)[3]))
        if data is not None:
            return _write_file(work_dir / spool_name(job.id, job.filename), data), True
        if job.audio_path and Path(job.audio_path).is_file():
            return Path(job.audio_path), False
        raise AudioDecodeError("the job's audio is not in Redis and its spool file is not on this worker's disk")

    @_persistent
    def store_fetched(self, job_id: str, worker: str, path: Path) -> Job | None:
        """See :meth:`JobQueue.store_fetched`; the audio also goes into Redis (when small enough), so every node
        can play it back and a retry on another worker finds it."""
        job = super().store_fetched(job_id, worker, path)
        if job is not None and job.audio_path:
            audio = Path(job.audio_path)
            if audio.stat().st_size <= self.inline_audio_bytes:
                self.raw.set(self._keys(job_id)[3], audio.read_bytes())
        return job

    # -- worker registry -------------------------------------------------------------------------------------------
    def register_worker(self, worker: str, threads: int) -> None:
        """See :meth:`JobQueue.register_worker`: shared by every node through ``auricle:workers``."""
        self.r.zadd(f"{_P}workers", {f"{worker}|{threads}": time.time()})

    def unregister_worker(self, worker: str) -> None:
        """See :meth:`JobQueue.unregister_worker`."""
        for member in self._strings(self.r.zrange(f"{_P}workers", 0, -1)):
            if member.startswith(f"{worker}|"):
                self.r.zrem(f"{_P}workers", member)

    def worker_count(self) -> int:
        """See :meth:`JobQueue.worker_count`."""
        key = f"{_P}workers"
        self.r.zremrangebyscore(key, "-inf", time.time() - self.worker_ttl_s)
        return sum(int(m.rpartition("|")[2] or 0) for m in self._strings(self.r.zrange(key, 0, -1)))

    # -- housekeeping ----------------------------------------------------------------------------------------------
    def sweep(self, *, now: float | None = None) -> int:
        """Drop index and state-set entries of expired jobs (Redis expires the keys themselves), and hand out again
        a running job whose lease ran out long ago (its message was lost). Returns the jobs dropped."""
        now = time.time() if now is None else now
        dropped = 0
        for key in [f"{_P}jobs", f"{_P}queue", f"{_P}webhooks", f"{_P}sync", *(f"{_P}state:{s}" for s in STATES)]:
            ordered = key in (f"{_P}jobs", f"{_P}queue", f"{_P}webhooks")
            members = self._strings(self.r.zrange(key, 0, -1) if ordered else self.r.sscan_iter(key))
            pipe = self.r.pipeline()
            for job_id in members:
                pipe.exists(self._keys(job_id)[0])
            for job_id, alive in zip(members, pipe.execute(), strict=True):
                if not alive:
                    if ordered:
                        self.r.zrem(key, job_id)
                    else:
                        self.r.srem(key, job_id)
                    dropped += int(key == f"{_P}jobs")
        for job_id in self._strings(self.r.smembers(f"{_P}state:running")):
            lease = cast("str | None", self.r.hget(self._keys(job_id)[0], "lease_until"))
            if lease and float(lease) < now - 2 * self.lease_s:
                logger.warning("job %s: lease long expired and not redelivered; sending it again", job_id)
                self._queued(job_id)
        self._drop_sync_jobs(lambda job: orphaned(job, now))
        return dropped

    def drop_orphaned_sync_jobs(self) -> int:
        """See :meth:`JobQueue.drop_orphaned_sync_jobs`. The store is shared by API processes on several hosts: a
        job is dropped when its waiter is a gone process of this host (at once after a crash and restart) or when
        its wait ran out (a waiter on any host)."""
        now = time.time()
        dropped = self._drop_sync_jobs(lambda job: process_gone(job.waiter) or orphaned(job, now))
        if dropped:
            logger.info("dropped %d sync job(s) whose client is gone with the process it waited in", dropped)
        return dropped

    def _drop_sync_jobs(self, gone: Callable[[Job], bool]) -> int:
        """Delete the sync requests' jobs for which ``gone`` holds. Returns how many."""
        ids = self._strings(self.r.smembers(f"{_P}sync"))
        pipe = self.r.pipeline()
        for job_id in ids:
            pipe.hgetall(self._keys(job_id)[0])
        dropped = 0
        for job_id, data in zip(ids, pipe.execute(), strict=True):
            if data and gone(_from_hash(data)):
                with contextlib.suppress(JobNotFoundError):
                    self.delete(job_id)
                    dropped += 1
        return dropped

    def close(self) -> None:
        """Close the connection pools (and the dispatcher's)."""
        self.r.close()
        self.raw.close()
        if self.dispatcher is not None:
            self.dispatcher.close()


def _write_file(target: Path, data: bytes) -> Path:
    """Write ``data`` to ``target`` through a temporary name (readers never see a partial file)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.part")
    part.write_bytes(data)
    os.replace(part, target)
    return target
