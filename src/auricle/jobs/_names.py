"""Names of jobs, workers and spool files (private helpers of :mod:`auricle.jobs`)."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from pathlib import Path

__all__ = ["new_job_id", "process_gone", "remove_file", "spool_name", "worker_id"]


def new_job_id() -> str:
    """A fresh job id: 32 hex characters."""
    return uuid.uuid4().hex


def worker_id(name: str) -> str:
    """``host:pid:name-random``: the host and pid let a restarted server find jobs of its dead predecessor."""
    return f"{socket.gethostname()}:{os.getpid()}:{name}-{uuid.uuid4().hex[:6]}"


def process_gone(owner: str | None) -> bool:
    """Whether the process a :func:`worker_id` names is known to be gone: it ran on this host and its pid is dead,
    or is our own (a container restarted with the same pid: call this before this process makes ids of its own)."""
    host, _, rest = (owner or "").partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


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
