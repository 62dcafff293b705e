"""The embedded default: jobs, results and events in one SQLite file (WAL), audio in the spool directory.

Every state change is one ``BEGIN IMMEDIATE`` transaction that reads the job, changes it and writes it back, so
two workers (threads or processes sharing the file) can never claim the same job: the lease is the
``lease_until`` column, and a running job whose lease passed is claimed again. At start, :meth:`recover` makes
the jobs of this host's dead processes claimable at once instead of waiting for their leases to run out.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auricle.errors import JobNotFoundError, JobStateError
from auricle.jobs.base import STATES, Job, JobEvent, JobQueue, new_job_id, remove_file

__all__ = ["SqliteJobQueue", "pid_alive"]

logger = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    session TEXT,
    ephemeral INTEGER NOT NULL DEFAULT 0,
    finished_at REAL,
    lease_until REAL,
    data TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs (status, seq);
CREATE TABLE IF NOT EXISTS results (id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, data TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id, seq);
"""


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class SqliteJobQueue(JobQueue):
    """Jobs in ``path`` (created with its tables on first use).

    Args:
        path: the database file (``data_dir/jobs.sqlite3``).
        spool_dir: where job audio is kept.
        ttl_s: seconds a finished job is kept.
    """

    def __init__(self, path: Path, spool_dir: Path, *, ttl_s: float = 7 * 86400.0) -> None:
        self.path = path
        self.spool_dir = spool_dir
        self.ttl_s = ttl_s
        self._local = threading.local()
        self._cond = threading.Condition()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(_SCHEMA)

    # -- connection and transactions -------------------------------------------------------------------------------
    def _db(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode loses nothing when the process dies; only an OS crash may drop the last commits.
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def _tx(self) -> _Transaction:
        return _Transaction(self._db())

    def _load(self, db: sqlite3.Connection, job_id: str) -> Job:
        row = db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job {job_id}", param="id")
        return Job.from_dict(json.loads(row[0]))

    def _store(self, db: sqlite3.Connection, job: Job, *, insert: bool = False) -> None:
        values = (
            job.status,
            job.session,
            int(job.ephemeral),
            job.finished_at,
            job.lease_until,
            json.dumps(job.to_dict()),
        )
        if insert:
            db.execute(
                "INSERT INTO jobs (status, session, ephemeral, finished_at, lease_until, data, id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*values, job.id),
            )
        else:
            db.execute(
                "UPDATE jobs SET status = ?, session = ?, ephemeral = ?, finished_at = ?, lease_until = ?, data = ?"
                " WHERE id = ?",
                (*values, job.id),
            )

    def _emit(self, db: sqlite3.Connection, job_id: str, event: JobEvent, *, reset: bool = False) -> None:
        if reset:
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
        db.execute("INSERT INTO events (job_id, data) VALUES (?, ?)", (job_id, json.dumps(event)))

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _mutate(self, job_id: str, change: Callable[[sqlite3.Connection, Job], bool]) -> tuple[Job, bool]:
        """Load, change and store one job in one transaction; ``change`` returns whether to store."""
        with self._tx() as db:
            job = self._load(db, job_id)
            changed = change(db, job)
            if changed:
                self._store(db, job)
        if changed:
            self._notify()
        return job, changed

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
        """See :meth:`JobQueue.enqueue`."""
        job = Job(id=new_job_id(), filename=filename, options=options, session=session, ephemeral=ephemeral)
        job.audio_path = str(self._spool_audio(audio, job.id, filename))
        with self._tx() as db:
            self._store(db, job, insert=True)
            self._emit(db, job.id, {"type": "state", "job": job.to_public()})
        self._notify()
        return job

    def get(self, job_id: str) -> Job:
        """See :meth:`JobQueue.get`."""
        return self._load(self._db(), job_id)

    def list(
        self, *, status: str | None = None, session: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """See :meth:`JobQueue.list`."""
        sql, args = "SELECT data FROM jobs WHERE ephemeral = 0", []
        if status:
            sql, args = sql + " AND status = ?", [*args, status]
        if session:
            sql, args = sql + " AND session = ?", [*args, session]
        rows = self._db().execute(sql + " ORDER BY seq DESC LIMIT ? OFFSET ?", (*args, limit, offset)).fetchall()
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    def result(self, job_id: str) -> dict[str, Any]:
        """See :meth:`JobQueue.result`."""
        job = self.get(job_id)
        row = self._db().execute("SELECT data FROM results WHERE id = ?", (job_id,)).fetchone()
        if job.status != "succeeded" or row is None:
            raise JobStateError(f"job {job_id} is {job.status}, not succeeded")
        return json.loads(row[0])

    def cancel(self, job_id: str) -> Job:
        """See :meth:`JobQueue.cancel`."""

        def change(db: sqlite3.Connection, job: Job) -> bool:
            if job.finished:
                raise JobStateError(f"job {job_id} already {job.status}")
            if job.status == "queued":
                job.status, job.finished_at = "cancelled", time.time()
                self._emit(db, job_id, {"type": "cancelled", "job": job.to_public()})
            job.cancel_requested = True
            return True

        return self._mutate(job_id, change)[0]

    def retry(self, job_id: str) -> Job:
        """See :meth:`JobQueue.retry`."""

        def change(db: sqlite3.Connection, job: Job) -> bool:
            if job.status not in ("failed", "cancelled"):
                raise JobStateError(f"only failed or cancelled jobs can be retried; job {job_id} is {job.status}")
            if not (job.audio_path and Path(job.audio_path).is_file()):
                raise JobStateError(f"the audio of job {job_id} is no longer stored")
            job.status, job.error, job.error_type, job.cancel_requested = "queued", None, None, False
            job.started_at = job.finished_at = job.lease_until = None
            job.stage, job.progress = None, 0.0
            db.execute("DELETE FROM results WHERE id = ?", (job_id,))
            self._emit(db, job_id, {"type": "state", "job": job.to_public()}, reset=True)
            # A retried job goes to the back of the queue.
            db.execute("UPDATE jobs SET seq = (SELECT MAX(seq) + 1 FROM jobs) WHERE id = ?", (job_id,))
            return True

        return self._mutate(job_id, change)[0]

    def delete(self, job_id: str) -> None:
        """See :meth:`JobQueue.delete`."""
        with self._tx() as db:
            job = self._load(db, job_id)
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute("DELETE FROM results WHERE id = ?", (job_id,))
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
        remove_file(job.audio_path)
        self._notify()

    def counts(self) -> dict[str, int]:
        """See :meth:`JobQueue.counts`."""
        counts = dict.fromkeys(STATES, 0)
        for status, n in self._db().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
            counts[status] = n
        return counts

    def exists(self, job_id: str) -> bool:
        """See :meth:`JobQueue.exists`."""
        return self._db().execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None

    def read_events(self, job_id: str, cursor: str | None, timeout: float) -> tuple[list[JobEvent], str | None]:
        """See :meth:`JobQueue.read_events`. Waits on in-process notifications, polling for other processes."""
        after = int(cursor or 0)
        deadline = time.monotonic() + timeout
        db = self._db()
        while True:
            if not self.exists(job_id):
                raise JobNotFoundError(f"no job {job_id}", param="id")
            rows = db.execute(
                "SELECT seq, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, after)
            ).fetchall()
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return [json.loads(r[1]) for r in rows], str(rows[-1][0] if rows else after)
            with self._cond:
                self._cond.wait(min(remaining, 0.25))

    # -- worker side -----------------------------------------------------------------------------------------------
    def claim(self, worker_id: str, lease_s: float, *, job_id: str | None = None) -> Job | None:
        """See :meth:`JobQueue.claim`."""
        now = time.time()
        claimable = "(status = 'queued' OR (status = 'running' AND lease_until < ?))"
        with self._tx() as db:
            if job_id:
                row = db.execute(f"SELECT data FROM jobs WHERE id = ? AND {claimable}", (job_id, now)).fetchone()
            else:
                row = db.execute(f"SELECT data FROM jobs WHERE {claimable} ORDER BY seq LIMIT 1", (now,)).fetchone()
            if row is None:
                return None
            job = Job.from_dict(json.loads(row[0]))
            if job.status == "running":
                logger.warning("job %s: lease of %s expired, running it again", job.id, job.worker)
            job.status, job.worker, job.lease_until = "running", worker_id, now + lease_s
            job.attempts += 1
            job.started_at, job.stage, job.progress = now, "queued", 0.0
            self._store(db, job)
            self._emit(db, job.id, {"type": "state", "job": job.to_public()}, reset=True)
        self._notify()
        return job

    def recover(self) -> int:
        """Make running jobs of dead processes on this host claimable now. Returns how many."""
        host, me = socket.gethostname(), os.getpid()
        stale: list[str] = []
        for row in self._db().execute("SELECT data FROM jobs WHERE status = 'running'"):
            job = Job.from_dict(json.loads(row[0]))
            w_host, _, rest = (job.worker or "").partition(":")
            pid = int(rest.partition(":")[0] or 0) if rest.partition(":")[0].isdigit() else 0
            # Our own pid can only appear when a container restarted us with the same pid: those jobs are stale too.
            if w_host == host and (pid == me or not pid_alive(pid)):
                stale.append(job.id)
        for job_id in stale:
            self._db().execute("UPDATE jobs SET lease_until = 0 WHERE id = ? AND status = 'running'", (job_id,))
            logger.info("job %s was running in a process that died; it will run again", job_id)
        return len(stale)

    def _owned(self, job_id: str, worker_id: str, change: Callable[[sqlite3.Connection, Job], None]) -> Job | None:
        def guarded(db: sqlite3.Connection, job: Job) -> bool:
            if job.status != "running" or job.worker != worker_id:
                return False
            change(db, job)
            return True

        try:
            job, changed = self._mutate(job_id, guarded)
        except JobNotFoundError:
            return None
        return job if changed else None

    def heartbeat(self, job_id: str, worker_id: str, lease_s: float) -> bool:
        """See :meth:`JobQueue.heartbeat`."""

        def extend(_db: sqlite3.Connection, job: Job) -> None:
            job.lease_until = time.time() + lease_s

        job = self._owned(job_id, worker_id, extend)
        return job is not None and not job.cancel_requested

    def report(self, job_id: str, worker_id: str, event: JobEvent) -> None:
        """See :meth:`JobQueue.report`."""

        def update(db: sqlite3.Connection, job: Job) -> None:
            job.stage = event.get("stage", job.stage)
            job.progress = float(event.get("progress", job.progress))
            self._emit(db, job_id, event)

        self._owned(job_id, worker_id, update)

    def complete(self, job_id: str, worker_id: str, result: dict[str, Any], stats: dict[str, Any]) -> bool:
        """See :meth:`JobQueue.complete`."""

        def finish(db: sqlite3.Connection, job: Job) -> None:
            db.execute("INSERT OR REPLACE INTO results (id, data) VALUES (?, ?)", (job_id, json.dumps(result)))
            job.status, job.finished_at, job.stats = "succeeded", time.time(), dict(stats)
            job.stage, job.progress = "done", 100.0
            self._emit(db, job_id, {"type": "done", "job": job.to_public()})

        return self._owned(job_id, worker_id, finish) is not None

    def fail(self, job_id: str, worker_id: str, error: str, error_type: str | None = None) -> bool:
        """See :meth:`JobQueue.fail`."""

        def finish(db: sqlite3.Connection, job: Job) -> None:
            job.finished_at = time.time()
            if job.cancel_requested:
                job.status = "cancelled"
            else:
                job.status, job.error, job.error_type = "failed", error, error_type
            self._emit(db, job_id, {"type": job.status, "job": job.to_public()})

        return self._owned(job_id, worker_id, finish) is not None

    def wait_for_work(self, timeout: float) -> None:
        """See :meth:`JobQueue.wait_for_work`."""
        with self._cond:
            self._cond.wait(timeout)

    # -- housekeeping ----------------------------------------------------------------------------------------------
    def sweep(self, *, now: float | None = None) -> int:
        """See :meth:`JobQueue.sweep`."""
        limit = (time.time() if now is None else now) - self.ttl_s
        rows = (
            self._db()
            .execute(
                "SELECT id FROM jobs WHERE status IN ('succeeded', 'failed', 'cancelled') AND finished_at < ?", (limit,)
            )
            .fetchall()
        )
        for (job_id,) in rows:
            try:
                self.delete(job_id)
            except JobNotFoundError:
                continue
        return len(rows)

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None


class _Transaction:
    """``with`` block running ``BEGIN IMMEDIATE`` … ``COMMIT`` (or ``ROLLBACK`` on error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> sqlite3.Connection:
        self.db.execute("BEGIN IMMEDIATE")
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self.db.execute("ROLLBACK" if exc_type else "COMMIT")
