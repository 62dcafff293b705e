"""In-process apps on the fake engine: the real routes, middleware, job service, SQLite queue and worker threads,
with :class:`fakes.FakeTranscriber` instead of a model, driven through Starlette's ``TestClient``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from auricle.app import create_app
from auricle.config import Settings

from fakes import Script, fake_runtime

MakeClient = Callable[..., Any]


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {"default_model": "base", "workers": 2, "max_queue": 8}
    return Settings(**{**values, **overrides})


@contextmanager
def running_app(settings: Settings, script: Script | None = None) -> Iterator[TestClient]:
    """A started app (lifespan run) on the fake engine."""
    with TestClient(create_app(settings, runtime=fake_runtime(settings, script))) as client:
        yield client


@pytest.fixture(scope="module")
def script() -> Script:
    """The fake engine's script shared by one module's app."""
    return Script()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory, script: Script) -> Iterator[TestClient]:
    """One started app per test module."""
    with running_app(make_settings(data_dir=tmp_path_factory.mktemp("api")), script) as test_client:
        yield test_client


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[MakeClient]:
    """Start an app with settings overrides (and an optional script); all are stopped after the test."""
    stack: list[Any] = []

    def make(script: Script | None = None, **overrides: Any) -> TestClient:
        overrides.setdefault("data_dir", tmp_path / f"app{len(stack)}")
        manager = running_app(make_settings(**overrides), script)
        client = manager.__enter__()
        stack.append(manager)
        return client

    yield make
    for manager in reversed(stack):
        manager.__exit__(None, None, None)
