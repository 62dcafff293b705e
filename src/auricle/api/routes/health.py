"""Operations: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from auricle import __version__, metrics
from auricle.api.deps import JobServiceDep, ModelReadyDep, RuntimeDep, SettingsDep, StreamingHubDep
from auricle.engine.transcribe import resolve_device
from auricle.streaming.hub import StreamingHub

__all__ = ["router"]

router = APIRouter(tags=["operations"])


def _sessions(hub: StreamingHub) -> dict[str, int]:
    """Streaming capacity, in the field names of OpenASR's health answer."""
    limit = hub.settings.streaming.session_limit
    return {"active_sessions": hub.active, "max_sessions": limit, "sessions_available": max(0, limit - hub.active)}


@router.get("/health", summary="Liveness: the process answers, with loaded models and device")
async def health(
    settings: SettingsDep, runtime: RuntimeDep, hub: StreamingHubDep, service: JobServiceDep
) -> dict[str, object]:
    """Always 200 while the process serves requests (never blocked by running transcriptions).

    ``loaded_models`` is the WhisperX ASR services' name for ``models_loaded``; both are kept for their clients.
    ``failed_models`` lists the models whose last load failed, with the error; ``queue_depth`` the jobs waiting
    (at most a second old).
    """
    device, compute_type = resolve_device(settings.device, settings.compute_type)
    loaded = sorted(runtime.models.loaded())
    failed = [{"model": name, "error": error} for name, error in sorted(runtime.models.failed().items())]
    queued, _ = service.saturation()
    return {
        "status": "ok",
        "version": __version__,
        "default_model": runtime.registry.default,
        "models_loaded": loaded,
        "loaded_models": loaded,
        "device": device,
        "compute_type": compute_type,
        "failed_models": failed,
        "queue_depth": queued,
        **_sessions(hub),
    }


@router.get(
    "/ready", summary="Readiness: 503 until the default model is loaded, while the queue is full, and when draining"
)
async def ready(
    settings: SettingsDep, runtime: RuntimeDep, service: JobServiceDep, model_ready: ModelReadyDep, hub: StreamingHubDep
) -> JSONResponse:
    """200 when new work would be accepted and served promptly; 503 with the reason ``draining`` from SIGTERM on.

    A node with local workers needs the default model in memory; an API node of a Redis deployment
    (``local_workers=false``) needs none, since every request, ``/detect-language`` included, runs as a job.
    """
    pending, capacity = service.saturation()
    reasons = ["draining"] if service.draining else []
    if not service.store_ok:
        reasons.append("job store unreachable")
    if settings.local_workers and not runtime.models.is_loaded(None):
        reasons.append("model not loaded" if model_ready.is_set() else "loading the default model")
    if pending >= capacity:
        reasons.append("queue is full")
    body = {"ready": not reasons, "pending": pending, "capacity": capacity, "reasons": reasons, **_sessions(hub)}
    return JSONResponse(body, status_code=503 if reasons else 200, headers={"Retry-After": "5"} if reasons else None)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def prometheus_metrics(runtime: RuntimeDep) -> Response:
    """Prometheus text exposition format."""
    loaded = runtime.models.loaded()
    metrics.MODELS_LOADED.set(len(loaded))
    for name, seconds in loaded.items():
        metrics.MODEL_LOAD_SECONDS.labels(name).set(seconds)
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
