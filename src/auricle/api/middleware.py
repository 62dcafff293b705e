"""One pure-ASGI middleware for every HTTP request: request id, API key check, upload size limit while the body
streams in, metrics and an access log line. Pure ASGI (not BaseHTTPMiddleware) so streamed responses and
uploads pass through untouched."""

from __future__ import annotations

import logging
import time
import uuid

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auricle import metrics
from auricle.api.auth import PUBLIC_PATHS, AuthGuard
from auricle.api.errors import error_response
from auricle.logs import REQUEST_ID

__all__ = ["RequestMiddleware"]

logger = logging.getLogger("auricle.access")

# The web UI's static files are public (it asks for the key itself); the APIs are not.
_API_PREFIXES = ("/v1/", "/asr", "/detect-language", "/metrics", "/transcribe")


def _needs_key(path: str, protect_metrics: bool) -> bool:
    if path in PUBLIC_PATHS:
        return False
    if path == "/metrics":
        return protect_metrics
    return path.startswith(_API_PREFIXES) or path in ("/docs", "/openapi.json")


class RequestMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope["app"].state
        settings = state.settings
        guard: AuthGuard = state.auth
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        request_id = headers.get("x-request-id", "")[:64] or uuid.uuid4().hex[:16]
        token = REQUEST_ID.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500, "sent": False}
        path = scope["path"]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                if status_holder["sent"]:
                    return
                status_holder["sent"] = True
                status_holder["status"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            elif status_holder.get("blocked"):
                return
            await send(message)

        async def reply(status: int, text: str, code: str, extra: dict[str, str] | None = None) -> None:
            response = error_response(Request(scope), status, text, code=code, headers=extra)
            await response(scope, receive, send_wrapper)
            status_holder["blocked"] = True

        try:
            address = scope.get("client")[0] if scope.get("client") else "unknown"
            if guard.enabled and _needs_key(path, settings.protect_metrics):
                if guard.locked_out(address):
                    await reply(
                        429,
                        "too many failed authentication attempts; try again later",
                        "rate_limited",
                        {"Retry-After": str(int(settings.auth_fail_window_s))},
                    )
                    return
                if not guard.key_matches(headers.get("authorization")):
                    guard.record_failure(address)
                    await reply(
                        401,
                        "a valid API key is required: send 'Authorization: Bearer <key>'",
                        "invalid_api_key",
                        {"WWW-Authenticate": "Bearer"},
                    )
                    return
            limit = int(settings.max_upload_mb * 1024 * 1024)
            length = headers.get("content-length")
            if length and length.isdigit() and int(length) > limit:
                await reply(413, f"upload is larger than the limit of {settings.max_upload_mb:g} MB", "too_large")
                return
            received = 0

            async def limited_receive() -> Message:
                nonlocal received
                if status_holder.get("blocked"):
                    return {"type": "http.disconnect"}
                message = await receive()
                if message["type"] == "http.request":
                    received += len(message.get("body", b""))
                    if received > limit:
                        await reply(
                            413, f"upload is larger than the limit of {settings.max_upload_mb:g} MB", "too_large"
                        )
                        return {"type": "http.disconnect"}
                return message

            await self.app(scope, limited_receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or ("static" if not path.startswith(_API_PREFIXES) else "unmatched")
            status = status_holder["status"]
            metrics.REQUESTS.labels(template, scope["method"], str(status)).inc()
            metrics.REQUEST_SECONDS.labels(template).observe(elapsed)
            logger.info("%s %s %s %.3fs", scope["method"], path, status, elapsed)
            REQUEST_ID.reset(token)
