"""The one place where domain errors become HTTP statuses and bodies.

``/v1/...`` answers in OpenAI's envelope ``{"error": {"message", "type", "param", "code"}}``;
every other route in ``{"detail": "..."}`` as whisper-asr-webservice and FastAPI do.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from auricle import metrics
from auricle.api.uploads import no_filename_message
from auricle.errors import (
    AudioDecodeError,
    AuricleError,
    CancelledError,
    DrainingError,
    InvalidRequestError,
    JobNotFoundError,
    JobStateError,
    ModelUnavailableError,
    NotReadyError,
    QueueFullError,
    TooLargeError,
    UnknownModelError,
)

__all__ = ["error_response", "install_error_handlers", "status_for"]

logger = logging.getLogger(__name__)

_STATUS: list[tuple[type[AuricleError], int, str]] = [
    (UnknownModelError, 404, "model_not_found"),
    (ModelUnavailableError, 503, "model_unavailable"),
    (InvalidRequestError, 400, "invalid_request"),
    (AudioDecodeError, 415, "invalid_audio"),
    (TooLargeError, 413, "too_large"),
    (QueueFullError, 503, "queue_full"),
    (DrainingError, 503, "draining"),
    (NotReadyError, 503, "not_ready"),
    (JobNotFoundError, 404, "job_not_found"),
    (JobStateError, 409, "invalid_job_state"),
    (CancelledError, 499, "cancelled"),
]

_OPENAI_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}


def status_for(exc: AuricleError) -> tuple[int, str]:
    """HTTP status and a stable code for a domain error."""
    for cls, status, code in _STATUS:
        if isinstance(exc, cls):
            return status, code
    return 500, "internal_error"


def error_response(
    request: Request,
    status: int,
    message: str,
    *,
    code: str,
    param: str | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """Build the error body in the style of the route's API family."""
    metrics.ERRORS.labels(code).inc()
    if request.url.path.startswith("/v1/"):
        body: dict[str, object] = {
            "error": {
                "message": message,
                "type": _OPENAI_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error"),
                "param": param,
                "code": code,
            }
        }
    else:
        body = {"detail": message}
    return JSONResponse(body, status_code=status, headers=headers)


def _store_errors() -> tuple[type[Exception], ...]:
    """The errors of an unreachable job store (Redis down): 503 with Retry-After, not 500."""
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # pragma: no cover - redis comes with dramatiq[redis]
        return ()
    return (RedisConnectionError, RedisTimeoutError)


def install_error_handlers(app: FastAPI) -> None:
    """Register handlers for domain errors, validation errors, HTTP errors and anything unexpected."""

    @app.exception_handler(AuricleError)
    async def _domain(request: Request, exc: AuricleError) -> JSONResponse:
        status, code = status_for(exc)
        retry = exc if isinstance(exc, QueueFullError | NotReadyError) else None
        headers = {"Retry-After": str(retry.retry_after_s)} if retry is not None else None
        if isinstance(exc, NotReadyError | ModelUnavailableError) and headers is None:
            headers = {"Retry-After": "5"}
        return error_response(request, status, exc.message, code=code, param=exc.param, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = []
        param = None
        for err in exc.errors():
            loc = [str(part) for part in err.get("loc", ()) if part not in ("body", "query", "path", "header")]
            param = param or (loc[-1] if loc else None)
            if "Expected UploadFile" in str(err.get("msg", "")):  # a file part sent without a filename
                problems.append(no_filename_message(loc[-1] if loc else "file"))
                continue
            problems.append(f"{'.'.join(loc) or 'request'}: {err.get('msg', 'invalid')}")
        message = "invalid request: " + "; ".join(problems)
        status = 400 if request.url.path.startswith("/v1/") or request.url.path == "/asr" else 422
        return error_response(request, status, message, code="invalid_request", param=param)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
        if exc.status_code == 400 and message.startswith("Part exceeded maximum size"):
            message = no_filename_message(
                "file" if request.url.path.startswith("/v1/") else "audio_file", oversized=True
            )
        codes = {
            401: "invalid_api_key",
            404: "not_found",
            405: "method_not_allowed",
            413: "too_large",
            429: "rate_limited",
        }
        return error_response(
            request,
            exc.status_code,
            message,
            code=codes.get(exc.status_code, "http_error"),
            headers=getattr(exc, "headers", None),
        )

    for unavailable in _store_errors():

        @app.exception_handler(unavailable)
        async def _store_down(request: Request, exc: Exception) -> JSONResponse:
            logger.warning("the job store is unreachable on %s: %s", request.url.path, type(exc).__name__)
            message = "the job store is unreachable; retry later"
            return error_response(request, 503, message, code="unavailable", headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s", request.url.path)
        # Connection: close, because uvicorn closes the connection after an unhandled error: a pooled client
        # must not send its next request on it.
        return error_response(
            request, 500, "internal server error", code="internal_error", headers={"Connection": "close"}
        )
