"""One inference scheduler shared by every streaming session of a process.

Sessions with work wait in one round-robin queue; each turn runs a single recognition step of one session on a
small thread pool, then the session goes to the back of the queue if it still has work. A client that sends
audio as fast as it can therefore gets one step per round like everyone else, and its larger backlog only makes
its steps bigger (fewer decodes per second of audio) instead of taking turns from others.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from auricle import metrics
from auricle.streaming.session import StreamSession

__all__ = ["InferenceScheduler"]

logger = logging.getLogger(__name__)

Deliver = Callable[[StreamSession, list[dict[str, Any]] | BaseException], Awaitable[None]]


class InferenceScheduler:
    """Fair round-robin over sessions, ``workers`` recognition steps at a time.

    Args:
        workers: concurrent steps (threads); match the model's CTranslate2 workers.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(1, workers)
        self._executor: ThreadPoolExecutor | None = None
        self._queue: deque[StreamSession] = deque()
        self._queued: set[str] = set()
        self._running: set[str] = set()
        self._deliver: dict[str, Deliver] = {}
        self._wakeup: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def register(self, session: StreamSession, deliver: Deliver) -> None:
        """Start scheduling ``session``; ``deliver`` receives each step's messages (or the error it raised)."""
        self._deliver[session.id] = deliver
        self._ensure_started()

    def unregister(self, session: StreamSession) -> None:
        """Stop scheduling ``session`` (a step already running finishes but is not delivered)."""
        self._deliver.pop(session.id, None)
        self._queued.discard(session.id)
        if session in self._queue:
            self._queue.remove(session)

    def notify(self, session: StreamSession) -> None:
        """Tell the scheduler ``session`` may have work (new audio or the end of the stream)."""
        known = session.id in self._deliver
        if known and session.id not in self._queued and session.id not in self._running and session.ready():
            self._queue.append(session)
            self._queued.add(session.id)
            metrics.STREAM_SCHEDULER_BACKLOG.set(len(self._queue))
            assert self._wakeup is not None
            self._wakeup.set()

    @property
    def backlog(self) -> int:
        """Sessions waiting for a turn."""
        return len(self._queue)

    def _ensure_started(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="auricle-stream")
        if self._wakeup is None:
            self._wakeup = asyncio.Event()
        self._tasks = [t for t in self._tasks if not t.done()]
        while len(self._tasks) < self.workers:
            self._tasks.append(asyncio.get_running_loop().create_task(self._worker(), name="auricle-stream-worker"))

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        # Kept here: shutdown() drops them from the scheduler before this task sees its cancellation.
        wakeup, executor = self._wakeup, self._executor
        assert wakeup is not None and executor is not None
        while True:
            while not self._queue:
                wakeup.clear()
                await wakeup.wait()
            session = self._queue.popleft()
            self._queued.discard(session.id)
            metrics.STREAM_SCHEDULER_BACKLOG.set(len(self._queue))
            self._running.add(session.id)
            outcome: list[dict[str, Any]] | BaseException
            try:
                outcome = await loop.run_in_executor(executor, session.run_step)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # delivered to the session, which reports and closes
                logger.exception("stream %s: recognition step failed", session.id)
                outcome = exc
            finally:
                self._running.discard(session.id)
            deliver = self._deliver.get(session.id)
            if deliver is None:
                continue
            try:
                await deliver(session, outcome)
            except Exception:
                logger.exception("stream %s: delivering results failed", session.id)
            if not isinstance(outcome, BaseException):
                self.notify(session)

    @property
    def running(self) -> bool:
        """Whether workers and the thread pool are up (from the first :meth:`register` until :meth:`shutdown`)."""
        return self._executor is not None

    def shutdown(self) -> None:
        """Stop the workers and the thread pool and forget every session; a step already running finishes.

        A later :meth:`register` starts afresh (an app's lifespan may run more than once, as in tests).
        """
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self._deliver.clear()
        self._queue.clear()
        self._queued.clear()
        self._wakeup = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
