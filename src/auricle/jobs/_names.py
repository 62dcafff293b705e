"""Names of jobs, workers and spool files (private helpers of :mod:`auricle.jobs`)."""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Callable
from pathlib import Path

__all__ = ["new_job_id", "process_gone", "remove_file", "spool_name", "sweep_spool", "worker_id"]


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


def sweep_spool(spool_dir: Path, known: Callable[[str], bool], *, min_age_s: float, now: float) -> int:
    """Delete the files of ``spool_dir`` no job refers to: ``job-<id>*`` files whose id is not ``known``, and any
    other file older than ``min_age_s``. Returns how many files were removed."""
    removed = 0
    if not spool_dir.is_dir():
        return 0
    for path in spool_dir.iterdir():
        if not path.is_file():
            continue
        with contextlib.suppress(FileNotFoundError):
            age = now - path.stat().st_mtime
            # A job's file goes with its job (the upload is moved in just before the job is stored: 5 s of grace).
            orphan = age > 5.0 and not known(path.name[4:36]) if path.name.startswith("job-") else age > min_age_s
            if orphan:
                path.unlink()
                removed += 1
    return removed


def remove_file(path: str | None) -> None:
    """Delete a file if present."""
    if path:
        with contextlib.suppress(FileNotFoundError):
            Path(path).unlink()
