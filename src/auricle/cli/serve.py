"""``auricle serve`` (the HTTP server) and ``auricle worker`` (a job worker of the Redis backend).

Both drain on SIGTERM (or a first Ctrl-C) instead of stopping at once; see :mod:`auricle.api.drain`. A second
signal skips the rest of the grace time.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Any

from auricle.config import Settings

if TYPE_CHECKING:
    import uvicorn

__all__ = ["cmd_serve", "cmd_worker", "is_loopback", "register", "unauthenticated_refusal"]

logger = logging.getLogger(__name__)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP server (embedded jobs, bundled model)."""
    import uvicorn

    from auricle.app import create_app

    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    refusal = unauthenticated_refusal(settings)
    if refusal:
        # One plain line on stderr, whatever the log format, since this is read by a person starting the server.
        sys.stderr.write(f"auricle serve: {refusal}\n")
        return 2
    app = create_app(settings)
    logger.info("serving on http://%s:%s (default model %s)", settings.host, settings.port, settings.default_model)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # X-Forwarded-For is believed only from configured proxies (uvicorn would trust loopback by default, so a
        # local client could pick any address for the limits and the lock-out).
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=",".join(settings.trusted_proxies) or None,
        # The drain has already let work finish: what is left when uvicorn stops is idle connections.
        timeout_graceful_shutdown=5,
        # A little above the frame limit, so an oversized frame gets INVALID_MESSAGE rather than a bare close.
        ws_max_size=settings.streaming.max_frame_bytes + 1024 * 1024,
    )
    server = _draining_server(config, app)
    server.run()
    return 0


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or name to bind) only accepts connections from this machine."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A host name other than localhost may resolve to any interface: treat it as exposed.
        return False


def unauthenticated_refusal(settings: Settings) -> str | None:
    """The one-line reason ``auricle serve`` refuses to start, or None: listening beyond this machine with no API
    keys must be asked for explicitly (as OpenASR's ``WSS_REQUIRE_AUTH``)."""
    if settings.api_keys or settings.allow_unauthenticated or is_loopback(settings.host):
        return None
    return (
        f"refusing to serve on {settings.host} without API keys: set AURICLE_API_KEYS=key1,key2, "
        "or AURICLE_ALLOW_UNAUTHENTICATED=true to serve it open, or AURICLE_HOST=127.0.0.1"
    )


def _draining_server(config: uvicorn.Config, app: Any) -> uvicorn.Server:
    """A uvicorn server that drains (``app.state.drainer``) on the first SIGTERM/SIGINT before it stops
    listening, and exits 0 (plain uvicorn re-raises the signal after shutting down)."""
    import uvicorn

    class DrainingServer(uvicorn.Server):
        signals = 0
        loop: asyncio.AbstractEventLoop | None = None
        tasks: set[asyncio.Task[None]] = set()

        async def startup(self, sockets: Any = None) -> None:
            self.loop = asyncio.get_running_loop()
            await super().startup(sockets)

        def handle_exit(self, sig: int, frame: FrameType | None) -> None:
            self.signals += 1
            drainer = getattr(app.state, "drainer", None)
            if self.signals == 1 and drainer is not None and self.loop is not None:
                logger.info("received %s: draining before stopping", signal.Signals(sig).name)
                # A signal handler may interrupt the loop anywhere: hand over through the thread-safe door.
                self.loop.call_soon_threadsafe(self._start_drain, drainer)
                return
            if self.signals > 2:
                self.force_exit = True
            self.should_exit = True

        def _start_drain(self, drainer: Any) -> None:
            task = asyncio.get_running_loop().create_task(self._drain(drainer))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        async def _drain(self, drainer: Any) -> None:
            try:
                await drainer.drain()
            except Exception:
                logger.exception("draining failed")
            self.should_exit = True

    return DrainingServer(config)


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run a job worker (Redis backend)."""
    from auricle.jobs.worker import run_worker

    run_worker(settings)
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``serve`` and ``worker`` to the ``auricle`` parser."""
    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a job worker for the Redis backend")
    worker.set_defaults(func=cmd_worker)
