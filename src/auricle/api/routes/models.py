"""OpenAI-compatible model listing: ``GET /v1/models`` and ``GET /v1/models/{id}``."""

from __future__ import annotations

from fastapi import APIRouter

from auricle.api.deps import RegistryDep
from auricle.models.registry import ModelInfo

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["openai"])


def _card(info: ModelInfo, model_id: str | None = None) -> dict[str, object]:
    return {
        "id": model_id or info.id,
        "object": "model",
        "created": 0,
        "owned_by": "auricle",
        "installed": info.installed,
        "source": info.source,
        "multilingual": info.multilingual,
        "languages": info.languages,
        "size_bytes": info.size_bytes,
        "default": info.default,
    }


@router.get("/models", summary="List the models this server can use")
async def list_models(registry: RegistryDep) -> dict[str, object]:
    """Models usable now (bundled, local, cached) or by download when allowed; `whisper-1` is the default."""
    usable = [m for m in registry.list() if m.installed or registry.settings.allow_download]
    cards = [_card(m) for m in usable]
    cards.append(_card(registry.info(registry.default), "whisper-1"))
    return {"object": "list", "data": cards}


@router.get("/models/{model_id:path}", summary="Describe one model")
async def get_model(model_id: str, registry: RegistryDep) -> dict[str, object]:
    """404 in OpenAI's error shape, listing the available models, when unknown."""
    return _card(registry.info(model_id), model_id)
