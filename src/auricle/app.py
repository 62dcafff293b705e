"""``create_app(settings)``: the routes and middleware of one server process, and the lifespan that builds and
closes what they use (engine runtime, job queue and service, streaming hub, background tasks).

Routes reach these parts only through the typed dependencies of :mod:`auricle.api.deps`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from auricle import metrics
from auricle.api.auth import ApiKeyBackend
from auricle.api.drain import Drainer
from auricle.api.errors import install_error_handlers
from auricle.api.middleware import AccessLogMiddleware, AuthMiddleware, RequestIdMiddleware, UploadLimitMiddleware
from auricle.api.ratelimit import RateLimiter, RateLimitMiddleware
from auricle.api.routes import asr, health, jobs, models, openai
from auricle.config import Settings
from auricle.engine.runtime import Runtime
from auricle.engine.transcribe import resolve_device
from auricle.jobs.service import build_job_service
from auricle.streaming import endpoint as streaming
from auricle.streaming import realtime_endpoint
from auricle.streaming.hub import StreamingHub

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "web" / "static"

DESCRIPTION = """Self-hosted speech-to-text. Drop-in for whisper-asr-webservice (`POST /asr`) and OpenAI's
audio API (`/v1/audio/*`), with durable jobs (`/v1/jobs`) and WebSocket streaming (`/transcribe`)."""

_EVICT_INTERVAL_S = 30.0


async def _warm(runtime: Runtime, settings: Settings, ready: asyncio.Event) -> None:
    """Load the default and preloaded models in the background; ``ready`` is set when done (or failed)."""
    try:
        for name in dict.fromkeys([settings.default_model, *settings.preload_models]):
            # One model that fails to load (listed in /health's failed_models) does not keep the others out.
            try:
                await asyncio.to_thread(runtime.models.get, name)
            except Exception:
                logger.exception("loading model %s failed", name)
    finally:
        ready.set()


async def _evict_idle_models(runtime: Runtime, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        await asyncio.to_thread(runtime.models.evict_idle)


def create_app(settings: Settings | None = None, *, runtime: Runtime | None = None) -> FastAPI:
    """Build the FastAPI application. Models load on first use, or at start for ``preload_models``.

    Args:
        settings: the configuration (read from the environment when None).
        runtime: the engine to use; built from ``settings`` at start when None. Tests pass one whose model
            manager loads a fake transcriber.
    """
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        engine = runtime or Runtime(settings)
        # Every sync request is a job: one queue governs concurrency, limits, metrics and scale-out.
        service, queue = build_job_service(settings, engine)
        # The streaming hub (its scheduler threads) is built here and closed below.
        hub = StreamingHub(settings, engine)
        model_ready = asyncio.Event()
        app.state.runtime = engine
        app.state.service = service
        app.state.jobs = queue
        app.state.streaming = hub
        app.state.model_ready = model_ready
        app.state.drainer = Drainer(service, hub, settings.shutdown_grace_s)
        metrics.set_service_info(*resolve_device(settings.device, settings.compute_type))

        tasks: list[asyncio.Task[None]] = []
        # Only workers use models: an API node without local workers (every request is a job) loads none.
        if settings.local_workers:
            tasks.append(asyncio.create_task(_warm(engine, settings, model_ready)))
        else:
            model_ready.set()
        if settings.model_idle_ttl_s > 0:
            interval = min(_EVICT_INTERVAL_S, settings.model_idle_ttl_s)
            tasks.append(asyncio.create_task(_evict_idle_models(engine, interval)))
        await service.start()
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            hub.close()
            await service.close()  # stops local workers and closes the queue
            # The runtime holds no threads or connections of its own: loaded models go with it.

    app = FastAPI(
        title="Auricle",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.settings = settings

    install_error_handlers(app)
    # add_middleware puts each new one outside the previous: innermost first.
    app.add_middleware(UploadLimitMiddleware, max_upload_mb=settings.max_upload_mb)
    app.add_middleware(RateLimitMiddleware, limiter=RateLimiter(settings))
    app.add_middleware(AuthMiddleware, backend=ApiKeyBackend(settings))
    app.add_middleware(AccessLogMiddleware)
    app.add_middleware(RequestIdMiddleware)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=["X-Request-ID", "Content-Disposition"],
        )
    for module in (health, asr, openai, models, jobs):
        app.include_router(module.router)
    app.include_router(streaming.router)
    app.include_router(realtime_endpoint.router)
    if STATIC_DIR.is_dir() and (STATIC_DIR / "index.html").is_file():
        app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="web")
    return app
