"""``create_app(settings)``: builds the runtime, services and routes of one server process."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.staticfiles import StaticFiles

from auricle.api.auth import AuthGuard
from auricle.api.errors import install_error_handlers
from auricle.api.middleware import RequestMiddleware
from auricle.api.routes import asr, health, jobs, models, openai
from auricle.config import Settings
from auricle.jobs.service import build_job_service
from auricle.runtime import Runtime
from auricle.streaming import endpoint as streaming
from auricle.streaming import realtime_endpoint

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "web" / "static"

DESCRIPTION = """Self-hosted speech-to-text. Drop-in for whisper-asr-webservice (`POST /asr`) and OpenAI's
audio API (`/v1/audio/*`), with durable jobs (`/v1/jobs`) and WebSocket streaming (`/transcribe`)."""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the FastAPI application. Models load on first use, or at start for ``preload_models``."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.spool_dir.mkdir(parents=True, exist_ok=True)
        runtime = app.state.runtime
        app.state.model_ready = asyncio.Event()

        async def warm() -> None:
            try:
                names = list(dict.fromkeys([settings.default_model, *settings.preload_models]))
                for name in names:
                    await asyncio.to_thread(runtime.models.get, name)
            except Exception:
                logger.exception("loading the default model failed")
            finally:
                app.state.model_ready.set()

        # An API node of a Redis deployment without local workers needs no model at all.
        needs_model = settings.local_workers or not settings.redis_url
        warm_task = asyncio.create_task(warm()) if needs_model else None
        if not needs_model:
            app.state.model_ready.set()

        async def evict_idle_models() -> None:
            while True:
                await asyncio.sleep(min(30.0, settings.model_idle_ttl_s))
                await asyncio.to_thread(runtime.models.evict_idle)

        evict_task = asyncio.create_task(evict_idle_models()) if settings.model_idle_ttl_s > 0 else None
        await app.state.service.start()
        try:
            yield
        finally:
            for task in (warm_task, evict_task):
                if task:
                    task.cancel()
            await app.state.service.close()

    app = FastAPI(
        title="Auricle",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
    )
    app.state.settings = settings
    app.state.runtime = Runtime(settings)
    app.state.auth = AuthGuard(settings)
    # Every sync request is a job: one queue governs concurrency, limits, metrics and scale-out.
    app.state.service, app.state.jobs = build_job_service(settings, app.state.runtime)

    install_error_handlers(app)
    app.add_middleware(RequestMiddleware)
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
