"""``auricle serve`` (the HTTP server) and ``auricle worker`` (a job worker of the Redis backend)."""

from __future__ import annotations

import argparse
import logging

from auricle.config import Settings

__all__ = ["cmd_serve", "cmd_worker", "register"]

logger = logging.getLogger(__name__)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP server (embedded jobs, bundled model)."""
    import uvicorn

    from auricle.app import create_app

    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    app = create_app(settings)
    logger.info("serving on http://%s:%s (default model %s)", settings.host, settings.port, settings.default_model)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
        # A little above the frame limit, so an oversized frame gets INVALID_MESSAGE rather than a bare close.
        ws_max_size=settings.streaming.max_frame_bytes + 1024 * 1024,
    )
    return 0


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
