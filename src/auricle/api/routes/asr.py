"""whisper-asr-webservice / WhisperX ASR service compatible routes: ``POST /asr`` and ``POST /detect-language``.

Options come as query parameters (what Speakr and the reference clients send) or as form fields.
"""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile as FormFile

from auricle.api._headers import content_disposition, safe_filename
from auricle.api.deps import JobServiceDep, RegistryDep, SettingsDep
from auricle.api.params import merged_params, options_from_params, parse_bool
from auricle.api.transcription import pcm_to_wav, transcribe_request
from auricle.api.uploads import save_upload
from auricle.engine.formats import EXTENSIONS, MEDIA_TYPES, render, to_asr_json
from auricle.engine.languages import language_name
from auricle.engine.types import TranscribeOptions
from auricle.errors import InvalidRequestError

__all__ = ["router"]

router = APIRouter(tags=["whisper-asr-webservice"])

_OUTPUTS = {"json": "json", "text": "text", "txt": "text", "srt": "srt", "vtt": "vtt", "tsv": "tsv"}


def _upload(form_value: FormFile | str | None, declared: UploadFile | None) -> FormFile | None:
    """The uploaded file, whether it came as the declared parameter or only in the parsed form."""
    return form_value if isinstance(form_value, FormFile) else declared


@router.post("/asr", summary="Transcribe or translate an audio/video file (whisper-asr-webservice compatible)")
async def asr(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    service: JobServiceDep,
    audio_file: Annotated[UploadFile | None, File(description="Audio or video file (any common format).")] = None,
    encode: Annotated[
        str | None,
        Query(
            description="true: decode the file with FFmpeg's libraries; false: the "
            "file is raw s16le 16 kHz mono PCM. Default true."
        ),
    ] = None,
    task: Annotated[str | None, Query(description="`transcribe` (default) or `translate` (to English).")] = None,
    language: Annotated[str | None, Query(description="Language code or name; empty or `auto` detects.")] = None,
    initial_prompt: Annotated[str | None, Query(description="Text that primes vocabulary and style.")] = None,
    hotwords: Annotated[str | None, Query(description="Words to favour (names, jargon).")] = None,
    vad_filter: Annotated[str | None, Query(description="Skip non-speech with Silero VAD (default true).")] = None,
    word_timestamps: Annotated[str | None, Query(description="Include per-word timings.")] = None,
    output: Annotated[str | None, Query(description="`json` (default), `text`/`txt`, `srt`, `vtt` or `tsv`.")] = None,
    output_format: Annotated[str | None, Query(description="Alias of `output` (WhisperX services).")] = None,
    model: Annotated[str | None, Query(description="Model name (`base`, `tiny.en`, `whisper-1` ...).")] = None,
    diarize: Annotated[str | None, Query(description="Label speakers (SPEAKER_00 ...).")] = None,
    enable_diarization: Annotated[str | None, Query(description="Alias of `diarize` (Speakr sends both).")] = None,
    num_speakers: Annotated[str | None, Query(description="Exact number of speakers, when known.")] = None,
    min_speakers: Annotated[str | None, Query(description="Lower bound on the number of speakers.")] = None,
    max_speakers: Annotated[str | None, Query(description="Upper bound on the number of speakers.")] = None,
    return_speaker_embeddings: Annotated[
        str | None, Query(description="Add `speaker_embeddings` {label: 256 floats} to the JSON.")
    ] = None,
    known_speakers: Annotated[
        str | None,
        Query(
            description="JSON {name: [256 floats]} (e.g. `speaker_embeddings` kept from earlier answers): matching "
            "voices carry the name instead of SPEAKER_NN. Also accepted as a form field."
        ),
    ] = None,
) -> Response:
    """Returns the transcript in the requested format with a `Content-Disposition` naming a matching file."""
    form = await request.form()
    params = merged_params(request.query_params, form)
    fmt_name = (params.get("output") or params.get("output_format") or "json").strip().lower()
    fmt = _OUTPUTS.get(fmt_name)
    if fmt is None:
        raise InvalidRequestError(
            f"unknown output '{fmt_name}': use one of json, text, txt, srt, vtt, tsv", param="output"
        )
    options = options_from_params(
        params,
        registry,
        word_timestamps_default=settings.asr_word_timestamps_default,
        diarize_default=settings.asr_diarize_default,
        max_beam_size=settings.max_beam_size,
    )
    encode_flag = parse_bool(params.get("encode"), "encode", True)
    upload = _upload(form.get("audio_file"), audio_file)
    path = await save_upload(upload, settings.spool_dir, field="audio_file")
    if not encode_flag:
        path = await run_in_threadpool(pcm_to_wav, path)
    result = await transcribe_request(request, service, path, options)
    transcript = result.transcript
    filename = (upload.filename if upload else None) or "audio"
    headers = {
        "Asr-Engine": "auricle",
        "Content-Disposition": content_disposition("attachment", f"{safe_filename(filename)}.{EXTENSIONS[fmt]}"),
    }
    if fmt == "json":
        return JSONResponse(to_asr_json(transcript, text_as_segments=settings.asr_json_text_segments), headers=headers)
    body = render(transcript, fmt)
    if settings.asr_subtitles_as_json:
        payload = {"text": body, "language": transcript.language, "output": fmt}
        return Response(json.dumps(payload, ensure_ascii=False), media_type="application/json", headers=headers)
    return Response(body, media_type=MEDIA_TYPES[fmt], headers=headers)


@router.post("/detect-language", summary="Detect the spoken language of a file (first 30 seconds)")
async def detect_language(
    request: Request,
    settings: SettingsDep,
    registry: RegistryDep,
    service: JobServiceDep,
    audio_file: Annotated[UploadFile | None, File(description="Audio or video file.")] = None,
    encode: Annotated[str | None, Query(description="false: raw s16le 16 kHz mono PCM.")] = None,
    model: Annotated[str | None, Query(description="A multilingual model (default: the server default).")] = None,
) -> dict[str, object]:
    """`{"detected_language": "english", "language_code": "en", "confidence": 0.97}`.

    Runs as a short job like `/asr`, so an API node without local workers needs no model of its own.
    """
    form = await request.form()
    params = merged_params(request.query_params, form)
    name = params.get("model") or None
    if name:
        registry.info(name)  # raises UnknownModelError listing the available models
    encode_flag = parse_bool(params.get("encode"), "encode", True)
    path = await save_upload(_upload(form.get("audio_file"), audio_file), settings.spool_dir, field="audio_file")
    if not encode_flag:
        path = await run_in_threadpool(pcm_to_wav, path)
    options = TranscribeOptions(model=registry.canonical(name))
    result = await transcribe_request(request, service, path, options, job_kind="detect_language")
    code = result.transcript.language
    confidence = result.transcript.language_probability
    return {"detected_language": language_name(code), "language_code": code, "confidence": round(confidence, 4)}
