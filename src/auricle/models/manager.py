"""Loads models once, shares them between threads, and unloads idle ones after a TTL."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from auricle import metrics
from auricle.models.registry import ModelRegistry

__all__ = ["ModelManager"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class _Entry(Generic[T]):
    model: T
    users: int = 0
    last_used: float = 0.0
    load_seconds: float = 0.0


class ModelManager(Generic[T]):
    """Keeps loaded models by canonical name.

    Args:
        registry: resolves names to directories.
        loader: builds a model object from (name, directory); engine code provides it so that this module stays
            independent of any inference library.
        idle_ttl_s: unload a model nobody used for this long (0 = keep forever).
    """

    def __init__(self, registry: ModelRegistry, loader: Callable[[str, Path], T], idle_ttl_s: float = 0.0) -> None:
        self.registry = registry
        self._loader = loader
        self._idle_ttl_s = idle_ttl_s
        self._entries: dict[str, _Entry[T]] = {}
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}
        self._failed: dict[str, str] = {}

    def get(self, name: str | None) -> T:
        """Return the loaded model, loading it on first use (concurrent callers wait for one load)."""
        canonical = self.registry.canonical(name)
        with self._lock:
            entry = self._entries.get(canonical)
            if entry is not None:
                entry.last_used = time.monotonic()
                return entry.model
            load_lock = self._loading.setdefault(canonical, threading.Lock())
        with load_lock:
            with self._lock:
                entry = self._entries.get(canonical)
                if entry is not None:
                    return entry.model
            started = time.perf_counter()
            try:
                path = self.registry.resolve(canonical)
                model = self._loader(canonical, path)
            except Exception as exc:
                with self._lock:
                    self._failed[canonical] = _describe(exc)
                raise
            elapsed = time.perf_counter() - started
            logger.info("loaded model %s from %s in %.2fs", canonical, path, elapsed)
            with self._lock:
                self._entries[canonical] = _Entry(model, last_used=time.monotonic(), load_seconds=elapsed)
                self._failed.pop(canonical, None)
            return model

    @contextmanager
    def use(self, name: str | None) -> Iterator[T]:
        """Borrow a model; it is not unloaded while borrowed."""
        model = self.get(name)
        canonical = self.registry.canonical(name)
        with self._lock:
            entry = self._entries.get(canonical)
            if entry:
                entry.users += 1
        try:
            yield model
        finally:
            with self._lock:
                entry = self._entries.get(canonical)
                if entry:
                    entry.users -= 1
                    entry.last_used = time.monotonic()

    def loaded(self) -> dict[str, float]:
        """Loaded model names with their load time in seconds."""
        with self._lock:
            return {name: e.load_seconds for name, e in self._entries.items()}

    def failed(self) -> dict[str, str]:
        """Models whose last load failed (and none since succeeded), with the error."""
        with self._lock:
            return dict(self._failed)

    def is_loaded(self, name: str | None) -> bool:
        """Whether the model is in memory."""
        with self._lock:
            return self.registry.canonical(name) in self._entries

    def evict_idle(self) -> list[str]:
        """Unload models idle for longer than the TTL; returns their names."""
        if self._idle_ttl_s <= 0:
            return []
        now = time.monotonic()
        with self._lock:
            idle = [n for n, e in self._entries.items() if e.users == 0 and now - e.last_used > self._idle_ttl_s]
            for name in idle:
                del self._entries[name]
        for name in idle:
            metrics.MODEL_EVICTIONS.labels(name).inc()
            logger.info("unloaded idle model %s", name)
        return idle


def _describe(exc: BaseException) -> str:
    """A short, one-line account of a load failure for ``/health`` (no traceback, no server paths)."""
    text = " ".join(str(exc).split())
    text = re.sub(r"(?:/[^/\s'\"]+){2,}", "<path>", text)
    return f"{type(exc).__name__}: {text}"[:300]
