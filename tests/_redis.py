"""Real processes for the job tests: API servers, ``auricle worker`` processes and a throw-away ``redis-server``,
started by the test on a free port in a temporary directory (never the machine's Redis on 6379).
``appendonly=True`` turns on the AOF so that :meth:`RedisServer.restart` keeps the data.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import free_port

__all__ = [
    "HTTPFailure",
    "JobsServer",
    "Process",
    "RedisServer",
    "WorkerProcess",
    "cancel_while_running",
    "free_port",
    "long_clip",
    "wait_all",
]

TESTS = Path(__file__).resolve().parent


class RedisServer:
    """One redis-server process in ``directory``."""

    def __init__(self, directory: Path, *, appendonly: bool = False) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not installed")
        self.directory = directory
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        """The server's URL."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start and wait until it answers PING."""
        args = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes" if self.appendonly else "no",
            "--appendfsync",
            "always",
            "--protected-mode",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(64).startswith(b"+PONG"):
                        return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        """Shut down (SIGTERM: the AOF is flushed)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None

    def restart(self, *, down_s: float = 0.5) -> None:
        """Stop, stay down for ``down_s`` seconds, start again on the same port and directory."""
        self.stop()
        time.sleep(down_s)
        self.start()


# -- job servers and workers as real processes -------------------------------------------------------------------


class Process:
    """A child process with its log file; ``kill()`` is ``kill -9``."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen(
            args,
            env={**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **env},
            stdout=open(log, "ab"),  # noqa: SIM115 - lives as long as the process
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL, no clean-up."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 20 s."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


class JobsServer(Process):
    """``uvicorn`` running :func:`make_jobs_app` on a free port; waits for ``/health``."""

    def __init__(self, data_dir: Path, env: dict[str, str], *, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        data_dir.mkdir(parents=True, exist_ok=True)
        full_env = {"AURICLE_DATA_DIR": str(data_dir), "AURICLE_DEFAULT_MODEL": "tiny.en", **env}
        args = [sys.executable, "-m", "uvicorn", "--factory", "auricle.app:create_app", "--port", str(self.port)]
        super().__init__(args, full_env, data_dir / f"server-{self.port}.log")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{self.tail()}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start:\n{self.tail()}")

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60)


class WorkerProcess(Process):
    """An ``auricle worker`` process (:func:`auricle.jobs.worker.run_worker`)."""

    def __init__(self, data_dir: Path, env: dict[str, str], name: str = "worker", metrics_port: int = 0) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        """Its Prometheus metrics (served when ``metrics_port`` is given)."""
        code = (
            "import logging; logging.basicConfig(level=logging.INFO);"
            "from auricle.config import Settings; from auricle.jobs.worker import run_worker; run_worker(Settings())"
        )
        full_env = {"AURICLE_DATA_DIR": str(data_dir), "AURICLE_DEFAULT_MODEL": "tiny.en", **env}
        full_env["AURICLE_WORKER_METRICS_PORT"] = str(metrics_port)
        super().__init__([sys.executable, "-c", code], full_env, data_dir / f"{name}.log")


# -- corpus clips and waiting -----------------------------------------------------------------------------------

AUDIO = TESTS.parent.parent / "shared" / "corpus" / "audio"
CLIPS: dict[str, set[str]] = {
    "jfk.flac": {"americans", "country"},
    "librispeech_1995-1837-0001.wav": {"sorrow", "cotton"},
    "stereo_two_speakers.wav": {"curtain", "left"},
    "ami_ES2011a_headset0_40-46s.wav": {"call", "me"},
}
"""Four short distinct clips and words their ``tiny.en`` transcript must contain."""


def submit_clips(client: httpx.Client, count: int, *, clips: list[str] | None = None) -> dict[str, str]:
    """Submit ``count`` jobs in one request, cycling through ``clips``; returns job id -> clip name."""
    names = clips or list(CLIPS)
    files = [
        ("file", (f"{i:03d}-{names[i % len(names)]}", (AUDIO / names[i % len(names)]).read_bytes(), "audio/wav"))
        for i in range(count)
    ]
    response = client.post("/v1/jobs", files=files, timeout=120)
    assert response.status_code == 202, response.text
    return {job["id"]: job["filename"][4:] for job in response.json()["jobs"]}


class HTTPFailure(AssertionError):
    """Raised when the server answers a helper's request with an error status."""


