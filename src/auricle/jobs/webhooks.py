"""Webhooks as the Standard Webhooks specification defines them: signed events told when a job ends.

When a job with a ``webhook_url`` ends, :mod:`auricle.jobs.base` stores a pending event on the job (its
``webhook`` field: id, type, attempts, next try). The store indexes when each pending event is due, so the event
survives a restart with the job. :class:`WebhookDeliverer` (a thread next to the workers, on every node) takes due
events one attempt at a time through :meth:`~auricle.jobs.base.JobQueue.claim_webhook` — an atomic change that
counts the attempt and leases it to one deliverer, so two nodes never make the same attempt — POSTs the event and
stores the outcome: delivered on a 2xx, else due again after an exponential backoff, until the attempt limit.
A deliverer that dies mid-attempt loses its lease and the event is tried again: delivery is at least once, and
every attempt carries the same ``webhook-id`` so receivers can drop duplicates.

Signature: ``webhook-signature: v1,<base64 HMAC-SHA256 of "{webhook-id}.{webhook-timestamp}.{body}">`` keyed with
the bytes of the base64 secret after ``whsec_``; one ``v1,…`` entry per configured secret (space-separated), so
receivers keep verifying while the secret is rotated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

from auricle import metrics
from auricle.config import Settings
from auricle.errors import UrlError
from auricle.jobs._names import worker_id
from auricle.jobs.base import Job, JobQueue
from auricle.jobs.urls import check_url

__all__ = ["WebhookDeliverer", "event_body", "parse_secrets", "sign"]

logger = logging.getLogger(__name__)

_PREFIX = "whsec_"


def parse_secrets(text: str) -> list[bytes]:
    """The keys of space-separated ``whsec_<base64>`` secrets (the prefix is optional).

    Raises:
        ValueError: a secret is not valid base64.
    """
    return [base64.b64decode(item.removeprefix(_PREFIX), validate=True) for item in text.split()]


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: one ``v1,<signature>`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode() for key in keys)


def event_body(job: Job, *, public_url: str | None) -> bytes:
    """The JSON event of the job's pending webhook (the same bytes on every attempt)."""
    hook = job.webhook or {}
    result_url = f"/v1/jobs/{job.id}/result" if job.status == "succeeded" else None
    if result_url and public_url:
        result_url = public_url.rstrip("/") + result_url
    public = job.to_public()
    event: dict[str, Any] = {
        "object": "event",
        "id": hook.get("id"),
        "type": hook.get("type"),
        "created_at": int(hook.get("created_at") or job.finished_at or 0),
        "data": {
            "id": job.id,
            "status": job.status,
            "model": public["model"],
            "audio_seconds": public["audio_seconds"],
            "result_url": result_url,
            "error": job.error,
        },
    }
    return json.dumps(event, separators=(",", ":")).encode()


class WebhookDeliverer:
    """Delivers due webhook events of ``queue`` from a background thread (start/stop), or on demand
    (:meth:`deliver_due`).

    Args:
        queue: the job store holding the events.
        settings: secret, timeout, attempt limit, backoff, poll interval and the address guard.
        name: part of this deliverer's id (shown in logs).
    """

    def __init__(self, queue: JobQueue, settings: Settings, *, name: str = "hooks") -> None:
        self.queue = queue
        self.settings = settings
        self.me = worker_id(name)
        secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
        self.keys = parse_secrets(secret)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.parallel = 8
        self._client = httpx.Client(timeout=settings.webhook_timeout_s, follow_redirects=False)

    @property
    def lease_s(self) -> float:
        """How long one attempt is leased: its timeout plus a margin."""
        return self.settings.webhook_timeout_s + 30.0

    def start(self) -> None:
        """Start the delivery thread."""
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="webhook-deliverer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (an attempt in flight finishes or times out; an unfinished one is tried again later)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.wait(self.settings.webhook_poll_s):
            try:
                self.deliver_due()
            except Exception:
                logger.exception("webhook delivery round failed")

    def deliver_due(self) -> int:
        """Make one attempt of up to ``parallel`` events due now that no other deliverer holds, at once (so one slow
        receiver does not hold up the others). Returns the attempts made."""
        claimed: list[Job] = []
        # No more claimed than run at once: a claimed attempt waiting its turn could outlive its lease.
        for job_id in self.queue.webhooks_due(time.time(), limit=self.parallel):
            if self._stop.is_set():
                break
            job = self.queue.claim_webhook(job_id, self.me, self.lease_s)
            if job is not None:
                claimed.append(job)
        if len(claimed) == 1:
            self.attempt(claimed[0])
        elif claimed:
            with ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="webhook") as pool:
                list(pool.map(self.attempt, claimed))
        return len(claimed)

    def attempt(self, job: Job) -> None:
        """POST the claimed event of ``job`` once and store the outcome."""
        hook = job.webhook or {}
        attempt = int(hook.get("attempts") or 0)
        url = str(hook.get("url") or job.webhook_url or "")
        status: int | None = None
        error: str | None = None
        final = False
        started = time.perf_counter()
        try:
            check_url(url, allow_private=self.settings.url_allow_private, param="webhook_url")
            body = event_body(job, public_url=self.settings.public_url)
            timestamp = int(time.time())
            headers = {
                "content-type": "application/json",
                "user-agent": "auricle-webhooks",
                "webhook-id": str(hook.get("id")),
                "webhook-timestamp": str(timestamp),
            }
            if self.keys:
                headers["webhook-signature"] = sign(self.keys, str(hook.get("id")), timestamp, body)
            answer = self._client.post(url, content=body, headers=headers)
            status = answer.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except UrlError as exc:
            error, final = exc.message, True
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.webhook_timeout_s:g}s"
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            error = f"{type(exc).__name__}: {exc}"
        metrics.WEBHOOK_SECONDS.observe(time.perf_counter() - started)
        stored = self.queue.finish_webhook(
            job.id,
            self.me,
            attempt,
            status=status,
            error=error,
            max_attempts=self.settings.webhook_max_attempts,
            backoff_s=self.settings.webhook_backoff_s,
            final=final,
        )
        state = (stored.webhook or {}).get("state") if stored is not None else None
        outcome = {"delivered": "delivered", "failed": "refused" if final else "failed"}.get(str(state), "retry")
        metrics.WEBHOOK_DELIVERIES.labels(outcome).inc()
        log = logger.info if outcome == "delivered" else logger.warning
        log("job %s: webhook %s attempt %s %s (%s)", job.id, hook.get("id"), attempt, outcome, error or status)
