"""What all streaming connections of one app share (:class:`StreamingHub`), built and closed by the app's lifespan."""

from __future__ import annotations

import asyncio
import logging

from auricle.config import Settings
from auricle.engine.runtime import Runtime
from auricle.streaming.scheduler import InferenceScheduler

__all__ = ["StreamingHub"]

logger = logging.getLogger(__name__)


class StreamingHub:
    """Settings, engine runtime, the inference scheduler and the count of open sessions.

    ``create_app`` builds one and keeps it as ``app.state.streaming``; its lifespan calls :meth:`close` at
    shutdown, which stops the scheduler's workers and thread pool.

    Args:
        settings: the app's settings (``settings.streaming`` holds the limits).
        runtime: the app's engine runtime (models, streaming decoders and VAD).
    """

    def __init__(self, settings: Settings, runtime: Runtime) -> None:
        self.settings = settings
        self.runtime = runtime
        self.scheduler = InferenceScheduler(settings.workers)
        self.active = 0
        """Open sessions (for ``session_limit``)."""
        self.draining = asyncio.Event()
        """Set when the server stops: open sessions get their final results and a 1001 close, new ones 1013."""

    def drain(self) -> None:
        """Wind down every open session (final phrase and checkpoint, then close 1001) and refuse new ones."""
        if self.active:
            logger.info("draining %d streaming session(s)", self.active)
        self.draining.set()

    def close(self) -> None:
        """Stop the scheduler: its workers are cancelled and its threads shut down (a running step finishes)."""
        if self.active:
            logger.info("closing the streaming hub with %d open session(s)", self.active)
        self.scheduler.shutdown()