def wait_all(client: httpx.Client, ids: list[str], timeout: float = 180) -> dict[str, dict[str, Any]]:
    """Poll the listing until every job finished; returns id -> job.

    Only a server that cannot be reached (restarting) is waited for; an error answer raises :class:`HTTPFailure`
    with its status and body at once.
    """
    deadline = time.monotonic() + timeout
    wanted = set(ids)
    seen: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        try:
            response = client.get("/v1/jobs", params={"limit": 500})
        except httpx.TransportError:
            time.sleep(0.5)
            continue
        if response.status_code != 200:
            raise HTTPFailure(f"GET /v1/jobs answered {response.status_code}: {response.text[:2000]}")
        listing = response.json()["jobs"]
        seen.update({job["id"]: job for job in listing if job["id"] in wanted})
        if len(seen) == len(wanted) and all(j["status"] in ("succeeded", "failed", "cancelled") for j in seen.values()):
            return seen
        time.sleep(0.5)
    missing = [i for i in ids if seen.get(i, {}).get("status") not in ("succeeded", "failed", "cancelled")]
    raise AssertionError(f"{len(missing)} of {len(ids)} jobs did not finish")


def assert_results_match(client: httpx.Client, clip_of: dict[str, str]) -> None:
    """Every job succeeded and its transcript has its own clip's words (no mix-ups)."""
    for job_id, clip in clip_of.items():
        response = client.get(f"/v1/jobs/{job_id}/result", params={"format": "text"})
        if response.status_code != 200:
            raise HTTPFailure(f"result of job {job_id} answered {response.status_code}: {response.text[:2000]}")
        text = response.text.lower()
        words = set(text.replace(".", " ").replace(",", " ").split())
        assert CLIPS[clip] <= words, f"job {job_id} ({clip}) got: {text!r}"


def long_clip(directory: Path, *, seconds: int = 85) -> Path:
    """A WAV of ``seconds`` of real speech (the 30 s AMI excerpt over and over).

    The default stays under the transcriber's ``batched_min_s`` (90 s), so it is decoded sequentially and segments
    come out one by one while it runs: a cancel reaches it between two segments, seconds before its end. (A batched
    file decodes its pieces in parallel and yields their segments in one burst at the end of each piece.)
    """
    target = directory / f"ami_{seconds}s.wav"
    if not target.exists():
        directory.mkdir(parents=True, exist_ok=True)
        riff = (AUDIO / "ami_excerpt_dev00.wav").read_bytes()
        # A RIFF file is chunks of (id, little-endian size, payload); keep the header chunks and repeat "data".
        pos, header, data = 12, b"", b""
        while pos + 8 <= len(riff):
            size = struct.unpack_from("<I", riff, pos + 4)[0]
            chunk = riff[pos : pos + 8 + size + size % 2]
            if riff[pos : pos + 4] == b"data":
                data = riff[pos + 8 : pos + 8 + size]
            else:
                header += chunk
            pos += 8 + size + size % 2
        byte_rate, block = struct.unpack_from("<IH", header, 16)  # the fmt chunk: after id, size and 4 fields
        data = (data * (1 + seconds * byte_rate // len(data)))[: seconds * byte_rate // block * block]
        body = header + b"data" + struct.pack("<I", len(data)) + data
        target.write_bytes(b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body)
    return target


def cancel_while_running(client: httpx.Client, job_id: str, timeout: float = 120) -> tuple[dict[str, Any], str]:
    """Wait until the job has decoded speech (it is transcribing with progress above 0, so it provably runs), cancel
    it then, and wait for its end. Returns the cancel answer and the job's final status."""

    def job() -> dict[str, Any]:
        response = client.get(f"/v1/jobs/{job_id}")
        if response.status_code != 200:
            raise HTTPFailure(f"GET /v1/jobs/{job_id} answered {response.status_code}: {response.text[:2000]}")
        data: dict[str, Any] = response.json()
        return data

    deadline = time.monotonic() + timeout
    current = job()
    while not (current["status"] == "running" and current["stage"] == "transcribing" and current["progress"] > 0):
        if current["status"] in ("succeeded", "failed", "cancelled") or time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} never ran long enough to be cancelled: {current}")
        time.sleep(0.02)
        current = job()
    response = client.post(f"/v1/jobs/{job_id}/cancel")
    if response.status_code != 200:
        raise HTTPFailure(f"cancel of job {job_id} answered {response.status_code}: {response.text[:2000]}")
    while current["status"] not in ("succeeded", "failed", "cancelled"):
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} did not stop after its cancel: {current}")
        time.sleep(0.1)
        current = job()
    return response.json(), str(current["status"])
