"""Generated bad input against a real ``auricle serve`` process (Hypothesis): HTTP requests to every route with
hostile parameters, headers, bodies and upload names, and WebSocket sessions on ``/transcribe`` and
``/v1/realtime`` sending hostile frames.

The bar: no 5xx answer, no connection dropped without an answer, no WebSocket closed with 1011 (or closed
abnormally), no upload left in the spool, and the server still serving afterwards. The cases are derandomized
(the same every run) and bounded in number, so the module runs in about two minutes on two cores.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest
import websockets
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from support import Server, start_server

pytestmark = [pytest.mark.slow, pytest.mark.model]

HTTP_CASES = 1500
WS_CASES = 300

ROUTES = [
    ("POST", "/asr"),
    ("POST", "/detect-language"),
    ("POST", "/v1/audio/transcriptions"),
    ("POST", "/v1/audio/translations"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{text}"),
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs"),  # listed three times: paging parameters are where overflows live
    ("GET", "/v1/jobs"),
    ("GET", "/v1/jobs/{text}"),
    ("GET", "/v1/jobs/{text}/result"),
    ("GET", "/v1/jobs/{text}/events"),
    ("GET", "/v1/jobs/{text}/audio"),
    ("POST", "/v1/jobs/{text}/retry"),
    ("POST", "/v1/jobs/{text}/cancel"),
    ("DELETE", "/v1/jobs/{text}"),
    ("GET", "/health"),
    ("GET", "/ready"),
    ("GET", "/metrics"),
    ("GET", "/{text}"),
    ("PUT", "/asr"),
    ("OPTIONS", "/v1/jobs"),
]
PARAMS = [
    "output",
    "output_format",
    "task",
    "language",
    "encode",
    "word_timestamps",
    "vad_filter",
    "diarize",
    "num_speakers",
    "min_speakers",
    "max_speakers",
    "model",
    "response_format",
    "temperature",
    "timestamp_granularities[]",
    "stream",
    "format",
    "limit",
    "offset",
    "cursor",
    "status",
    "session",
    "initial_prompt",
    "prompt",
    "hotwords",
]
HOSTILE = st.sampled_from(
    [
        "",
        "-1",
        "0",
        "1e309",
        "nan",
        "inf",
        "9" * 40,
        str(2**63),
        str(-(2**63) - 1),
        str(2**64),
        "1" + "0" * 30,
        "true",
        "maybe",
        "tiny.en",
        "../../etc/passwd",
        '"; x="y',
        "\r\nX-Injected: 1",
        "\x00",
        "\u202e\u2028",
        "srt",
        "vtt",
        "json",
        "verbose_json",
        "x" * 5000,
    ]
)
TEXT = st.one_of(HOSTILE, st.text(max_size=40))
# Half the query keys are the paging ones, where overflows live; the rest any parameter of any route.
QUERY_KEYS = st.one_of(st.sampled_from(["offset", "cursor", "limit"]), st.sampled_from(PARAMS))
# Small bodies: junk that might still decode stays short, so the cases stay fast.
AUDIO = st.one_of(
    st.binary(max_size=2048),
    st.sampled_from([b"", b"RIFF\x00\x00\x00\x00WAVEfmt ", b"\xff\xfb\x90\x00" * 64, b"OggS" + b"\x00" * 60]),
)


def _path(template: str, text: str) -> str:
    from urllib.parse import quote

    return template.replace("{text}", quote(text, safe="") or "x")


def _multipart(fields: dict[str, str], file_field: str, filename: bytes, data: bytes) -> tuple[bytes, str]:
    boundary = "hypothesisboundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + value.encode() + b"\r\n"
        for name, value in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="'.encode()
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + data
        + b"\r\n"
    )
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(
        tmp_path_factory.mktemp("bad-input"),
        {
            "AURICLE_DEFAULT_MODEL": "tiny.en",
            "AURICLE_PRELOAD_MODELS": "tiny.en",
            "AURICLE_MAX_QUEUE": "1000",
            "AURICLE_MAX_UPLOAD_MB": "1",
            "AURICLE_STREAMING__MAX_FRAME_BYTES": "65536",
            "AURICLE_STREAMING__IDLE_TIMEOUT_S": "5",
            "AURICLE_LOG_LEVEL": "WARNING",
        },
    )
    yield srv
    srv.stop()


class Tally:
    """What the server answered across all cases."""

    def __init__(self) -> None:
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def fail(self, what: str) -> None:
        if len(self.failures) < 20:
            self.failures.append(what)


def test_generated_bad_http_requests_never_get_5xx_or_a_dropped_connection(served: Server) -> None:
    tally = Tally()
    client = httpx.Client(base_url=served.url, timeout=60)

    @settings(
        max_examples=HTTP_CASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(
        route=st.sampled_from(ROUTES),
        path_text=TEXT,
        query=st.dictionaries(QUERY_KEYS, TEXT, max_size=4),
        form=st.dictionaries(st.sampled_from(PARAMS), TEXT, max_size=3),
        file_field=st.sampled_from(["audio_file", "file", "other"]),
        filename=st.one_of(st.binary(max_size=40), st.sampled_from([b'a"b.wav', b"a\r\nb.wav", b"../../x.wav"])),
        audio=AUDIO,
        body_kind=st.sampled_from(["multipart", "multipart", "json", "raw", "none"]),
        header=st.sampled_from(
            [
                {},
                {"X-Request-ID": "<script>" + "x" * 500 + "; forged=1"},
                {"Range": "bytes=999999-"},
                {"Content-Type": "text/plain"},
            ]
        ),
    )
    def case(route, path_text, query, form, file_field, filename, audio, body_kind, header) -> None:
        method, template = route
        path = _path(template, path_text)
        headers = {k: v.encode("latin-1", "replace").decode("latin-1") for k, v in header.items()}
        content: bytes | None = None
        if method in ("POST", "PUT") and body_kind == "multipart":
            content, headers["Content-Type"] = _multipart(form, file_field, filename, audio)
        elif method in ("POST", "PUT") and body_kind == "json":
            content, headers["Content-Type"] = json.dumps(form).encode(), "application/json"
        elif method in ("POST", "PUT") and body_kind == "raw":
            content = audio
        try:
            response = client.request(method, path, params=query, content=content, headers=headers)
        except httpx.TransportError as exc:
            tally.fail(f"{method} {path} {query}: dropped ({exc!r})")
            return
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.fail(f"{method} {path} {query}: {response.status_code} {response.text[:200]}")

    started = time.monotonic()
    try:
        case()
    finally:
        client.close()
    elapsed = time.monotonic() - started
    print(f"{sum(tally.statuses.values())} HTTP cases in {elapsed:.0f}s: {dict(tally.statuses)}")
    assert sum(tally.statuses.values()) + len(tally.failures) >= HTTP_CASES * 0.9
    assert tally.failures == []
    _assert_still_serving_and_clean(served)


async def _session(url: str, frames: list[str | bytes]) -> tuple[int | None, list[str]]:
    replies: list[str] = []
    async with websockets.connect(url, max_size=None, open_timeout=10, close_timeout=10) as ws:
        try:
            for frame in frames:
                await ws.send(frame)
            # Read what the server answers until it is quiet for a moment (or closes), then leave.
            while True:
                reply = await asyncio.wait_for(ws.recv(), 0.25)
                replies.append(reply if isinstance(reply, str) else "<binary>")
        except (TimeoutError, websockets.ConnectionClosed):
            pass
    return ws.close_code, replies


def test_generated_bad_websocket_sessions_never_close_1011(served: Server) -> None:
    tally = Tally()
    message_types = st.sampled_from(
        [
            "speech.config",
            "speech.end",
            "speech.nope",
            "session.update",
            "input_audio_buffer.append",
            "input_audio_buffer.commit",
            "transcription_session.update",
            "",
        ]
    )
    json_values = st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), TEXT),
        lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(TEXT, children, max_size=4)),
        max_leaves=12,
    )
    text_frames = st.one_of(
        st.builds(lambda t, p: json.dumps({"type": t, "payload": p}), message_types, json_values),
        st.builds(lambda t, p: json.dumps({"type": t, "session": p, "audio": p}), message_types, json_values),
        st.sampled_from(["[" * 100_000, '{"a":' * 50_000, '{"type": "speech.config", "payload": ' + "9" * 5000 + "}"]),
        TEXT,
    )
    frames = st.lists(st.one_of(text_frames, st.binary(max_size=3200)), min_size=1, max_size=6)

    @settings(
        max_examples=WS_CASES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(endpoint=st.sampled_from(["/transcribe", "/v1/realtime?intent=transcription"]), sent=frames)
    def case(endpoint: str, sent: list[str | bytes]) -> None:
        url = served.url.replace("http://", "ws://") + endpoint
        try:
            code, _ = asyncio.run(asyncio.wait_for(_session(url, sent), 30))
        except Exception as exc:
            tally.fail(f"{endpoint} {[str(f)[:60] for f in sent]}: {exc!r}")
            return
        tally.statuses[code or 0] += 1
        if code in (None, 1006, 1011):
            tally.fail(f"{endpoint} {[str(f)[:60] for f in sent]}: closed {code}")

    started = time.monotonic()
    case()
    elapsed = time.monotonic() - started
    print(f"{sum(tally.statuses.values())} WebSocket sessions in {elapsed:.0f}s: {dict(tally.statuses)}")
    assert tally.failures == []
    assert sum(tally.statuses.values()) >= WS_CASES * 0.9
    _assert_still_serving_and_clean(served)


def _assert_still_serving_and_clean(served: Server) -> None:
    assert httpx.get(served.url + "/health", timeout=10).status_code == 200
    # Uploads of refused or finished sync requests are gone; only background jobs keep theirs.
    deadline = time.monotonic() + 10
    spool = served.data_dir / "spool"
    stray: list[str] = []
    while time.monotonic() < deadline:
        stray = [p.name for p in spool.iterdir() if p.is_file() and not p.name.startswith("job-")]
        if not stray:
            break
        time.sleep(0.5)
    assert stray == []
    assert not [p for p in (spool / "work").glob("*")] if (spool / "work").is_dir() else True
    _ = Path  # the spool is a directory of plain files
