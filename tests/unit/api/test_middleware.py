"""The middleware stack: request ids, the access log, the upload limit while the body streams in, and what an
app that was never started answers."""

from __future__ import annotations

import logging

from fastapi.testclient import TestClient

from auricle.app import create_app
from auricle.config import Settings
from auricle.logs import REQUEST_ID

from fakes import wav_bytes


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((record.getMessage(), REQUEST_ID.get()))


def test_request_id_is_taken_or_made_and_on_the_access_log_line(client: TestClient) -> None:
    recorder = _Recorder()
    access = logging.getLogger("auricle.access")
    access.addHandler(recorder)
    level = access.level
    access.setLevel(logging.INFO)
    try:
        given = client.get("/health", headers={"X-Request-ID": "trace-123"})
        made = client.get("/v1/models/nope")
    finally:
        access.removeHandler(recorder)
        access.setLevel(level)
    assert given.headers["x-request-id"] == "trace-123"
    assert len(made.headers["x-request-id"]) == 16
    (first, first_id), (second, second_id) = recorder.lines
    assert first.startswith("GET /health 200 ") and first_id == "trace-123"
    assert second.startswith("GET /v1/models/nope 404 ") and second_id == made.headers["x-request-id"]


def test_request_id_is_cut_to_64_characters(client: TestClient) -> None:
    assert client.get("/health", headers={"X-Request-ID": "x" * 100}).headers["x-request-id"] == "x" * 64


def test_upload_over_the_limit_is_413_by_header_and_while_streaming(make_client) -> None:
    client = make_client(max_upload_mb=0.05)  # 52 428 bytes
    big = wav_bytes(2.0)  # 64 044 bytes
    by_header = client.post("/asr", files={"audio_file": ("big.wav", big)})
    assert by_header.status_code == 413
    assert by_header.json() == {"detail": "upload is larger than the limit of 0.05 MB"}

    def chunks():
        yield big[:40_000]
        yield big[40_000:]

    boundary = b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.wav"\r\n\r\n'
    streamed = client.post(
        "/v1/audio/transcriptions",
        content=(part for part in [boundary, *chunks(), b"\r\n--b--\r\n"]),
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert streamed.status_code == 413 and streamed.json()["error"]["code"] == "too_large"
    assert client.post("/asr", files={"audio_file": ("small.wav", wav_bytes(1.0))}).status_code == 200


def test_an_app_that_was_not_started_answers_503(tmp_path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    client = TestClient(app)  # no `with`: the lifespan never ran
    response = client.get("/v1/jobs")
    assert response.status_code == 503 and response.json()["error"]["code"] == "not_ready"
