"""Deterministic stand-ins for the engine, so routes, the job service and workers run in-process in milliseconds.

:class:`FakeTranscriber` implements :class:`auricle.engine.protocols.Transcriber` (as httpx's ``MockTransport``
stands in for a network): it yields one segment per ``segment_s`` of audio with scripted text, records the options
it was called with, and can be held at a gate to keep a job "in flight". :func:`fake_runtime` wires it, with a VAD
that finds speech everywhere and a registry that never assembles or downloads model files, into a real
:class:`~auricle.engine.runtime.Runtime`, so everything above the engine is the production code.
"""

from __future__ import annotations

import io
import math
import os
import threading
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from auricle.config import Settings
from auricle.engine.protocols import LanguageGuess, Transcriber, VadModel
from auricle.engine.runtime import Runtime
from auricle.engine.types import SAMPLE_RATE, Segment, SpeechSpan, TranscribeOptions, Word
from auricle.errors import ModelUnavailableError, UnsupportedLanguageError
from auricle.models.manager import ModelManager
from auricle.models.registry import ModelRegistry

__all__ = ["FakeTranscriber", "FakeVad", "OfflineRegistry", "Script", "fake_runtime", "wav_bytes"]

SCRIPT_WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel")


@dataclass
class Script:
    """What every :class:`FakeTranscriber` of one runtime says and does.

    Attributes:
        language: the language :meth:`FakeTranscriber.detect_language` reports.
        probability: its probability.
        segment_s: seconds of audio per yielded segment.
        gate: when set, transcription waits for it (to hold a job in flight); ``started`` is set just before.
        load_gate: when set, loading a model waits for it (to hold the server in "loading the default model").
        calls: the options of every transcription, in order (to assert what reached the engine).
    """

    language: str = "en"
    probability: float = 0.97
    segment_s: float = 1.0
    gate: threading.Event | None = None
    load_gate: threading.Event | None = None
    started: threading.Event = field(default_factory=threading.Event)
    calls: list[TranscribeOptions] = field(default_factory=list)
    detections: int = 0


class FakeTranscriber:
    """A scripted :class:`~auricle.engine.protocols.Transcriber`: segment ``i`` reads ``"<word i> <word i+1>."``."""

    def __init__(self, name: str, script: Script) -> None:
        if script.load_gate is not None and not script.load_gate.wait(30):
            raise TimeoutError("the test never opened the fake model's load gate")
        self.name = name
        self.script = script
        self.multilingual = not name.endswith(".en")

    def detect_language(self, samples: np.ndarray) -> LanguageGuess:
        self.script.detections += 1
        if not self.multilingual:
            return LanguageGuess("en", 1.0)
        return LanguageGuess(self.script.language, self.script.probability)

    def transcribe(
        self,
        samples: np.ndarray,
        options: TranscribeOptions,
        spans: list[SpeechSpan] | None,
        on_language: Callable[[LanguageGuess], None] | None = None,
    ) -> Iterator[Segment]:
        # The same refusals as the real transcriber, so error paths of the API are exercised.
        if not self.multilingual and (options.task == "translate" or (options.language or "en") != "en"):
            raise UnsupportedLanguageError(f"model '{self.name}' is English-only", param="language")
        self.script.calls.append(options)
        guess = LanguageGuess(options.language, 1.0) if options.language else self.detect_language(samples)
        if on_language is not None:
            on_language(guess)
        self.script.started.set()
        if self.script.gate is not None and not self.script.gate.wait(30):
            raise TimeoutError("the test never opened the fake transcriber's gate")
        duration = len(samples) / SAMPLE_RATE
        for index in range(max(1, math.ceil(duration / self.script.segment_s - 1e-9))):
            start = round(index * self.script.segment_s, 3)
            end = round(min(duration, start + self.script.segment_s), 3)
            first, second = SCRIPT_WORDS[index % len(SCRIPT_WORDS)], SCRIPT_WORDS[(index + 1) % len(SCRIPT_WORDS)]
            middle = round((start + end) / 2, 3)
            words = (
                [Word(start, middle, f" {first}", 0.9), Word(middle, end, f" {second}.", 0.9)]
                if options.word_timestamps
                else []
            )
            yield Segment(id=index, start=start, end=end, text=f"{first} {second}.", words=words)


class FakeVad:
    """A :class:`~auricle.engine.protocols.VadModel` that hears speech from the first sample to the last."""

    def speech_spans(self, samples: np.ndarray) -> list[SpeechSpan]:
        return [SpeechSpan(0.0, round(len(samples) / SAMPLE_RATE, 3))] if len(samples) else []


class OfflineRegistry(ModelRegistry):
    """The real registry (names, aliases, errors), except that resolving never assembles or downloads files."""

    def resolve(self, name: str | None) -> Path:
        info = self.info(self.canonical(name))  # raises UnknownModelError like the real one
        if not info.installed:
            raise ModelUnavailableError(f"model '{info.id}' is not available offline")
        return Path(os.devnull)


def fake_runtime(settings: Settings, script: Script | None = None) -> Runtime:
    """A real :class:`Runtime` whose models are :class:`FakeTranscriber` s sharing ``script`` (and a fake VAD)."""
    script = script or Script()
    runtime = Runtime(settings)
    runtime.registry = OfflineRegistry(settings)
    # Runtime types its parts as the faster-whisper and Silero classes, not the engine protocols they implement.
    models: ModelManager[Any] = ModelManager(runtime.registry, lambda name, _path: FakeTranscriber(name, script))
    runtime.models = models
    runtime.vad = FakeVad()  # type: ignore[assignment]
    return runtime


def wav_bytes(seconds: float = 2.0, *, rate: int = SAMPLE_RATE, channels: int = 1) -> bytes:
    """A WAV file of a quiet 220 Hz tone (any audio does: the fake engine does not listen)."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.1 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    frames = np.repeat(tone[:, None], channels, axis=1).tobytes()
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(frames)
    return buffer.getvalue()


def _conforms(script: Script) -> tuple[Transcriber, VadModel]:
    """Never called: mypy checks here that the fakes implement the engine's protocols."""
    return FakeTranscriber("base", script), FakeVad()
