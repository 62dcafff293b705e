"""Real local HTTP servers for webhook and URL-job tests: a scripted webhook receiver and a file server.

Both listen on 127.0.0.1 on a free port in a thread (loopback only), and stop with their ``with`` block.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"""A webhook secret in the Standard Webhooks form (the spec's example key)."""


class _QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        return None


def _serve(port: int, handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    """``handler`` served on 127.0.0.1:``port`` (0: a free one) from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server


def _stop(server: ThreadingHTTPServer | None) -> None:
    if server is not None:
        server.shutdown()
        server.server_close()


@dataclass
class Delivery:
    """One request the receiver got."""

    headers: dict[str, str]
    body: bytes
    status: int


@dataclass
class Receiver:
    """A webhook receiver answering each request with the next status of ``statuses`` (then ``default``)."""

    statuses: list[int] = field(default_factory=list)
    default: int = 204
    delay_s: float = 0.0
    status_for: Callable[[dict[str, str]], int] | None = None
    got: list[Delivery] = field(default_factory=list)
    port: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def __enter__(self) -> Receiver:
        receiver = self

        class Handler(_QuietHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = {k.lower(): v for k, v in self.headers.items()}
                with receiver._lock:
                    if receiver.status_for is not None:
                        status = receiver.status_for(headers)
                    else:
                        status = receiver.statuses.pop(0) if receiver.statuses else receiver.default
                    receiver.got.append(Delivery(headers, body, status))
                if receiver.delay_s:
                    time.sleep(receiver.delay_s)
                self.send_response(status)
                self.send_header("content-length", "0")
                self.end_headers()

        self._server = _serve(self.port, Handler)
        self.port = self._server.server_address[1]
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self._server)

    def wait(self, count: int, timeout: float = 20.0) -> list[Delivery]:
        """The deliveries once at least ``count`` arrived (an AssertionError after ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        while len(self.got) < count:
            assert time.monotonic() < deadline, f"{len(self.got)} of {count} webhook deliveries arrived"
            time.sleep(0.02)
        return list(self.got)


class FileServer:
    """Serves ``routes`` (path -> (status, content type, body)) and redirects (status 302, body = location)."""

    def __init__(self, routes: dict[str, tuple[int, str, bytes]]) -> None:
        self.routes = routes
        self.port = 0
        self._server: ThreadingHTTPServer | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> FileServer:
        routes = self.routes

        class Handler(_QuietHandler):
            def do_GET(self) -> None:
                status, kind, body = routes.get(self.path, (404, "text/plain", b"not found"))
                self.send_response(status)
                if status in (301, 302, 307):
                    self.send_header("location", body.decode())
                    body = b""
                self.send_header("content-type", kind)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._server = _serve(0, Handler)
        self.port = self._server.server_address[1]
        return self

    def __exit__(self, *exc: object) -> None:
        _stop(self._server)
