"""The embedded default: jobs, results and events in one SQLite file (WAL), audio in the spool directory.

Every state change is one ``BEGIN IMMEDIATE`` transaction that reads the job, lets :mod:`auricle.jobs.base` decide
the change and writes it back, so two workers (threads or processes sharing the file) can never claim the same
job. ``seq`` is the creation order (listings), ``qseq`` the queue order (a retried job goes to the back). At
start, :meth:`recover` makes the jobs of this host's dead processes claimable at once instead of waiting for their
leases to run out.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from auricle.errors import JobNotFoundError, JobStateError
from auricle.jobs._names import process_gone
from auricle.jobs.base import STATES, Change, Job, JobQueue, decide_recover, not_found, webhook_due
from auricle.jobs.events import JobEvent, event_from_dict

__all__ = ["SqliteJobQueue"]

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


class SqliteJobQueue(JobQueue):
    """Jobs in ``path`` (created with its tables on first use).

    Args:
        path: the database file (``data_dir/jobs.sqlite3``).
        spool_dir: where job audio is kept.
        ttl_s: seconds a finished job is kept.
    """

    def __init__(self, path: Path, spool_dir: Path, *, ttl_s: float = 7 * 86400.0) -> None:
        super().__init__()
        self.path = path
        self.spool_dir = spool_dir
        self.ttl_s = ttl_s
        self._local = threading.local()
        self._cond = threading.Condition()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db().executescript(_SCHEMA)
        with self._tx() as db:
            if "qseq" not in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}:
                # A file of an earlier version: the queue order starts as the creation order.
                db.execute("ALTER TABLE jobs ADD COLUMN qseq INTEGER NOT NULL DEFAULT 0")
                db.execute("UPDATE jobs SET qseq = seq")
            db.execute("CREATE INDEX IF NOT EXISTS jobs_queue ON jobs (status, qseq)")
            if "hook_due" not in {row[1] for row in db.execute("PRAGMA table_info(jobs)")}:
                # When the job's webhook event is next due (NULL: none pending), so deliverers find it at once.
                db.execute("ALTER TABLE jobs ADD COLUMN hook_due REAL")
            db.execute("CREATE INDEX IF NOT EXISTS jobs_hook_due ON jobs (hook_due) WHERE hook_due IS NOT NULL")

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

    def _notify(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- storage primitives ----------------------------------------------------------------------------------------
    def _load(self, db: sqlite3.Connection, job_id: str) -> Job:
        row = db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise not_found(job_id)
        return Job.from_dict(json.loads(row[0]))

    def _store(self, db: sqlite3.Connection, change: Change, *, insert: bool = False) -> None:
        job = change.job
        values = (
            job.status,
            job.session,
            int(job.ephemeral),
            job.finished_at,
            job.lease_until,
            webhook_due(job),
            json.dumps(job.to_dict()),
        )
        if insert:
            db.execute(
                "INSERT INTO jobs (status, session, ephemeral, finished_at, lease_until, hook_due, data, id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, job.id),
            )
        else:
            db.execute(
                "UPDATE jobs SET status = ?, session = ?, ephemeral = ?, finished_at = ?, lease_until = ?,"
                " hook_due = ?, data = ? WHERE id = ?",
                (*values, job.id),
            )
        if change.requeue:
            db.execute("UPDATE jobs SET qseq = (SELECT COALESCE(MAX(qseq), 0) + 1 FROM jobs) WHERE id = ?", (job.id,))
        if change.result is not None:
            db.execute("INSERT OR REPLACE INTO results (id, data) VALUES (?, ?)", (job.id, json.dumps(change.result)))
        if change.drop_result:
            db.execute("DELETE FROM results WHERE id = ?", (job.id,))
        if change.reset_events:
            db.execute("DELETE FROM events WHERE job_id = ?", (job.id,))
        for event in change.events:
            db.execute("INSERT INTO events (job_id, data) VALUES (?, ?)", (job.id, json.dumps(event.to_dict())))

    def _insert(self, change: Change) -> None:
        with self._tx() as db:
            self._store(db, change, insert=True)
        self._notify()

    def _apply(self, job_id: str, decide: Callable[[Job], Change | None]) -> tuple[Job, bool]:
        with self._tx() as db:
            job = self._load(db, job_id)
            change = decide(job)
            if change is not None:
                self._store(db, change)
        if change is None:
            return job, False
        self._notify()
        return change.job, True

    def _claimable(self, now: float, *, limit: int) -> list[str]:
        rows = self._db().execute(
            "SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' AND lease_until < ?)"
            " ORDER BY status = 'queued', qseq LIMIT ?",
            (now, limit),
        )
        return [row[0] for row in rows]

    def _webhooks_due(self, now: float, *, limit: int) -> list[str]:
        rows = self._db().execute(
            "SELECT id FROM jobs WHERE hook_due IS NOT NULL AND hook_due <= ? ORDER BY hook_due LIMIT ?", (now, limit)
        )
        return [row[0] for row in rows]

    def _remove(self, job_id: str) -> Job:
        with self._tx() as db:
            job = self._load(db, job_id)
            db.execute("DELETE FROM jobs WHERE id = ?", (job_id,))
            db.execute("DELETE FROM results WHERE id = ?", (job_id,))
            db.execute("DELETE FROM events WHERE job_id = ?", (job_id,))
        self._notify()
        return job

    # -- reading ---------------------------------------------------------------------------------------------------
    def get(self, job_id: str) -> Job:
        """See :meth:`JobQueue.get`."""
        return self._load(self._db(), job_id)

    def list(
        self, *, status: str | None = None, session: str | None = None, limit: int = 50, offset: int = 0
    ) -> list[Job]:
        """See :meth:`JobQueue.list`."""
        sql, args = "SELECT data FROM jobs WHERE ephemeral = 0", list[Any]()
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
        data: dict[str, Any] = json.loads(row[0])
        return data

    def counts(self) -> dict[str, int]:
        """See :meth:`JobQueue.counts`."""
        counts: dict[str, int] = dict.fromkeys(STATES, 0)
        for status, n in self._db().execute("SELECT status, COUNT(*) FROM jobs GROUP BY status"):
            counts[status] = n
        return counts

    def exists(self, job_id: str) -> bool:
        """See :meth:`JobQueue.exists`."""
        return self._db().execute("SELECT 1 FROM jobs WHERE id = ?", (job_id,)).fetchone() is not None

    def read_events(
        self, job_id: str, cursor: str | None, timeout: float
    ) -> tuple[builtins.list[JobEvent], str | None]:
        """See :meth:`JobQueue.read_events`. Waits on in-process notifications, polling for other processes."""
        after = int(cursor or 0)
        deadline = time.monotonic() + timeout
        db = self._db()
        while True:
            if not self.exists(job_id):
                raise not_found(job_id)
            rows = db.execute(
                "SELECT seq, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq", (job_id, after)
            ).fetchall()
            remaining = deadline - time.monotonic()
            if rows or remaining <= 0:
                return [event_from_dict(json.loads(r[1])) for r in rows], str(rows[-1][0] if rows else after)
            with self._cond:
                self._cond.wait(min(remaining, 0.25))

    # -- worker side -----------------------------------------------------------------------------------------------
    def recover(self) -> int:
        """See :meth:`JobQueue.recover`: running jobs whose worker id names this host and a dead pid (or our own
        pid: a container restarted with the same pid) get their lease ended now."""
        stale: builtins.list[Job] = []
        for row in self._db().execute("SELECT data FROM jobs WHERE status = 'running'"):
            job = Job.from_dict(json.loads(row[0]))
            if process_gone(job.worker):
                stale.append(job)
        recovered = 0
        for job in stale:
            if self._apply_if_present(job.id, functools.partial(decide_recover, worker=job.worker or ""))[1]:
                recovered += 1
                logger.info("job %s was running in a process that died; its lease ended", job.id)
        return recovered

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

    def drop_orphaned_sync_jobs(self) -> int:
        """See :meth:`JobQueue.drop_orphaned_sync_jobs`: an embedded store belongs to one server process."""
        rows = self._db().execute("SELECT id FROM jobs WHERE ephemeral = 1").fetchall()
        for (job_id,) in rows:
            with contextlib.suppress(JobNotFoundError):
                self.delete(job_id)
        if rows:
            logger.info("dropped %d sync job(s) left by a previous run (no client waits for them)", len(rows))
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
