"""Log lines: a value from a client cannot forge a line or drive a terminal."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from auricle.logs import configure_logging, escape_control


def test_control_characters_are_escaped() -> None:
    assert escape_control("a\r\nINFO forged\x1b[31m\u2028é") == "a\\x0d\\x0aINFO forged\\x1b[31m\\u2028é"


@pytest.fixture
def root_logger() -> Iterator[None]:
    """configure_logging replaces the root handlers: put the test session's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_a_text_log_record_stays_one_line_with_its_traceback_intact(monkeypatch, root_logger) -> None:
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    configure_logging("INFO", "text")
    log = logging.getLogger("auricle.test")
    log.info("GET %s 404", "/x\r\nERROR auricle forged line")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed on %s", "/y\n")
    lines = stream.getvalue().splitlines()
    assert "GET /x\\x0d\\x0aERROR auricle forged line 404" in lines[0]
    assert not any(line.startswith("ERROR auricle forged") for line in lines)
    assert "failed on /y\\x0a" in lines[1] and lines[2] == "Traceback (most recent call last):"
