"""Turning loosely-typed client parameters (query string or form fields) into :class:`TranscribeOptions`.

Real clients send booleans as ``true/false/1/0`` and numbers as strings, in the query string or in the form;
every bad value becomes an :class:`InvalidRequestError` naming the parameter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from auricle.engine.known_speakers import MAX_KNOWN_SPEAKERS, reference_audio, validate_known_speakers
from auricle.engine.languages import normalise_language
from auricle.engine.types import TranscribeOptions
from auricle.errors import InvalidRequestError, UnsupportedLanguageError
from auricle.models.registry import ModelRegistry

__all__ = ["merged_params", "options_from_params", "parse_bool", "parse_float", "parse_int", "parse_language"]

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


def parse_bool(value: Any, name: str, default: bool) -> bool:
    """``true/false/1/0/yes/no/on/off`` (any case); None gives ``default``."""
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise InvalidRequestError(f"'{name}' must be true or false, not '{value}'", param=name)


def parse_int(value: Any, name: str, *, minimum: int = 1, maximum: int = 64) -> int | None:
    """An integer within bounds, or None when absent or empty."""
    if value is None or str(value).strip() == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise InvalidRequestError(f"'{name}' must be a whole number, not '{value}'", param=name) from None
    if not minimum <= number <= maximum:
        raise InvalidRequestError(f"'{name}' must be between {minimum} and {maximum}, not {number}", param=name)
    return number


def parse_float(value: Any, name: str, *, minimum: float, maximum: float) -> float | None:
    """A float within bounds, or None when absent or empty."""
    if value is None or str(value).strip() == "":
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        raise InvalidRequestError(f"'{name}' must be a number, not '{value}'", param=name) from None
    if not minimum <= number <= maximum or number != number:
        raise InvalidRequestError(f"'{name}' must be between {minimum:g} and {maximum:g}", param=name)
    return number


def parse_language(value: Any, name: str = "language") -> str | None:
    """A Whisper language code from a code or name; ``auto``/empty means detect."""
    if value is None or str(value).strip().lower() in ("", "auto", "detect", "none", "null"):
        return None
    code = normalise_language(str(value))
    if code is None:
        raise UnsupportedLanguageError(
            f"unsupported language '{value}': use an ISO 639-1 code Whisper knows (e.g. en, de, zh) or 'auto'",
            param=name,
        )
    return code


def merged_params(query: Mapping[str, str], form: Mapping[str, Any]) -> dict[str, Any]:
    """Form fields and query parameters together; the query wins (it is what the reference clients send)."""
    merged: dict[str, Any] = {k: v for k, v in form.items() if isinstance(v, str)}
    merged.update(query)
    return merged


def options_from_params(
    params: Mapping[str, Any],
    registry: ModelRegistry,
    *,
    word_timestamps_default: bool = False,
    diarize_default: bool = False,
    max_beam_size: int = 10,
) -> TranscribeOptions:
    """Build options from ``/asr``-style parameters (also used by the jobs API); ``beam_size`` is bounded by
    ``max_beam_size``."""
    task = (params.get("task") or "transcribe").strip().lower()
    if task not in ("transcribe", "translate"):
        raise InvalidRequestError(f"'task' must be 'transcribe' or 'translate', not '{task}'", param="task")
    model = params.get("model") or None
    if model:
        registry.info(model)  # raises UnknownModelError listing the available models
    diarize = parse_bool(params.get("diarize"), "diarize", diarize_default)
    diarize = parse_bool(params.get("enable_diarization"), "enable_diarization", diarize)
    num = parse_int(params.get("num_speakers"), "num_speakers")
    low = parse_int(params.get("min_speakers"), "min_speakers")
    high = parse_int(params.get("max_speakers"), "max_speakers")
    if low and high and low > high:
        raise InvalidRequestError("'min_speakers' must not be larger than 'max_speakers'", param="min_speakers")
    return TranscribeOptions(
        model=registry.canonical(model),
        language=parse_language(params.get("language")),
        task=task,  # type: ignore[arg-type]
        initial_prompt=(params.get("initial_prompt") or params.get("prompt") or None),
        hotwords=params.get("hotwords") or None,
        word_timestamps=parse_bool(params.get("word_timestamps"), "word_timestamps", word_timestamps_default),
        vad_filter=parse_bool(params.get("vad_filter"), "vad_filter", True),
        beam_size=parse_int(params.get("beam_size"), "beam_size", maximum=max_beam_size),
        diarize=diarize,
        num_speakers=num,
        min_speakers=low,
        max_speakers=high,
        return_speaker_embeddings=parse_bool(
            params.get("return_speaker_embeddings"), "return_speaker_embeddings", False
        ),
        known_speakers=parse_known_speakers(params.get("known_speakers")),
    )


def parse_known_speakers(value: str | None) -> dict[str, list[float]] | None:
    """``known_speakers``: JSON ``{name: [256 floats]}``, as the ``speaker_embeddings`` of an earlier answer."""
    if value is None or not str(value).strip():
        return None
    try:
        data = json.loads(value)
    except ValueError:
        raise InvalidRequestError(
            "'known_speakers' must be JSON: {\"name\": [256 numbers], ...}", param="known_speakers"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequestError("'known_speakers' must be a JSON object of name -> embedding", param="known_speakers")
    if len(data) > MAX_KNOWN_SPEAKERS:
        raise InvalidRequestError(f"at most {MAX_KNOWN_SPEAKERS} known speakers", param="known_speakers")
    voices = validate_known_speakers(data)
    return {name: [float(x) for x in vector] for name, vector in voices.items()}


def parse_known_speaker_references(
    names: Sequence[str] | None, references: Sequence[str] | None
) -> dict[str, str] | None:
    """OpenAI's ``known_speaker_names[]`` with ``known_speaker_references[]`` (audio clips as ``data:`` URLs)."""
    names, references = list(names or []), list(references or [])
    if not names and not references:
        return None
    if len(names) != len(references):
        raise InvalidRequestError(
            f"{len(names)} known_speaker_names[] but {len(references)} known_speaker_references[]: "
            "give one clip per name",
            param="known_speaker_names[]",
        )
    if len(names) > MAX_KNOWN_SPEAKERS:
        raise InvalidRequestError(f"at most {MAX_KNOWN_SPEAKERS} known speakers", param="known_speaker_names[]")
    out: dict[str, str] = {}
    for name, reference in zip(names, references, strict=True):
        if not name.strip() or name.strip() in out:
            raise InvalidRequestError(
                "known speaker names must be non-empty and distinct", param="known_speaker_names[]"
            )
        reference_audio(reference, name=name.strip())  # shape checked now; the worker decodes and embeds it
        out[name.strip()] = reference
    return out
