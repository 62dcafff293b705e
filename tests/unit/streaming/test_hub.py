"""The streaming hub: built once by ``create_app``, its scheduler threads stopped when the app shuts down."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from auricle.app import create_app
from auricle.config import Settings
from auricle.engine.runtime import Runtime
from auricle.streaming.hub import StreamingHub


class OneStepSession:
    """Just enough of a session for the scheduler: one step of work, which returns no messages."""

    id = "one-step"

    def __init__(self) -> None:
        self.stepped = False

    def ready(self) -> bool:
        return not self.stepped

    def run_step(self) -> list[dict[str, Any]]:
        self.stepped = True
        return []


def scheduler_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("auricle-stream")]


def settings_for(tmp_path: Path) -> Settings:
    # An unknown default model: the app's warm-up fails fast instead of loading a real one.
    return Settings(data_dir=tmp_path, default_model="no-such-model", model_idle_ttl_s=0)


def test_closing_the_hub_stops_its_scheduler_threads(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    hub = StreamingHub(settings, Runtime(settings))

    async def scenario() -> list[threading.Thread]:
        # Given a hub whose scheduler has run a step (so its thread pool has a thread)
        session, delivered = OneStepSession(), asyncio.Event()

        async def deliver(_session: Any, _outcome: Any) -> None:
            delivered.set()

        hub.scheduler.register(session, deliver)  # type: ignore[arg-type]
        hub.scheduler.notify(session)  # type: ignore[arg-type]
        await asyncio.wait_for(delivered.wait(), 10)
        threads = scheduler_threads()
        assert threads and hub.scheduler.running
        # When the hub is closed
        hub.close()
        return threads

    threads = asyncio.run(scenario())
    # Then the scheduler is stopped and its threads end
    assert not hub.scheduler.running
    for thread in threads:
        thread.join(5)
    assert not any(t.is_alive() for t in threads)


def test_the_app_builds_one_hub_and_closes_it_at_shutdown(tmp_path: Path, monkeypatch: Any) -> None:
    closed: list[StreamingHub] = []
    original = StreamingHub.close

    def close(self: StreamingHub) -> None:
        closed.append(self)
        original(self)

    monkeypatch.setattr(StreamingHub, "close", close)
    app = create_app(settings_for(tmp_path))
    # Given an app that has started: its lifespan built one hub
    with TestClient(app):
        hub = app.state.streaming
        assert isinstance(hub, StreamingHub) and not closed
    # When it shuts down, then its lifespan closed that hub once
    assert closed == [hub]
