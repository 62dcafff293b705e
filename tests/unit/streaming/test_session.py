"""A session's audio buffer and the backpressure it reports, with a fake decoder and VAD (no model)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np

from auricle.config import StreamingSettings
from auricle.engine.types import SAMPLE_RATE, Word
from auricle.streaming.handlers import Connection
from auricle.streaming.protocol import ConfigPayload
from auricle.streaming.session import StreamSession

FRAME_S = 0.2


class NoWords:
    def decode(self, samples: np.ndarray, prompt: str, final: bool) -> list[Word]:
        return []


class NoSpeech:
    def speech_samples(self, samples: np.ndarray) -> list[tuple[int, int]]:
        return []


def frame() -> bytes:
    return np.zeros(round(FRAME_S * SAMPLE_RATE), dtype="<i2").tobytes()


def connection(buffer_s: float) -> tuple[Connection, StreamSession]:
    session = StreamSession(ConfigPayload(), "fake", StreamingSettings(buffer_s=buffer_s), NoWords(), NoSpeech())
    hub = SimpleNamespace(settings=SimpleNamespace(streaming=StreamingSettings()))
    conn = Connection(websocket=None, hub=hub)  # type: ignore[arg-type]
    conn.session = session
    return conn, session


def sent_actions(conn: Connection) -> list[str]:
    actions: list[Any] = []
    while not conn.outbox.empty():
        message = conn.outbox.get_nowait()
        assert message is not None
        actions.append(message["payload"]["action"])
    return actions


def test_backpressure_slows_down_over_80_percent_and_reading_stops_only_when_full() -> None:
    # Given a session with a 2 s buffer that the recogniser has not worked on yet
    conn, session = connection(buffer_s=2.0)
    reads: list[tuple[float, str, bool]] = []
    # When the client sends 2 s of audio in 0.2 s frames
    for _ in range(10):
        session.feed(frame())
        conn.check_backpressure()
        reads.append((round(session.fill, 2), ",".join(sent_actions(conn)), conn.space.is_set()))
    # Then slow_down comes with the frame that passes 80%, and frames stop being read once the buffer is full
    assert [r for r in reads if r[1]] == [(0.9, "slow_down", True)]
    assert [r[2] for r in reads] == [True] * 9 + [False]


def test_ok_comes_under_50_percent_and_reading_resumes_once_a_step_made_room() -> None:
    # Given a full buffer (told to slow down, not read from)
    conn, session = connection(buffer_s=2.0)
    for _ in range(10):
        session.feed(frame())
    conn.check_backpressure()
    assert sent_actions(conn) == ["slow_down"] and not conn.space.is_set()
    # When a recognition step takes the audio (silence: the recogniser keeps only a little of it)
    session.run_step()
    conn.check_backpressure()
    # Then the client hears ok and reading resumes
    assert session.fill < 0.5
    assert sent_actions(conn) == ["ok"] and conn.space.is_set()
