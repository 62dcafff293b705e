"""The webhook delivery rules: the life of a job's webhook event (private to :mod:`auricle.jobs.base`).

A job that ends with a ``webhook_url`` gets a pending event (its ``webhook`` field, a plain dict). Delivering it
is a small state machine of its own::

    pending ──claim (attempt counted, leased to one deliverer)──► 2xx ──► delivered
       ▲                                                          │
       └──────── due again after a backoff ◄── other outcome ─────┴──► failed (after the last attempt, or final)

These functions decide on the event dict alone and return a new one (or None: no change);
:mod:`auricle.jobs.base` wraps them into job changes.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["claimed", "due", "new_event", "outcome", "public"]

_PUBLIC_KEYS = ("id", "type", "state", "attempts", "last_status", "last_error", "next_at", "delivered_at")


def new_event(status: str, url: str, now: float) -> dict[str, Any]:
    """A new pending event for a job that just ended ``status``: due now, with an id every attempt carries."""
    return {
        "id": f"msg_{uuid.uuid4().hex}",
        "type": f"job.{status}",
        "url": url,
        "created_at": now,
        "state": "pending",
        "attempts": 0,
        "next_at": now,
        "lease_until": None,
        "worker": None,
        "last_status": None,
        "last_error": None,
        "delivered_at": None,
    }


def public(hook: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the API shows of an event (no lease or deliverer)."""
    if not hook:
        return None
    return {key: hook.get(key) for key in _PUBLIC_KEYS}


def due(hook: dict[str, Any] | None) -> float | None:
    """When the event should next be tried (None: nothing pending)."""
    if not hook or hook.get("state") != "pending":
        return None
    return max(float(hook.get("next_at") or 0.0), float(hook.get("lease_until") or 0.0))


def claimed(hook: dict[str, Any] | None, worker: str, now: float, lease_s: float) -> dict[str, Any] | None:
    """The event with its next attempt counted and leased to ``worker`` for ``lease_s`` seconds; None when nothing
    is due or another deliverer holds an unexpired lease (a deliverer that died mid-attempt loses its lease)."""
    when = due(hook)
    if hook is None or when is None or when > now:
        return None
    return {**hook, "attempts": int(hook.get("attempts") or 0) + 1, "worker": worker, "lease_until": now + lease_s}


def outcome(
    hook: dict[str, Any] | None,
    worker: str,
    attempt: int,
    now: float,
    *,
    status: int | None,
    error: str | None,
    max_attempts: int,
    backoff_s: float,
    final: bool,
) -> dict[str, Any] | None:
    """The event after attempt ``attempt`` of ``worker``: a 2xx ends it delivered; otherwise it is due again
    after ``backoff_s * 2**(attempt-1)`` (at most an hour), or ends failed after ``max_attempts`` (or at once when
    ``final``). None unless ``worker`` holds that attempt of a pending event."""
    if hook is None or hook.get("worker") != worker or hook.get("attempts") != attempt:
        return None
    if hook.get("state") != "pending":
        return None
    done = {**hook, "worker": None, "lease_until": None, "last_status": status, "last_error": error}
    if status is not None and 200 <= status < 300:
        done.update(state="delivered", delivered_at=now, last_error=None)
    elif final or attempt >= max_attempts:
        done.update(state="failed")
    else:
        done.update(next_at=now + min(3600.0, backoff_s * 2 ** (attempt - 1)))
    return done
