"""Jobs API (``/v1/jobs``): submit files and return at once, then follow, fetch, replay, retry, cancel, delete.

Reads go to the job store (:data:`~auricle.api.deps.QueueDep`); submissions go through the job service
(:data:`~auricle.api.deps.JobServiceDep`), so the queue limit applies to every request.
Times in job objects are Unix seconds; ``progress`` is 0–100 of the audio processed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import mimetypes
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.datastructures import UploadFile

from auricle.api._headers import content_disposition, safe_filename
from auricle.api.deps import AuthDep, JobServiceDep, QueueDep, RegistryDep, SettingsDep
from auricle.api.errors import error_response
from auricle.api.params import merged_params, options_from_params, parse_known_speaker_references
from auricle.api.uploads import no_filename_message, save_upload
from auricle.engine.formats import EXTENSIONS, MEDIA_TYPES, render
from auricle.engine.types import Transcript
from auricle.errors import InvalidRequestError, JobNotFoundError
from auricle.jobs.base import STATES, TERMINAL
from auricle.jobs.urls import check_url

__all__ = ["router"]

logger = logging.getLogger(__name__)

_MAX_OFFSET = 10**12

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

_FILE_FIELDS = ("file", "files", "file[]", "files[]")
_URL_FIELDS = ("url", "urls", "url[]", "urls[]")
_OPTION_FIELDS = frozenset(
    {
        "model",
        "language",
        "task",
        "word_timestamps",
        "vad_filter",
        "beam_size",
        "initial_prompt",
        "hotwords",
        "diarize",
        "num_speakers",
        "min_speakers",
        "max_speakers",
    }
)
_SSE_NAMES = {"stage": "progress"}
_KEEPALIVE_S = 15.0


P = ParamSpec("P")
R = TypeVar("R")


async def _run(fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    # Every store may block (SQLite, Redis): never on the event loop.
    return await asyncio.to_thread(fn, *args, **kwargs)


@router.post("", status_code=202, summary="Submit files or audio URLs as jobs")
async def submit_jobs(
    request: Request, settings: SettingsDep, registry: RegistryDep, service: JobServiceDep, caller: AuthDep
) -> JSONResponse:
    """Multipart form with one or more files (field ``file``, repeated, or ``files``) and/or audio URLs (field
    ``url``, repeated; a worker fetches each), the ``/asr`` options (model, language, task, word_timestamps,
    diarize, num_speakers, min_speakers, max_speakers, initial_prompt, hotwords, vad_filter, beam_size), an
    optional ``session`` tag and an optional ``webhook_url`` told with a signed event when each job ends.
    Answers 202 with ``{"jobs": [...]}`` at once."""
    form = await request.form(max_files=10_000)
    uploads = [item for name in _FILE_FIELDS for item in form.getlist(name) if isinstance(item, UploadFile)]
    urls = [item.strip() for name in _URL_FIELDS for item in form.getlist(name) if isinstance(item, str)]
    urls += [item.strip() for name in _URL_FIELDS for item in request.query_params.getlist(name)]
    urls = [url for url in urls if url]
    if not uploads and any(isinstance(item, str) for name in _FILE_FIELDS for item in form.getlist(name)):
        raise InvalidRequestError(no_filename_message(), param="file")
    if not uploads and not urls:
        raise InvalidRequestError(
            "no audio was sent: upload it as multipart field 'file' or give its address in field 'url'", param="file"
        )
    params = merged_params(request.query_params, form)
    options = options_from_params(
        params,
        registry,
        word_timestamps_default=settings.asr_word_timestamps_default,
        diarize_default=settings.asr_diarize_default,
        max_beam_size=settings.max_beam_size,
    )
    references = parse_known_speaker_references(
        [v for v in form.getlist("known_speaker_names[]") if isinstance(v, str)],
        [v for v in form.getlist("known_speaker_references[]") if isinstance(v, str)],
    )
    if references:
        options = replace(options, known_speaker_references=references)
    session = (params.get("session") or "").strip() or None
    webhook_url = (params.get("webhook_url") or "").strip() or None
    # Refused destinations are a 400 now; workers and deliverers check again after DNS resolution.
    for url in urls:
        await _run(check_url, url, allow_private=settings.url_allow_private, param="url")
    if webhook_url:
        await _run(check_url, webhook_url, allow_private=settings.url_allow_private, param="webhook_url")
    saved: list[tuple[Path, str | None]] = []
    try:
        for upload in uploads:
            saved.append((await save_upload(upload, settings.spool_dir, field="file"), upload.filename))
    except BaseException:
        for path, _ in saved:
            path.unlink(missing_ok=True)
        raise
    jobs = await _run(service.submit, saved, options, session=session, urls=urls, webhook_url=webhook_url)
    logger.info("%s submitted %s job(s): %s", caller.name, len(jobs), ", ".join(j.id for j in jobs))
    return JSONResponse({"jobs": [j.to_public() for j in jobs]}, status_code=202)


@router.delete("", summary="Delete all jobs of a session")
async def delete_session_jobs(queue: QueueDep, session: str = "") -> dict[str, Any]:
    """Removes every job tagged ``session`` (running ones are stopped), with audio and results."""
    if not session.strip():
        raise InvalidRequestError("'session' is required: name the session whose jobs to delete", param="session")
    deleted = await _run(queue.delete_session, session.strip())
    return {"session": session.strip(), "deleted": deleted}


@router.get("", summary="List jobs, newest first")
async def list_jobs(
    queue: QueueDep,
    status: str | None = None,
    session: str | None = None,
    limit: int = 50,
    offset: int = 0,
    cursor: str | None = None,
) -> dict[str, Any]:
    """Filter by ``status`` and ``session``; page with ``limit``/``offset`` (or pass back ``next_cursor``)."""
    if status is not None and status not in STATES:
        raise InvalidRequestError(f"'status' must be one of {', '.join(STATES)}", param="status")
    if not 1 <= limit <= 500:
        raise InvalidRequestError("'limit' must be between 1 and 500", param="limit")
    if cursor:
        # isascii: str.isdigit also takes other scripts' digits; 12 digits: the stores take 64-bit offsets.
        if not (cursor.isascii() and cursor.isdigit() and len(cursor) <= 12):
            raise InvalidRequestError("'cursor' is not valid", param="cursor")
        offset = int(cursor)
    if not 0 <= offset <= _MAX_OFFSET:
        raise InvalidRequestError(f"'offset' must be between 0 and {_MAX_OFFSET}", param="offset")
    jobs = await _run(queue.list, status=status, session=session, limit=limit + 1, offset=offset)
    more = len(jobs) > limit
    next_offset = offset + limit if more else None
    return {
        "jobs": [j.to_public() for j in jobs[:limit]],
        "limit": limit,
        "offset": offset,
        "next_offset": next_offset,
        "next_cursor": str(next_offset) if more else None,
    }


@router.get("/{job_id}", summary="A job's state, progress and timings")
async def get_job(queue: QueueDep, job_id: str) -> dict[str, Any]:
    """Status (queued, running, succeeded, failed, cancelled), stage, progress, timings and error."""
    job = await _run(queue.get, job_id)
    return job.to_public()


@router.get("/{job_id}/result", summary="A finished job's transcript")
async def get_result(queue: QueueDep, job_id: str, format: str = "json") -> Response:
    """Rendered as json, text, srt, vtt, tsv or verbose_json. 409 while the job has not succeeded."""
    if format not in MEDIA_TYPES:
        raise InvalidRequestError(f"'format' must be one of {', '.join(MEDIA_TYPES)}", param="format")
    data = await _run(queue.result, job_id)
    job = await _run(queue.get, job_id)
    body = render(Transcript.from_dict(data), format)
    stem = Path(safe_filename(job.filename, job_id)).stem or job_id
    headers = {"Content-Disposition": content_disposition("inline", f"{stem}.{EXTENSIONS[format]}")}
    return Response(body, media_type=MEDIA_TYPES[format], headers=headers)


def _sse(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


@router.get("/{job_id}/events", summary="Server-sent events of a job")
async def job_events(request: Request, queue: QueueDep, job_id: str) -> StreamingResponse:
    """``state`` (the current state, first), then ``progress``, ``language`` and ``segment`` events as they
    happen — a late client gets the segments decoded so far replayed — and finally ``done``, ``failed`` or
    ``cancelled``. The stream ends after the terminal event."""
    job = await _run(queue.get, job_id)

    async def events() -> AsyncIterator[str]:
        yield _sse("state", {"type": "state", "job": job.to_public()})
        cursor: str | None = None
        last_sent = time.monotonic()
        while not await request.is_disconnected():
            try:
                batch, cursor = await _run(queue.read_events, job_id, cursor, 1.0)
            except JobNotFoundError:
                yield _sse("deleted", {"type": "deleted", "id": job_id})
                return
            for event in batch:
                kind = event.type
                yield _sse(_SSE_NAMES.get(kind, kind), event.to_dict())
                if kind in ("done", "failed", "cancelled"):
                    return
            if batch:
                last_sent = time.monotonic()
            elif time.monotonic() - last_sent > _KEEPALIVE_S:
                last_sent = time.monotonic()
                yield ": keep-alive\n\n"
            if not batch:
                current = await _run(queue.get, job_id)
                if current.status in TERMINAL:
                    # Finished, but its terminal event is not (yet) in the log: report the state we see.
                    ending = "done" if current.status == "succeeded" else current.status
                    yield _sse(ending, {"type": ending, "job": current.to_public()})
                    return

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


@router.get("/{job_id}/audio", summary="The job's audio (supports HTTP Range)")
async def job_audio(request: Request, queue: QueueDep, job_id: str) -> Response:
    """The uploaded file as sent, for playback next to the transcript.

    Served as a download (``attachment``, ``nosniff``) with an audio or video type only: an uploaded ``page.html``
    or ``img.svg`` must never render as a page on the server's origin (media elements play it all the same).
    """
    job = await _run(queue.get, job_id)
    path = await _run(queue.audio_file, job_id)
    guessed = mimetypes.guess_type(safe_filename(job.filename, path.name))[0] or ""
    media_type = guessed if guessed.startswith(("audio/", "video/")) else "application/octet-stream"
    headers = {"Content-Disposition": content_disposition("attachment", job.filename, path.name)}
    size = (await _run(path.stat)).st_size
    if _range_starts_past(request.headers.get("range"), size):
        # Starlette would answer 416 with an empty body: say why, in the API's error shape.
        message = f"the requested range starts past the end of the {size}-byte file"
        return error_response(
            request, 416, message, code="range_not_satisfiable", headers={"Content-Range": f"bytes */{size}"}
        )
    return FileResponse(path, media_type=media_type, headers=headers)


def _range_starts_past(header: str | None, size: int) -> bool:
    """Whether a ``Range: bytes=…`` header asks only for ranges that start at or past the end of the file."""
    if not header or not header.strip().lower().startswith("bytes="):
        return False
    starts = [part.split("-", 1)[0].strip() for part in header.split("=", 1)[1].split(",")]
    digits = [int(start) for start in starts if start.isascii() and start.isdigit()]
    return bool(digits) and len(digits) == len(starts) and min(digits) >= size


@router.post("/{job_id}/retry", status_code=202, summary="Run a job again")
async def retry_job(
    request: Request,
    queue: QueueDep,
    service: JobServiceDep,
    registry: RegistryDep,
    settings: SettingsDep,
    job_id: str,
) -> dict[str, Any]:
    """Without options: a failed or cancelled job is queued again (409 otherwise). With ``/asr`` options (query or
    form) that differ from the job's: a new job on the same audio with those options, linked by ``retry_of`` (the
    original may have succeeded)."""
    form = await request.form()
    params = merged_params(request.query_params, form)
    given = {key: value for key, value in params.items() if key in _OPTION_FIELDS}
    if not given:
        return (await _run(queue.retry, job_id)).to_public()
    job = await _run(queue.get, job_id)
    current = {key: value for key, value in job.options.items() if key != "kind"}
    base = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in current.items() if v is not None}
    changed = options_from_params(
        {**{k: v for k, v in base.items() if k in _OPTION_FIELDS}, **given},
        registry,
        word_timestamps_default=settings.asr_word_timestamps_default,
        diarize_default=settings.asr_diarize_default,
        max_beam_size=settings.max_beam_size,
    ).to_dict()
    if changed == current:
        return (await _run(queue.retry, job_id)).to_public()
    if "kind" in job.options:
        changed["kind"] = job.options["kind"]
    return (await _run(service.rerun, job_id, changed)).to_public()


@router.post("/{job_id}/cancel", summary="Cancel a queued or running job")
async def cancel_job(queue: QueueDep, job_id: str) -> dict[str, Any]:
    """A queued job is cancelled at once; a running one stops within about a second. 409 once finished."""
    job = await _run(queue.cancel, job_id)
    return job.to_public()


@router.delete("/{job_id}", status_code=204, summary="Delete a job with its audio and result")
async def delete_job(queue: QueueDep, job_id: str) -> Response:
    """A running job is stopped too."""
    await _run(queue.delete, job_id)
    return Response(status_code=204)
