"""Typed dependencies: what routes may ask for, as ``Annotated[..., Depends(...)]`` aliases.

``create_app`` and its lifespan put the process's parts on ``app.state``; this module is the only code that reads
them back, checking each type once, so a route says what it needs in its signature::

    @router.get("/v1/jobs/{job_id}")
    async def get_job(job_id: str, queue: QueueDep) -> dict[str, Any]: ...

Each getter takes an :class:`~starlette.requests.HTTPConnection`, so the same aliases work in WebSocket routes.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, TypeVar

from fastapi import Depends
from starlette.requests import HTTPConnection

from auricle.api.auth import Caller
from auricle.config import Settings
from auricle.engine.runtime import Runtime
from auricle.errors import NotReadyError
from auricle.jobs.base import JobQueue
from auricle.jobs.service import JobTranscriptionService
from auricle.models.registry import ModelRegistry
from auricle.streaming.hub import StreamingHub

__all__ = [
    "AuthDep",
    "JobServiceDep",
    "ModelReadyDep",
    "QueueDep",
    "RegistryDep",
    "RuntimeDep",
    "SettingsDep",
    "StreamingHubDep",
    "get_caller",
    "get_job_service",
    "get_model_ready",
    "get_queue",
    "get_registry",
    "get_streaming_hub",
    "get_runtime",
    "get_settings",
]

T = TypeVar("T")


def _state(connection: HTTPConnection, name: str, kind: type[T]) -> T:
    value = getattr(connection.app.state, name, None)
    if not isinstance(value, kind):
        # Only before the lifespan has run (or after it ended): never in a running server.
        raise NotReadyError(f"the server is not started: app.state.{name} is not a {kind.__name__}")
    return value


def get_settings(connection: HTTPConnection) -> Settings:
    """The app's settings (``app.state.settings``)."""
    return _state(connection, "settings", Settings)


def get_runtime(connection: HTTPConnection) -> Runtime:
    """The engine of this process: model registry and manager, VAD, diarizer (``app.state.runtime``)."""
    return _state(connection, "runtime", Runtime)


def get_registry(connection: HTTPConnection) -> ModelRegistry:
    """The model registry: names, aliases, where models live."""
    return get_runtime(connection).registry


def get_job_service(connection: HTTPConnection) -> JobTranscriptionService:
    """Submit-and-wait for the sync routes, and job submission (``app.state.service``)."""
    return _state(connection, "service", JobTranscriptionService)


def get_queue(connection: HTTPConnection) -> JobQueue:
    """The job store behind ``/v1/jobs`` (``app.state.jobs``)."""
    queue = getattr(connection.app.state, "jobs", None)
    if not isinstance(queue, JobQueue):
        raise NotReadyError("the server is not started: app.state.jobs is not a JobQueue")
    return queue


def get_model_ready(connection: HTTPConnection) -> asyncio.Event:
    """Set once the lifespan's warm-up has loaded (or failed to load) the default model."""
    return _state(connection, "model_ready", asyncio.Event)


def get_streaming_hub(connection: HTTPConnection) -> StreamingHub:
    """What the streaming sessions share: scheduler and session count (``app.state.streaming``)."""
    return _state(connection, "streaming", StreamingHub)


def get_caller(connection: HTTPConnection) -> Caller:
    """Who is calling, as :class:`~auricle.api.middleware.AuthMiddleware` decided."""
    caller = connection.scope.get("auth")
    if not isinstance(caller, Caller):
        raise NotReadyError("no authentication ran for this request")
    return caller


SettingsDep = Annotated[Settings, Depends(get_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
JobServiceDep = Annotated[JobTranscriptionService, Depends(get_job_service)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
ModelReadyDep = Annotated[asyncio.Event, Depends(get_model_ready)]
AuthDep = Annotated[Caller, Depends(get_caller)]
StreamingHubDep = Annotated[StreamingHub, Depends(get_streaming_hub)]
