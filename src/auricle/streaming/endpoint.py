"""WebSocket `/transcribe`: built in the streaming issue."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["streaming"])
