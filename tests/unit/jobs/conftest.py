"""The ``job_queue`` fixture: every contract test runs against memory, SQLite and a real Redis."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from auricle.jobs.base import JobQueue
from auricle.jobs.memory import MemoryJobQueue
from auricle.jobs.sqlite import SqliteJobQueue

from _redis import RedisServer  # tests/ is on sys.path through tests/conftest.py

QueueFactory = Callable[..., JobQueue]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(params=["memory", "sqlite", pytest.param("redis", marks=pytest.mark.redis)])
def make_queue(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[QueueFactory]:
    made: list[JobQueue] = []
    spool = tmp_path / "spool"

    def make(ttl_s: float = 3600.0, lease_s: float = 30.0) -> JobQueue:
        queue: JobQueue
        if request.param == "memory":
            queue = MemoryJobQueue(spool, ttl_s=ttl_s)
        elif request.param == "sqlite":
            queue = SqliteJobQueue(tmp_path / "jobs.sqlite3", spool, ttl_s=ttl_s)
        else:
            from auricle.jobs.redis import RedisJobQueue

            server: RedisServer = request.getfixturevalue("redis_server")
            if not made:
                import redis

                redis.Redis.from_url(server.url).flushall()
            queue = RedisJobQueue(server.url, spool, ttl_s=ttl_s, lease_s=lease_s)
        made.append(queue)
        return queue

    yield make
    for queue in made:
        queue.close()


@pytest.fixture
def job_queue(make_queue: QueueFactory) -> JobQueue:
    return make_queue()


@pytest.fixture
def audio(tmp_path: Path) -> Callable[[], Path]:
    """A factory of small upload files (content does not matter to the queue)."""
    counter = iter(range(10_000))

    def make() -> Path:
        path = tmp_path / "uploads" / f"upload-{next(counter)}.wav"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(b"RIFF0000WAVEfmt " + b"\0" * 64)
        return path

    return make
