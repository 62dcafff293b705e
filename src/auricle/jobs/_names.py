"""Names of jobs, workers and spool files (private helpers of :mod:`auricle.jobs`)."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from pathlib import Path

__all__ = ["new_job_id", "remove_file", "spool_name", "worker_id"]


def new_job_id() -> str:
    """A fresh job id: 32 hex characters."""
    return uuid.uuid4().hex


def worker_id(name: str) -> str:
    """``host:pid:name-random``: the host and pid let a restarted server find jobs of its dead predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{name}-{uuid.uuid4().hex[:6]}"


def spool_name(job_id: str, filename: str | None) -> str:
    """The spool file name of a job's audio (``job-<id><suffix>``); the orphan sweep relies on this shape."""
    suffix = Path(filename or "").suffix[:12]
    if not suffix.replace(".", "").isalnum():
        suffix = ""
    return f"job-{job_id}{suffix}"


def remove_file(path: str | None) -> None:
    """Delete a file if present."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()
