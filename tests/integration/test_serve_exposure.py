"""`auricle serve` refuses to listen beyond this machine with no API keys unless told so, as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from support import free_port


def _serve(tmp_path: Path, host: str, **env: str) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("AURICLE_")}
    environ |= {"AURICLE_DATA_DIR": str(tmp_path), "AURICLE_DEFAULT_MODEL": "tiny.en", **env}
    command = [sys.executable, "-m", "auricle", "serve", "--host", host, "--port", str(free_port())]
    return subprocess.Popen(command, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "example.org"])
def test_serve_on_an_exposed_address_without_keys_exits_2_with_one_line_that_says_how(
    tmp_path: Path, host: str
) -> None:
    process = _serve(tmp_path, host)
    try:
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert host in lines[0] and "AURICLE_API_KEYS" in lines[0] and "AURICLE_ALLOW_UNAUTHENTICATED=true" in lines[0]


@pytest.mark.slow
@pytest.mark.parametrize(
    "env", [{"AURICLE_ALLOW_UNAUTHENTICATED": "true"}, {"AURICLE_API_KEYS": "k1"}], ids=["explicit", "keys"]
)
def test_serve_on_an_exposed_address_starts_when_open_is_explicit_or_keys_are_set(
    tmp_path: Path, env: dict[str, str]
) -> None:
    process = _serve(tmp_path, "0.0.0.0", **env)
    port = int(process.args[-1])  # type: ignore[index]
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline
            time.sleep(0.2)
    finally:
        process.terminate()
        process.communicate(timeout=60)
