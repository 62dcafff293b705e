"""API keys: Bearer tokens compared in constant time, with a lock-out after repeated failures from one address."""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque

from auricle.config import Settings

__all__ = ["AuthGuard"]

PUBLIC_PATHS = frozenset({"/health", "/ready"})


class AuthGuard:
    """Checks ``Authorization: Bearer <key>`` against the configured keys.

    Used by the HTTP middleware and, before the upgrade, by the WebSocket endpoint.
    """

    def __init__(self, settings: Settings) -> None:
        self._keys = [k.get_secret_value().encode() for k in settings.api_keys]
        self._limit = settings.auth_fail_limit
        self._window = settings.auth_fail_window_s
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether any key is configured."""
        return bool(self._keys)

    def key_matches(self, authorization: str | None) -> bool:
        """True when no keys are configured or the header carries one of them."""
        if not self._keys:
            return True
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return False
        candidate = token.strip().encode()
        # Compare against every key so timing does not reveal which one matched.
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(candidate, key)
        return matched

    def locked_out(self, address: str) -> bool:
        """True while ``address`` has failed too often within the window."""
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
            if len(self._failures) > 10_000:  # bounded memory under address-spraying
                self._failures.pop(next(iter(self._failures)))
