"""OpenAI-compatible audio routes: ``POST /v1/audio/transcriptions`` and ``POST /v1/audio/translations``.

The official ``openai`` SDK works unchanged against these (base_url ``http://host:9000/v1``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response, StreamingResponse

from auricle.api.deps import JobServiceDep, RegistryDep, SettingsDep
from auricle.api.errors import status_for
from auricle.api.params import parse_bool, parse_float, parse_known_speaker_references, parse_language
from auricle.api.transcription import stream_request, transcribe_request
from auricle.api.uploads import save_upload
from auricle.config import Settings
from auricle.engine.formats import MEDIA_TYPES, render, to_diarized_json, to_verbose_json
from auricle.engine.types import TranscribeOptions, Transcript
from auricle.errors import AuricleError, InvalidRequestError
from auricle.jobs.service import JobTranscriptionService, TranscriptionResult
from auricle.models.registry import ModelRegistry

__all__ = ["router"]

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/audio", tags=["openai"])

_FORMATS = ("json", "text", "srt", "vtt", "verbose_json", "diarized_json")


def _options(
    registry: ModelRegistry,
    *,
    model: str | None,
    language: str | None,
    prompt: str | None,
    response_format: str,
    temperature: str | None,
    granularities: list[str],
    task: Literal["transcribe", "translate"],
    diarize: str | None,
    known_names: list[str] | None = None,
    known_references: list[str] | None = None,
) -> TranscribeOptions:
    if response_format not in _FORMATS:
        raise InvalidRequestError(
            f"unknown response_format '{response_format}': use one of {', '.join(_FORMATS)}", param="response_format"
        )
    unknown = [g for g in granularities if g not in ("word", "segment")]
    if unknown:
        raise InvalidRequestError(
            f"unknown timestamp_granularities value '{unknown[0]}': use word and/or segment",
            param="timestamp_granularities[]",
        )
    if model:
        registry.info(model)
    wants_diarization = response_format == "diarized_json" or parse_bool(diarize, "diarize", False)
    return TranscribeOptions(
        model=registry.canonical(model),
        language=parse_language(language),
        task=task,
        initial_prompt=prompt or None,
        word_timestamps="word" in granularities or wants_diarization,
        temperature=parse_float(temperature, "temperature", minimum=0.0, maximum=1.0),
        diarize=wants_diarization,
        known_speaker_references=parse_known_speaker_references(known_names, known_references),
    )


def _render(transcript: Transcript, response_format: str, granularities: list[str]) -> Response:
    if response_format == "json":
        return JSONResponse({"text": transcript.text})
    if response_format == "verbose_json":
        include_segments = "segment" in granularities or not granularities
        return JSONResponse(
            to_verbose_json(transcript, include_words="word" in granularities, include_segments=include_segments)
        )
    if response_format == "diarized_json":
        return JSONResponse(to_diarized_json(transcript))
    return Response(render(transcript, response_format), media_type=MEDIA_TYPES[response_format])


def _sse(payload: dict[str, object]) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _error_event(message: str, code: str, param: str | None = None) -> str:
    """An ``error`` event in OpenAI's error shape: the stream's status line was sent already (200)."""
    error_type = "server_error" if code in ("internal_error", "draining", "queue_full") else "invalid_request_error"
    return _sse({"type": "error", "error": {"message": message, "type": error_type, "code": code, "param": param}})


async def _events(
    request: Request, service: JobTranscriptionService, path: Path, options: TranscribeOptions
) -> AsyncIterator[str]:
    try:
        async for item in stream_request(request, service, path, options):
            if isinstance(item, TranscriptionResult):
                yield _sse({"type": "transcript.text.done", "text": item.transcript.text})
            elif item.kind == "segment" and item.segment is not None:
                yield _sse(
                    {
                        "type": "transcript.text.delta",
                        "delta": item.segment.text.strip() + " ",
                        "segment_id": f"seg_{item.segment.id}",
                    }
                )
    except AuricleError as exc:
        yield _error_event(exc.message, status_for(exc)[1], exc.param)
    except Exception:
        logger.exception("streamed transcription failed")
        yield _error_event("internal server error", "internal_error")


async def _handle(
    request: Request,
    deps: _Deps,
    file: UploadFile | None,
    *,
    task: Literal["transcribe", "translate"],
    model: str | None,
    language: str | None,
    prompt: str | None,
    response_format: str | None,
    temperature: str | None,
    granularities: list[str] | None,
    stream: str | None,
    diarize: str | None,
    known_names: list[str] | None = None,
    known_references: list[str] | None = None,
) -> Response:
    response_format = (response_format or "json").strip().lower()
    granularities = [g.strip().lower() for g in (granularities or []) if g.strip()]
    options = _options(
        deps.registry,
        model=model,
        language=language,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        granularities=granularities,
        task=task,
        diarize=diarize,
        known_names=known_names,
        known_references=known_references,
    )
    streaming = parse_bool(stream, "stream", False)
    path = await save_upload(file, deps.settings.spool_dir, field="file")
    if streaming:
        return StreamingResponse(
            _events(request, deps.service, path, options),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )
    result = await transcribe_request(request, deps.service, path, options)
    return _render(result.transcript, response_format, granularities)


Model = Annotated[str | None, Form(description="Model name; `whisper-1` means the server default.")]
Prompt = Annotated[str | None, Form(description="Text to guide style and vocabulary.")]
Fmt = Annotated[str | None, Form(description="json (default), text, srt, vtt, verbose_json or diarized_json.")]
Temperature = Annotated[str | None, Form(description="Sampling temperature, 0 to 1.")]
Stream = Annotated[str | None, Form(description="true: server-sent events transcript.text.delta / .done.")]
Diarize = Annotated[str | None, Form(description="true: label speakers (also implied by diarized_json).")]
Upload = Annotated[UploadFile | None, File(description="Audio or video file.")]


@dataclass(frozen=True)
class _Deps:
    settings: Settings
    registry: ModelRegistry
    service: JobTranscriptionService


def _deps(settings: SettingsDep, registry: RegistryDep, service: JobServiceDep) -> _Deps:
    return _Deps(settings, registry, service)


Deps = Annotated[_Deps, Depends(_deps)]


@router.post("/transcriptions", summary="Transcribe audio (OpenAI compatible)")
async def transcriptions(
    request: Request,
    deps: Deps,
    file: Upload = None,
    model: Model = None,
    language: Annotated[str | None, Form(description="ISO 639-1 code; omit to detect.")] = None,
    prompt: Prompt = None,
    response_format: Fmt = None,
    temperature: Temperature = None,
    timestamp_granularities: Annotated[
        list[str] | None,
        Form(alias="timestamp_granularities[]", description="`word` and/or `segment` (with verbose_json)."),
    ] = None,
    stream: Stream = None,
    diarize: Diarize = None,
    known_speaker_names: Annotated[
        list[str] | None,
        Form(alias="known_speaker_names[]", description="Names of known speakers (with `diarized_json`)."),
    ] = None,
    known_speaker_references: Annotated[
        list[str] | None,
        Form(
            alias="known_speaker_references[]",
            description="One short clip per name, as a `data:audio/...;base64,` URL, in the order of the names.",
        ),
    ] = None,
) -> Response:
    """Like OpenAI's endpoint; errors come in OpenAI's `{"error": {...}}` envelope."""
    return await _handle(
        request,
        deps,
        file,
        task="transcribe",
        model=model,
        language=language,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        granularities=timestamp_granularities,
        stream=stream,
        diarize=diarize,
        known_names=known_speaker_names,
        known_references=known_speaker_references,
    )


@router.post("/translations", summary="Translate audio to English text (OpenAI compatible)")
async def translations(
    request: Request,
    deps: Deps,
    file: Upload = None,
    model: Model = None,
    prompt: Prompt = None,
    response_format: Fmt = None,
    temperature: Temperature = None,
) -> Response:
    """Speech in any supported language to English text."""
    return await _handle(
        request,
        deps,
        file,
        task="translate",
        model=model,
        language=None,
        prompt=prompt,
        response_format=response_format,
        temperature=temperature,
        granularities=None,
        stream=None,
        diarize=None,
    )
