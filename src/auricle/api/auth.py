"""API keys: one authentication backend for the ``http`` and ``websocket`` scopes.

:class:`ApiKeyBackend` decides who a connection is (the key check, in constant time) and keeps the failure count
per address (the lock-out). :class:`~auricle.api.middleware.AuthMiddleware` calls it for every HTTP request and
every WebSocket handshake, before the route runs, and stores the :class:`Caller` on the scope (``scope["auth"]``),
so no endpoint checks keys itself. Browsers cannot send headers on a WebSocket: they offer the key as the
subprotocol ``auricle.bearer.<key in unpadded base64url>`` instead (or, on the OpenAI Realtime endpoint,
``openai-insecure-api-key.<key>`` as OpenAI's browser examples do), which :func:`credentials` reads too.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from starlette.types import Scope

from auricle import metrics
from auricle.config import Settings

__all__ = [
    "API_PREFIXES",
    "BEARER_SUBPROTOCOL",
    "OPENAI_KEY_SUBPROTOCOL",
    "PUBLIC_PATHS",
    "ApiKeyBackend",
    "AuthFailure",
    "Caller",
    "credentials",
    "needs_key",
]

PUBLIC_PATHS = frozenset({"/health", "/ready"})
"""Paths anyone may call, even when keys are configured (probes of orchestrators)."""

BEARER_SUBPROTOCOL = "auricle.bearer."
"""Prefix of the WebSocket subprotocol that carries an API key (base64url, unpadded) from a browser."""
OPENAI_KEY_SUBPROTOCOL = "openai-insecure-api-key."
"""Prefix of the subprotocol OpenAI's Realtime browser clients carry their key in (the key follows as is)."""

API_PREFIXES = ("/v1/", "/asr", "/detect-language", "/metrics", "/transcribe")
"""Path prefixes of the APIs. The web UI's static files are public (it asks for the key itself); the APIs are not."""
_MAX_TRACKED_ADDRESSES = 10_000


@dataclass(frozen=True)
class Caller:
    """Who made a request: ``key`` is the 1-based index of the matching API key, None when keys are off."""

    address: str
    key: int | None = None

    @property
    def name(self) -> str:
        """A loggable name that does not reveal the key (``key-2``, or ``anonymous``)."""
        return f"key-{self.key}" if self.key is not None else "anonymous"


@dataclass(frozen=True)
class AuthFailure:
    """Why a connection was refused: the HTTP status (401 or 429), a stable code and a message for the client."""

    status: Literal[401, 429]
    code: str
    message: str
    headers: dict[str, str]


def needs_key(path: str, *, protect_metrics: bool) -> bool:
    """Whether ``path`` needs an API key when keys are configured."""
    if path in PUBLIC_PATHS:
        return False
    if path == "/metrics":
        return protect_metrics
    return path.startswith(API_PREFIXES) or path in ("/docs", "/openapi.json")


def credentials(headers: Iterable[tuple[bytes, bytes]], subprotocols: Iterable[str] = ()) -> str | None:
    """The presented key: from ``Authorization: Bearer <key>``, or from a key subprotocol (see the module notes).

    Keys in the query string are not accepted (they end up in access logs).
    """
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            if scheme.lower() != "bearer":
                return None
            return token.strip() or None
    for offered in subprotocols:
        if offered.startswith(OPENAI_KEY_SUBPROTOCOL):
            return offered[len(OPENAI_KEY_SUBPROTOCOL) :] or None
        if offered.startswith(BEARER_SUBPROTOCOL):
            encoded = offered[len(BEARER_SUBPROTOCOL) :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode() or None
            except (binascii.Error, ValueError):
                return None
    return None


class ApiKeyBackend:
    """Checks presented keys against ``settings.api_keys`` and locks out addresses that fail too often.

    Thread-safe: one instance serves the whole app.
    """

    def __init__(self, settings: Settings) -> None:
        self._keys = [k.get_secret_value().encode() for k in settings.api_keys]
        self._limit = settings.auth_fail_limit
        self._window = settings.auth_fail_window_s
        self._protect_metrics = settings.protect_metrics
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self._keys)

    def authenticate(self, scope: Scope) -> Caller | AuthFailure:
        """Decide about one ``http`` or ``websocket`` connection, counting a wrong key against its address.

        A correct key is always let in, even from an address that is locked out (many users may share it behind
        a NAT or proxy); only wrong keys are counted and refused with 429 during the lock-out. A request with no
        key at all (a first try, a CORS preflight) gets 401 and is not counted.
        """
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if not self.enabled or not needs_key(scope["path"], protect_metrics=self._protect_metrics):
            return Caller(address)
        presented = credentials(scope.get("headers") or [], scope.get("subprotocols") or [])
        key = self.match(presented)
        if key is not None:
            return Caller(address, key)
        if presented is not None and self.locked_out(address):
            metrics.AUTH_REJECTIONS.labels("locked_out").inc()
            return AuthFailure(
                429,
                "rate_limited",
                "too many failed authentication attempts; try again later",
                {"Retry-After": str(int(self._window))},
            )
        if presented is not None:
            self.record_failure(address)
        metrics.AUTH_REJECTIONS.labels("invalid_key" if presented is not None else "missing_key").inc()
        return AuthFailure(
            401,
            "invalid_api_key",
            "a valid API key is required: send 'Authorization: Bearer <key>'",
            {"WWW-Authenticate": "Bearer"},
        )

    def match(self, token: str | None) -> int | None:
        """The 1-based index of the key ``token`` equals, or None."""
        if not token:
            return None
        candidate = token.encode()
        found: int | None = None
        # Compare against every key so timing does not reveal which one matched.
        for index, key in enumerate(self._keys, start=1):
            if hmac.compare_digest(candidate, key):
                found = index
        return found

    def locked_out(self, address: str) -> bool:
        """True while ``address`` has failed ``auth_fail_limit`` times within the window."""
        now = time.monotonic()
        with self._lock:
            failures = self._failures.get(address)
            if not failures:
                return False
            while failures and now - failures[0] > self._window:
                failures.popleft()
            return len(failures) >= self._limit

    def record_failure(self, address: str) -> None:
        """Count one failed attempt from ``address``."""
        with self._lock:
            self._failures.setdefault(address, deque(maxlen=self._limit * 2)).append(time.monotonic())
            if len(self._failures) > _MAX_TRACKED_ADDRESSES:  # bounded memory under address-spraying
                self._failures.pop(next(iter(self._failures)))
