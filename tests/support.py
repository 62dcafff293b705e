"""Shared test helpers: the corpus, WER, a real server subprocess, and the fixtures conftest.py exposes."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("AURICLE_CORPUS", ROOT.parent / "shared" / "corpus"))

SPEAKR_DIARIZE = {
    "output": "json",
    "diarize": "true",
    "enable_diarization": "true",
    "min_speakers": "1",
    "max_speakers": "4",
    "model": "tiny.en",
}
"""The diarization parameters Speakr sends to ``/asr`` (both spellings of the flag, speaker bounds)."""


def corpus_entries() -> list[dict]:
    """The corpus manifest, with absolute audio paths."""
    entries = []
    for line in (CORPUS / "manifest.jsonl").read_text().splitlines():
        if line.strip():
            entry = json.loads(line)
            entry["path"] = CORPUS / entry["audio"]
            entries.append(entry)
    return entries


def english_with_reference() -> list[dict]:
    """English single-speaker recordings with a gold transcript."""
    return [e for e in corpus_entries() if e["language"] == "en" and e["reference"] and e["speakers"] == 1]


def normalise(text: str) -> str:
    """Lower case, punctuation removed, whitespace folded (the WER normalisation used everywhere)."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    text = text.replace("'", "")
    return " ".join(text.split())


def wer(references: list[str], hypotheses: list[str]) -> float:
    """Corpus-level word error rate on normalised text."""
    import jiwer

    return float(jiwer.wer([normalise(r) for r in references], [normalise(h) or "<empty>" for h in hypotheses]))


@pytest.fixture(scope="session")
def corpus() -> list[dict]:
    if not (CORPUS / "manifest.jsonl").is_file():
        pytest.fail(f"corpus not found at {CORPUS} (set AURICLE_CORPUS)")
    return corpus_entries()


@pytest.fixture(scope="session")
def runtime(tmp_path_factory: pytest.TempPathFactory):
    """One runtime with real models for the whole test session."""
    from auricle.config import Settings
    from auricle.engine.runtime import Runtime

    settings = Settings(data_dir=tmp_path_factory.mktemp("data"))
    return Runtime(settings, workers=2)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A real `auricle serve` process."""

    url: str
    process: subprocess.Popen
    data_dir: Path
    log: Path

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/transcribe"

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=kwargs.pop("timeout", 120), **kwargs)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(data_dir: Path, env: dict[str, str] | None = None, *, wait_ready: bool = True) -> Server:
    """Start `python -m auricle serve` on a free port and wait for /ready (or /health)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"server-{port}.log"
    full_env = {**os.environ, "AURICLE_DATA_DIR": str(data_dir), "AURICLE_PORT": str(port), **(env or {})}
    process = subprocess.Popen(
        [sys.executable, "-m", "auricle", "serve", "--host", "127.0.0.1"],
        env=full_env,
        stdout=open(log, "wb"),  # noqa: SIM115 - the file lives as long as the process
        stderr=subprocess.STDOUT,
    )
    server = Server(f"http://127.0.0.1:{port}", process, data_dir, log)
    deadline = time.monotonic() + 90
    path = "/ready" if wait_ready else "/health"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + path, timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"server did not become ready:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A real server with the bundled default model, shared by a test module."""
    srv = start_server(tmp_path_factory.mktemp("server"), {"AURICLE_PRELOAD_MODELS": "tiny.en"})
    yield srv
    srv.stop()
