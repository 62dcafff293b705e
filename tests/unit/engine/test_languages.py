"""Whisper's language table and the lenient language parser."""

from __future__ import annotations

import pytest

from auricle.engine import languages
from auricle.engine.languages import LANGUAGES, is_supported, language_name, normalise_language


def test_all_is_declared() -> None:
    assert sorted(languages.__all__) == ["LANGUAGES", "is_supported", "language_name", "normalise_language"]


def test_table_has_whisper_100_languages() -> None:
    assert len(LANGUAGES) == 100
    assert list(LANGUAGES)[:3] == ["en", "zh", "de"]
    assert list(LANGUAGES)[-1] == "yue"
    assert all(code == code.lower() and name == name.lower() for code, name in LANGUAGES.items())


def test_table_matches_faster_whisper_codes() -> None:
    tokenizer = pytest.importorskip("faster_whisper.tokenizer")
    assert set(LANGUAGES) == set(tokenizer._LANGUAGE_CODES)


@pytest.mark.parametrize(
    ("code", "name"),
    [("en", "english"), ("EN", "english"), ("zh", "chinese"), ("haw", "hawaiian"), ("ht", "haitian creole")],
)
def test_language_name(code: str, name: str) -> None:
    assert language_name(code) == name


def test_language_name_of_unknown_code_is_the_code() -> None:
    assert language_name("xx") == "xx"


@pytest.mark.parametrize(("code", "expected"), [("en", True), ("EN", True), ("yue", True), ("english", False)])
def test_is_supported(code: str, expected: bool) -> None:
    assert is_supported(code) is expected


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("en", "en"),
        ("EN", "en"),
        (" en ", "en"),
        ("English", "en"),
        ("ENGLISH", "en"),
        ("haitian creole", "ht"),
        ("Haitian  Creole", "ht"),
        ("Mandarin", "zh"),
        ("castilian", "es"),
        ("en-US", "en"),
        ("pt_BR", "pt"),
        ("yue", "yue"),
        ("Cantonese", "yue"),
    ],
)
def test_normalise_language_accepts_codes_names_and_aliases(value: str, code: str) -> None:
    assert normalise_language(value) == code


@pytest.mark.parametrize("value", [None, "", "   ", "xx", "klingon", "english-ish", 42])
def test_normalise_language_returns_none_for_unknown(value: object) -> None:
    assert normalise_language(value) is None  # type: ignore[arg-type]
