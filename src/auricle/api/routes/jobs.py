"""Jobs API (`/v1/jobs`): built in the durable-jobs issue."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["jobs"])
