"""Request rate limits: a token bucket per API key and per client address (:class:`RateLimiter`), applied by
:class:`RateLimitMiddleware` to the APIs (HTTP requests and WebSocket handshakes; never ``/health``, ``/ready``
or the web UI's files). Off by default.

A caller with an API key draws from its key's bucket (``rate_limit_per_key``), so many users behind one address
each keep their own rate; a caller without a key (keys off) draws from its address's bucket
(``rate_limit_per_address``). The address is the peer's, or the ``X-Forwarded-For`` client when the peer is one of
``trusted_proxies`` (uvicorn rewrites it only then). Over the rate the answer is 429 with ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

from auricle import metrics
from auricle.api.auth import API_PREFIXES, Caller
from auricle.api.errors import error_response
from auricle.config import Settings

__all__ = ["RateLimitMiddleware", "RateLimiter", "TokenBucket"]

_MAX_BUCKETS = 10_000


class TokenBucket:
    """``rate`` tokens a second, at most ``burst`` saved up; each request takes one."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.at = now

    def take(self, now: float) -> float:
        """Take a token: 0.0 when there was one, else the seconds until there is."""
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """The buckets of one app (thread-safe; bounded: the least recently used are forgotten past 10,000)."""

    def __init__(self, settings: Settings) -> None:
        self.per_key = settings.rate_limit_per_key
        self.per_address = settings.rate_limit_per_address
        self.burst = float(settings.rate_limit_burst)
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether any limit is set."""
        return self.per_key > 0 or self.per_address > 0

    def check(self, caller: Caller) -> float:
        """Count one request of ``caller``: 0.0 if allowed, else the seconds to wait."""
        if caller.key is not None:
            name, rate = f"key:{caller.key}", self.per_key
        else:
            name, rate = f"address:{caller.address}", self.per_address
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(name)
            if bucket is None:
                bucket = self._buckets[name] = TokenBucket(rate, max(1.0, self.burst), now)
                if len(self._buckets) > _MAX_BUCKETS:
                    self._buckets.popitem(last=False)
            else:
                self._buckets.move_to_end(name)
            return bucket.take(now)


class RateLimitMiddleware:
    """429 with ``Retry-After`` for API requests and handshakes over their caller's rate (after authentication)."""

    def __init__(self, app: ASGIApp, limiter: RateLimiter) -> None:
        self.app = app
        self.limiter = limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        caller = scope.get("auth")
        if (
            scope["type"] not in ("http", "websocket")
            or not self.limiter.enabled
            or not isinstance(caller, Caller)
            or not scope["path"].startswith(API_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        wait = self.limiter.check(caller)
        if wait <= 0:
            await self.app(scope, receive, send)
            return
        metrics.ERRORS.labels("rate_limited").inc()
        message = "too many requests; slow down"
        headers = {"Retry-After": str(max(1, math.ceil(wait)))}
        if scope["type"] == "http":
            response = error_response(Request(scope), 429, message, code="rate_limited", headers=headers)
            await response(scope, receive, send)
            return
        websocket = WebSocket(scope, receive, send)
        if "websocket.http.response" in scope.get("extensions", {}):
            await websocket.send_denial_response(JSONResponse({"detail": message}, status_code=429, headers=headers))
        else:
            await websocket.close(code=1013, reason=message)
