"""The `auricle` command as a user runs it: transcribe several files, models, config."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import CORPUS, ROOT, free_port, normalise, start_server

pytestmark = [pytest.mark.model, pytest.mark.slow]


def auricle(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "auricle", *args],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=cwd,
        env={**os.environ, "AURICLE_DATA_DIR": str(cwd or ROOT / ".pytest-data")},
    )


def test_transcribe_several_files_to_srt_files(tmp_path):
    files = [CORPUS / "audio" / "jfk.flac", CORPUS / "audio" / "librispeech_1995-1837-0001.wav"]
    result = auricle(
        "transcribe",
        *map(str, files),
        "-o",
        "srt",
        "--model",
        "tiny.en",
        "--output-dir",
        str(tmp_path / "out"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    jfk = (tmp_path / "out" / "jfk.srt").read_text()
    assert jfk.startswith("1\n00:00:00,000 --> ") and "country" in jfk
    assert "sorrow" in (tmp_path / "out" / "librispeech_1995-1837-0001.srt").read_text()
    # Piped (not a terminal): no progress bar characters on stderr.
    assert "%|" not in result.stderr and "\r" not in result.stderr


@pytest.mark.parametrize("fmt", ["json", "verbose_json", "vtt", "tsv", "text"])
def test_transcribe_prints_every_format(tmp_path, fmt):
    result = auricle(
        "transcribe",
        str(CORPUS / "audio" / "jfk.flac"),
        "-o",
        fmt,
        "--model",
        "tiny.en",
        "--word-timestamps",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    if fmt in ("json", "verbose_json"):
        body = json.loads(result.stdout)
        assert "country" in body["text"]
        assert body.get("words") or body["segments"][0]["words"]
    else:
        assert "country" in result.stdout


def test_translate_and_language_flags(tmp_path):
    german = str(CORPUS / "audio" / "librivox_simplicissimus_de.mp3")
    result = auricle("transcribe", german, "--task", "translate", "-o", "text", cwd=tmp_path)
    assert result.returncode == 0 and "the" in normalise(result.stdout).split()
    result = auricle("transcribe", german, "--language", "German", "-o", "json", cwd=tmp_path)
    assert json.loads(result.stdout)["language"] == "de"


def test_bad_file_fails_clearly_and_others_still_run(tmp_path):
    bad = tmp_path / "notes.m4a"
    bad.write_text("not audio")
    result = auricle("transcribe", str(bad), str(CORPUS / "audio" / "jfk.flac"), "--model", "tiny.en", cwd=tmp_path)
    assert result.returncode == 1
    assert "failed to decode audio" in result.stderr
    assert "country" in result.stdout


def test_models_and_config(tmp_path):
    result = auricle("models", cwd=tmp_path)
    assert result.returncode == 0
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "yes" in lines["tiny.en"] and "yes" in lines["base"] and lines["base"].rstrip().endswith("*")
    assert "no" in lines["large-v3"]
    listed = json.loads(auricle("models", "--json", cwd=tmp_path).stdout)
    assert {m["id"] for m in listed} >= {"tiny.en", "base", "large-v3"}
    unknown = auricle("transcribe", str(CORPUS / "audio" / "jfk.flac"), "--model", "huge", cwd=tmp_path)
    assert unknown.returncode != 0 and "Available models: tiny.en, base" in unknown.stderr


def test_stream_needs_a_file_or_a_microphone_and_says_what_is_missing(tmp_path):
    # Without a file or --mic: a usage message
    result = auricle("stream", cwd=tmp_path)
    assert result.returncode == 2 and "give a FILE or --mic" in result.stderr
    # With --mic on a machine without sounddevice/PortAudio or without an input device (this one): a clear error
    result = auricle("stream", "--mic", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "--mic needs the sounddevice package" in result.stderr or "cannot open the microphone" in result.stderr
    assert "Traceback" not in result.stderr


def test_stream_says_what_is_wrong_with_the_server_or_the_url(tmp_path):
    jfk = str(CORPUS / "audio" / "jfk.flac")
    # Nothing listening, or not a WebSocket URL: a one-line error, exit status 2
    nobody = auricle("stream", "--fast", "--url", f"ws://127.0.0.1:{free_port()}", jfk, cwd=tmp_path)
    assert nobody.returncode == 2 and "cannot connect to" in nobody.stderr and "auricle serve" in nobody.stderr
    assert "not a WebSocket URL" in auricle("stream", "--url", "ftp://example", jfk, cwd=tmp_path).stderr
    server = start_server(tmp_path / "server", {"AURICLE_API_KEYS": "k1", "AURICLE_DEFAULT_MODEL": "tiny.en"})
    try:
        host = server.url.removeprefix("http://")
        # A server that wants a key, and a URL with the wrong path
        keyless = auricle("stream", "--fast", "--url", f"ws://{host}/transcribe", jfk, cwd=tmp_path)
        assert keyless.returncode == 2 and "HTTP 401" in keyless.stderr and "--api-key" in keyless.stderr
        wrong_path = auricle("stream", "--fast", "--api-key", "k1", "--url", f"ws://{host}/asr", jfk, cwd=tmp_path)
        assert wrong_path.returncode == 2 and "its path is /transcribe" in wrong_path.stderr
        # The server's http:// address with no path, as users type it: streams to /transcribe
        ok = auricle("stream", "--fast", "--api-key", "k1", "--url", server.url, jfk, cwd=tmp_path)
        assert ok.returncode == 0, ok.stderr
        assert "ask what you can do for your country" in normalise(ok.stdout)
    finally:
        server.stop()
    for result in (nobody, keyless, wrong_path):
        assert "Traceback" not in result.stderr
