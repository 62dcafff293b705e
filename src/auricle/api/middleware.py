"""Pure-ASGI middleware, one concern per class (not BaseHTTPMiddleware, so streamed responses and uploads pass
through untouched). ``create_app`` stacks them, outermost first::

    RequestIdMiddleware     X-Request-ID in, out and on every log line            (http)
    AccessLogMiddleware     one access log line and the HTTP metrics per request  (http)
    AuthMiddleware          API keys and the lock-out, via ApiKeyBackend          (http and websocket)
    UploadLimitMiddleware   413 once the body passes max_upload_mb, while it streams in  (http)
"""

from __future__ import annotations

import logging
import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from auricle import metrics
from auricle.api.auth import API_PREFIXES, ApiKeyBackend, AuthFailure
from auricle.api.errors import error_response
from auricle.logs import REQUEST_ID

__all__ = ["AccessLogMiddleware", "AuthMiddleware", "RequestIdMiddleware", "UploadLimitMiddleware"]

logger = logging.getLogger("auricle.access")

_MAX_REQUEST_ID = 64
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")
_UI_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "media-src 'self' blob:; connect-src 'self' ws: wss:; worker-src 'self' blob:; object-src 'none'; "
    "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or []:
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class RequestIdMiddleware:
    """Takes the client's ``X-Request-ID`` (or makes one), puts it on log lines and echoes it in the response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Only a plain token from the client: it goes into every log line and back into a response header.
        offered = "".join(ch for ch in (_header(scope, b"x-request-id") or "")[:_MAX_REQUEST_ID] if ch in _ID_CHARS)
        request_id = offered or uuid.uuid4().hex[:16]
        token = REQUEST_ID.set(request_id)

        # nosniff everywhere: nothing served here is to be guessed into HTML; the web UI also gets a strict CSP.
        extra = [(b"x-request-id", request_id.encode()), (b"x-content-type-options", b"nosniff")]
        if not scope["path"].startswith(API_PREFIXES) and scope["path"] not in ("/health", "/ready", "/docs"):
            extra.append((b"content-security-policy", _UI_CSP.encode()))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)


class AccessLogMiddleware:
    """Logs ``METHOD path status seconds`` per request and feeds the request counters and latency histogram."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_recording_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_recording_status)
        finally:
            elapsed = time.perf_counter() - started
            path = scope["path"]
            # The router stores the matched route on the scope: label by its template, not the raw path.
            route = scope.get("route")
            template = getattr(route, "path", None) or ("unmatched" if path.startswith(API_PREFIXES) else "static")
            metrics.REQUESTS.labels(template, scope["method"], str(status)).inc()
            metrics.REQUEST_SECONDS.labels(template).observe(elapsed)
            logger.info("%s %s %s %.3fs", scope["method"], path, status, elapsed)


class AuthMiddleware:
    """Asks the :class:`ApiKeyBackend` about every HTTP request and WebSocket handshake.

    Allowed connections carry their :class:`~auricle.api.auth.Caller` as ``scope["auth"]``. Refused HTTP requests
    get 401/429 in the route family's error envelope; refused WebSocket handshakes get the same status as an HTTP
    denial response where the server supports it (uvicorn does), else a close with code 1008 before accepting.
    """

    def __init__(self, app: ASGIApp, backend: ApiKeyBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        outcome = self.backend.authenticate(scope)
        if isinstance(outcome, AuthFailure):
            logger.info("refused %s %s: %s", scope["type"], scope["path"], outcome.code)
            if scope["type"] == "http":
                response = error_response(
                    Request(scope), outcome.status, outcome.message, code=outcome.code, headers=outcome.headers
                )
                await response(scope, receive, send)
            else:
                await _deny_websocket(WebSocket(scope, receive, send), outcome)
            return
        # Set on the shared scope (not a copy) so outer middleware and the routes see the same caller.
        scope["auth"] = outcome
        await self.app(scope, receive, send)


async def _deny_websocket(websocket: WebSocket, failure: AuthFailure) -> None:
    metrics.ERRORS.labels(failure.code).inc()
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = JSONResponse({"detail": failure.message}, status_code=failure.status, headers=failure.headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(code=1008, reason=failure.message)


class UploadLimitMiddleware:
    """Answers 413 when ``Content-Length`` or the body read so far passes the limit; nothing is buffered."""

    def __init__(self, app: ASGIApp, max_upload_mb: float) -> None:
        self.app = app
        self.max_upload_mb = max_upload_mb
        self.limit = int(max_upload_mb * 1024 * 1024)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        replied = False
        message_text = f"upload is larger than the limit of {self.max_upload_mb:g} MB"

        async def reply() -> None:
            nonlocal replied
            response = error_response(Request(scope), 413, message_text, code="too_large")
            await response(scope, receive, send)
            replied = True

        length = _header(scope, b"content-length")
        if length and length.isdigit() and int(length) > self.limit:
            await reply()
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if replied:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    await reply()
                    return {"type": "http.disconnect"}
            return message

        async def send_unless_replied(message: Message) -> None:
            # After the 413 the route may still try to answer (it saw a disconnect): the client has its answer.
            if not replied:
                await send(message)

        await self.app(scope, limited_receive, send_unless_replied)
