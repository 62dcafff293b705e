"""The ``auricle`` command line: every command and flag of the documented CLI, and its exit codes."""

from __future__ import annotations

import argparse

import pytest

from auricle.cli import build_parser
from auricle.config import Settings

EXPECTED = {
    "auricle": ["--version"],
    "auricle serve": ["--host", "--port"],
    "auricle worker": [],
    "auricle models": ["--json"],
    "auricle transcribe": [
        "--diarize",
        "--hotwords",
        "--initial-prompt",
        "--language",
        "--max-speakers",
        "--min-speakers",
        "--model",
        "--no-vad",
        "--num-speakers",
        "--output",
        "--output-dir",
        "--task",
        "--threads",
        "--word-timestamps",
        "-o",
        "files",
    ],
    "auricle stream": ["--api-key", "--fast", "--mic", "--model", "--url", "file"],
    "auricle jobs": ["--api-key", "--url"],
    "auricle jobs submit": ["--diarize", "--language", "--model", "--url", "--webhook", "files"],
    "auricle jobs list": ["--status"],
    "auricle jobs watch": ["ids"],
    "auricle jobs result": ["--output", "--output-file", "-o", "id"],
    "auricle eval": ["--diarize", "--json", "--language", "--model", "manifest"],
    "auricle config": ["--markdown"],
}


def _commands(parser: argparse.ArgumentParser, prefix: str = "auricle") -> dict[str, list[str]]:
    found = {prefix: []}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.update(_commands(sub, f"{prefix} {name}"))
        elif not isinstance(action, argparse._HelpAction):
            found[prefix] += action.option_strings or [action.dest]
    return {command: sorted(flags) for command, flags in found.items()}


def test_every_command_and_flag_is_there() -> None:
    assert _commands(build_parser()) == EXPECTED


def run(*argv: str) -> int:
    # Not main(): it configures the root logger, which would take pytest's log capture away.
    args = build_parser().parse_args(argv)
    return int(args.func(args, Settings()))


def test_stream_without_a_file_or_microphone_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("stream") == 2
    assert "give a FILE or --mic" in capsys.readouterr().err


def test_config_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("config") == 0
    assert "AURICLE_DEFAULT_MODEL=base" in capsys.readouterr().out


def test_jobs_submit_without_files_or_urls_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("jobs", "submit") == 2
    assert "--url" in capsys.readouterr().err


def test_jobs_submit_url_is_an_audio_url_not_the_server() -> None:
    args = build_parser().parse_args(
        ["jobs", "--url", "http://srv:9000", "submit", "--url", "https://e.org/a.mp3", "--webhook", "https://h/x"]
    )
    assert (args.url, args.audio_urls, args.webhook) == ("http://srv:9000", ["https://e.org/a.mp3"], "https://h/x")
