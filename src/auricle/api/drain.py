"""Graceful drain before a server process stops: :class:`Drainer`.

On SIGTERM ``auricle serve`` (``cli/serve.py``) runs :meth:`Drainer.drain` before it stops listening:

1. ``/ready`` answers 503 with the reason ``draining`` at once, so a load balancer takes the node out, while the
   process keeps serving; new transcription work (sync requests, ``POST /v1/jobs``) gets 503 with ``Retry-After``.
2. Open streaming sessions get their final phrase and checkpoint and are closed with 1001, so clients resume on
   another node; new sessions are refused with 1013.
3. Sync requests in flight and jobs running on local workers finish, for at most ``shutdown_grace_s``.
4. Then sync requests still waiting get a JSON 503 and running jobs are interrupted and handed back to the queue
   (queued again at once, never lost, never left ``running`` until their lease runs out).
"""

from __future__ import annotations

import asyncio
import logging
import time

from auricle.jobs.service import JobTranscriptionService
from auricle.streaming.hub import StreamingHub

__all__ = ["Drainer"]

logger = logging.getLogger(__name__)

_POLL_S = 0.1
_ANSWER_S = 3.0  # time for the requests given up on to send their 503 before the server stops


class Drainer:
    """Drains one app's job service and streaming hub (``app.state.drainer``, built by the lifespan).

    Args:
        service: the sync requests and local workers.
        hub: the streaming sessions.
        grace_s: how long running work may take to finish.
    """

    def __init__(self, service: JobTranscriptionService, hub: StreamingHub, grace_s: float) -> None:
        self.service = service
        self.hub = hub
        self.grace_s = grace_s
        self.started = False

    def _busy(self) -> bool:
        return bool(self.service.busy or self.hub.active)

    async def drain(self) -> None:
        """Stop taking work, let running work finish within the grace time, then hand back what is left."""
        if self.started:
            return
        self.started = True
        began = time.monotonic()
        logger.info(
            "draining: %d sync request(s) and running job(s), %d streaming session(s); grace %.0fs",
            self.service.busy,
            self.hub.active,
            self.grace_s,
        )
        self.service.begin_drain()
        self.hub.drain()
        deadline = began + self.grace_s
        while self._busy() and time.monotonic() < deadline:
            await asyncio.sleep(_POLL_S)
        left = self.service.busy
        await self.service.end_drain()
        answered = time.monotonic() + _ANSWER_S
        while self._busy() and time.monotonic() < answered:
            await asyncio.sleep(_POLL_S)
        logger.info(
            "drained in %.1fs (%d request(s)/job(s) were still running at the end of the grace time)",
            time.monotonic() - began,
            left,
        )
