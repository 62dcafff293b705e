"""The HTTP API as real clients use it: the official openai SDK, Speakr's /asr request, curl-style forms,
every kind of bad request, auth, limits and operations endpoints. One real server process per module."""

from __future__ import annotations

import concurrent.futures
import json
import time
from pathlib import Path

import httpx
import openai
import pytest

from support import CORPUS, SPEAKR_DIARIZE, normalise, start_server

pytestmark = [pytest.mark.model, pytest.mark.slow]

JFK = CORPUS / "audio" / "jfk.flac"
JFK_BYTES = JFK.read_bytes()
SONNET = CORPUS / "audio" / "librivox_sonnet001.mp3"
GERMAN = CORPUS / "audio" / "librivox_simplicissimus_de.mp3"
STEREO = CORPUS / "audio" / "stereo_two_speakers.wav"
AMI = CORPUS / "audio" / "ami_ES2011a_headset0_40-46s.wav"  # "I'M ABIGAIL CLAFLIN YOU CAN CALL ME ABBIE"


def gauge(client: httpx.Client, name: str) -> float:
    """The value of an unlabelled gauge in ``/metrics``."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and not sample.labels:
                return float(sample.value)
    raise AssertionError(f"{name} is not in /metrics")


@pytest.fixture(scope="module")
def sdk(server) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


# -- OpenAI SDK -------------------------------------------------------------------------------------------------


def test_sdk_transcription_json_and_text(sdk):
    with open(JFK, "rb") as f:
        result = sdk.audio.transcriptions.create(model="whisper-1", file=f)
    assert "ask not what your country can do for you" in normalise(result.text)
    with open(JFK, "rb") as f:
        text = sdk.audio.transcriptions.create(model="tiny.en", file=f, response_format="text")
    assert "fellow americans" in normalise(text)


@pytest.mark.parametrize("fmt,marker", [("srt", "-->"), ("vtt", "WEBVTT")])
def test_sdk_subtitles(sdk, fmt, marker):
    with open(JFK, "rb") as f:
        body = sdk.audio.transcriptions.create(model="tiny.en", file=f, response_format=fmt)
    assert marker in body and "country" in body


def test_sdk_verbose_json_with_word_and_segment_timestamps(sdk):
    with open(JFK, "rb") as f:
        result = sdk.audio.transcriptions.create(
            model="tiny.en", file=f, response_format="verbose_json", timestamp_granularities=["word", "segment"]
        )
    assert result.language == "english"
    assert result.duration == pytest.approx(11.0, abs=0.1)
    assert result.words and result.segments
    assert [w.word for w in result.words][:3] == ["And", "so,", "my"] or "and" in result.words[0].word.lower()
    starts = [w.start for w in result.words]
    assert starts == sorted(starts) and result.words[-1].end <= 11.1


def test_sdk_translation_gives_english(sdk):
    with open(GERMAN, "rb") as f:
        result = sdk.audio.translations.create(model="base", file=f)
    words = set(normalise(result.text).split())
    assert len(words & {"the", "and", "of", "a", "is"}) >= 3


def test_sdk_streaming_events(sdk):
    with open(SONNET, "rb") as f:
        stream = sdk.audio.transcriptions.create(model="tiny.en", file=f, stream=True)
        events = list(stream)
    deltas = [e for e in events if e.type == "transcript.text.delta"]
    done = [e for e in events if e.type == "transcript.text.done"]
    assert len(deltas) >= 3 and len(done) == 1
    assert "fairest creatures" in normalise(done[0].text)
    assert normalise("".join(d.delta for d in deltas)) == normalise(done[0].text)


def test_sdk_models(sdk):
    ids = [m.id for m in sdk.models.list()]
    assert {"tiny.en", "base", "whisper-1"} <= set(ids)
    assert sdk.models.retrieve("tiny.en").id == "tiny.en"
    with pytest.raises(openai.NotFoundError) as err:
        sdk.models.retrieve("gpt-nonexistent")
    assert "tiny.en" in str(err.value)


def test_sdk_unknown_model_is_404_naming_available_ones(sdk):
    with open(JFK, "rb") as f, pytest.raises(openai.NotFoundError) as err:
        sdk.audio.transcriptions.create(model="whisper-9000", file=f)
    assert err.value.body["code"] == "model_not_found" and "base" in err.value.body["message"]


# -- Speakr and curl-style clients -----------------------------------------------------------------------------


def test_speakr_request_shape(server):
    params = {
        "encode": "true",
        "task": "transcribe",
        "output": "json",
        "diarize": "false",
        "enable_diarization": "false",
        "language": "en",
        "initial_prompt": "Shakespeare sonnet",
        "model": "tiny.en",
    }
    with server.client() as client, open(SONNET, "rb") as f:
        response = client.post("/asr", params=params, files={"audio_file": ("sonnet.mp3", f, "audio/mpeg")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["language"] == "en"
    assert isinstance(body["text"], str) and "fairest creatures" in normalise(body["text"])
    for segment in body["segments"]:
        assert {"start", "end", "text"} <= set(segment) and segment["end"] >= segment["start"]
    assert 'filename="sonnet.mp3.json"' in response.headers["content-disposition"]


def test_speakr_diarize_flags_keep_the_shape(server):
    with server.client() as client, open(STEREO, "rb") as f:
        response = client.post("/asr", params=SPEAKR_DIARIZE, files={"audio_file": ("call.wav", f, "audio/wav")})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["segments"] and all("speaker" in s for s in body["segments"])


def test_curl_style_form_fields_and_subtitle_outputs(server):
    with server.client() as client:
        for output, ext, marker in [
            ("srt", "srt", "-->"),
            ("vtt", "vtt", "WEBVTT"),
            ("tsv", "tsv", "start\tend"),
            ("txt", "txt", "country"),
        ]:
            with open(JFK, "rb") as f:
                response = client.post(
                    "/asr",
                    files={"audio_file": ("jfk.flac", f)},
                    data={"output": output, "model": "tiny.en", "word_timestamps": "1"},
                )
            assert response.status_code == 200, response.text
            assert marker in response.text
            assert response.headers["content-disposition"].endswith(f'.{ext}"')


def test_raw_pcm_with_encode_false(server):
    from auricle.engine.decode import decode

    pcm = (decode(JFK).samples * 32767).astype("<i2").tobytes()
    with server.client() as client:
        response = client.post(
            "/asr", params={"encode": "false", "model": "tiny.en"}, files={"audio_file": ("jfk.pcm", pcm)}
        )
    assert response.status_code == 200 and "country" in response.json()["text"]


@pytest.mark.parametrize(
    "path,field,value",
    [
        ("/asr", "initial_prompt", "Abigail Claflin"),
        ("/asr", "hotwords", "Claflin"),
        ("/v1/audio/transcriptions", "prompt", "Abigail Claflin"),
    ],
)
def test_prompt_and_hotwords_change_how_a_name_is_spelled(server, path, field, value):
    """tiny.en writes the surname of the AMI speaker as "Klafflin"; primed with it, as "Claflin"."""
    upload = "audio_file" if path == "/asr" else "file"

    def transcribe(extra: dict[str, str]) -> str:
        data = {"model": "tiny.en", "language": "en", **extra}
        with server.client() as client, open(AMI, "rb") as f:
            response = client.post(path, data=data, files={upload: ("ami.wav", f, "audio/wav")})
        assert response.status_code == 200, response.text
        return normalise(response.json()["text"])

    plain, primed = transcribe({}), transcribe({field: value})
    assert "abigail" in plain and "claflin" not in plain
    assert "claflin" in primed and "you can call me" in primed


def test_detect_language(server):
    with server.client() as client, open(GERMAN, "rb") as f:
        response = client.post("/detect-language", files={"audio_file": ("de.mp3", f)})
    assert response.status_code == 200
    assert response.json()["language_code"] == "de" and response.json()["detected_language"] == "german"
    assert 0.5 < response.json()["confidence"] <= 1


# -- bad requests ----------------------------------------------------------------------------------------------


BAD = [
    ("/asr", {}, None, 400, "audio_file"),
    ("/asr", {}, ("empty.wav", b""), 415, "failed to decode audio"),
    ("/asr", {}, ("notes.mp3", b"this is not audio " * 100), 415, "failed to decode audio"),
    ("/asr", {"output": "docx"}, "jfk", 400, "unknown output"),
    ("/asr", {"language": "klingon"}, "jfk", 400, "unsupported language"),
    ("/asr", {"model": "nope"}, "jfk", 404, "unknown model"),
    ("/asr", {"num_speakers": "many"}, "jfk", 400, "whole number"),
    ("/asr", {"min_speakers": "3", "max_speakers": "2"}, "jfk", 400, "min_speakers"),
    ("/asr", {"task": "summarise"}, "jfk", 400, "task"),
    ("/asr", {"word_timestamps": "perhaps"}, "jfk", 400, "true or false"),
    ("/asr", {"model": "tiny.en", "language": "de"}, "jfk", 400, "English-only"),
    ("/v1/audio/transcriptions", {}, None, 400, "file"),
    ("/v1/audio/transcriptions", {"response_format": "pdf"}, "jfk", 400, "response_format"),
    ("/v1/audio/transcriptions", {"temperature": "7"}, "jfk", 400, "temperature"),
    ("/v1/audio/transcriptions", {"language": "xx"}, "jfk", 400, "unsupported language"),
    ("/v1/audio/transcriptions", {"model": "large-v3"}, "jfk", 503, "not available offline"),
    # A part with an empty filename is a text field to multipart parsers: under 1 MB, and over it (JFK is 1.1 MB).
    ("/asr", {}, ("", JFK_BYTES[:200_000]), 400, "'audio_file' part has no filename"),
    ("/asr", {}, ("", JFK_BYTES), 400, "has no filename"),
    ("/v1/audio/transcriptions", {}, ("", JFK_BYTES[:200_000]), 400, "'file' part has no filename"),
    ("/v1/audio/transcriptions", {}, ("", JFK_BYTES), 400, "has no filename"),
    ("/v1/jobs", {}, ("", JFK_BYTES[:200_000]), 400, "'file' part has no filename"),
    ("/v1/jobs", {}, ("", JFK_BYTES), 400, "has no filename"),
]


@pytest.mark.parametrize(
    "path,fields,upload,status,message", BAD, ids=[f"{b[0]}-{b[3]}-{b[4]}-{i}" for i, b in enumerate(BAD)]
)
def test_bad_requests_get_clear_errors(server, path, fields, upload, status, message):
    field = "audio_file" if path == "/asr" else "file"
    files = None
    if upload == "jfk":
        files = {field: ("jfk.flac", JFK_BYTES)}
    elif upload is not None:
        files = {field: upload}
    with server.client() as client:
        response = client.post(path, data=fields, files=files)
        assert response.status_code == status, response.text
        body = response.json()
        text = body["error"]["message"] if path.startswith("/v1") else body["detail"]
        assert message.lower() in text.lower()
        if path.startswith("/v1"):
            assert set(body["error"]) == {"message", "type", "param", "code"}
        assert client.get("/health").status_code == 200
    assert not list((server.data_dir / "spool").glob("*")), "no spooled file is left behind"


# -- operations --------------------------------------------------------------------------------------------------


def test_health_ready_metrics_docs(server):
    with server.client() as client:
        health = client.get("/health").json()
        assert health["status"] == "ok" and "base" in health["models_loaded"] and health["device"] == "cpu"
        assert client.get("/ready").status_code == 200
        assert gauge(client, "auricle_transcriptions_in_flight") == 0
        assert gauge(client, "auricle_transcriptions_waiting") == 0
        metrics = client.get("/metrics").text
        for name in (
            "auricle_http_requests_total",
            "auricle_audio_seconds_total",
            "auricle_real_time_factor",
            "auricle_processing_seconds",
            "auricle_model_load_seconds",
            "auricle_transcriptions_in_flight",
        ):
            assert name in metrics
        assert client.get("/docs").status_code == 200
        spec = client.get("/openapi.json").json()
        params = {p["name"]: p for p in spec["paths"]["/asr"]["post"]["parameters"]}
        assert all(p.get("description") for p in params.values())
        assert client.get("/health").headers["x-request-id"]


def test_health_stays_responsive_during_transcriptions(server):
    with concurrent.futures.ThreadPoolExecutor(3) as pool:

        def post() -> int:
            with server.client() as client, open(GERMAN, "rb") as f:
                return client.post("/asr", files={"audio_file": ("de.mp3", f)}).status_code

        futures = [pool.submit(post) for _ in range(2)]
        time.sleep(1.0)
        in_flight = []
        with server.client() as client:
            for _ in range(5):
                started = time.perf_counter()
                assert client.get("/health").status_code == 200
                assert time.perf_counter() - started < 1.0
                in_flight.append(gauge(client, "auricle_transcriptions_in_flight"))
                time.sleep(0.2)
            assert [f.result() for f in futures] == [200, 200]
            # The sync gauges followed the two requests: running while we looked, back to zero after
            assert max(in_flight) >= 1, in_flight
            assert gauge(client, "auricle_transcriptions_in_flight") == 0
            assert gauge(client, "auricle_transcriptions_waiting") == 0


def test_upload_limit_and_queue_limit(tmp_path):
    srv = start_server(
        tmp_path / "limits",
        {
            "AURICLE_MAX_UPLOAD_MB": "1",
            "AURICLE_WORKERS": "1",
            "AURICLE_MAX_QUEUE": "0",
            "AURICLE_DEFAULT_MODEL": "tiny.en",
        },
    )
    try:
        with srv.client() as client:
            big = client.post("/asr", files={"audio_file": ("big.wav", b"\0" * 1_200_000)})
            assert big.status_code == 413 and "limit" in big.json()["detail"]

            def post() -> httpx.Response:
                with srv.client() as c, open(GERMAN, "rb") as f:
                    return c.post("/v1/audio/transcriptions", files={"file": ("de.mp3", f)}, data={"model": "tiny.en"})

            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                results = list(pool.map(lambda _: post(), range(3)))
            statuses = sorted(r.status_code for r in results)
            assert statuses[0] == 200 and 503 in statuses
            busy = next(r for r in results if r.status_code == 503)
            assert busy.headers["retry-after"] and busy.json()["error"]["code"] == "queue_full"
            assert client.get("/health").status_code == 200
        assert not list((srv.data_dir / "spool").glob("*"))
    finally:
        srv.stop()


def websocket_status(url: str, headers: dict[str, str]) -> int:
    """The HTTP status of a WebSocket handshake (101 when it was accepted)."""
    import asyncio

    import websockets

    async def connect() -> int:
        try:
            async with websockets.connect(url, additional_headers=headers, open_timeout=30):
                return 101
        except websockets.InvalidStatus as exc:
            return int(exc.response.status_code)

    return asyncio.run(connect())


def test_api_keys(tmp_path):
    srv = start_server(
        tmp_path / "auth",
        {"AURICLE_API_KEYS": "k1,k2", "AURICLE_DEFAULT_MODEL": "tiny.en", "AURICLE_AUTH_FAIL_LIMIT": "5"},
    )
    try:
        good = openai.OpenAI(base_url=srv.url + "/v1", api_key="k2", max_retries=0)
        assert "tiny.en" in [m.id for m in good.models.list()]
        bad = openai.OpenAI(base_url=srv.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError) as refused, open(JFK, "rb") as f:
            bad.audio.transcriptions.create(model="whisper-1", file=f)
        assert refused.value.status_code == 401 and refused.value.body["code"] == "invalid_api_key"
        with srv.client() as client:
            assert client.get("/health").status_code == 200
            assert client.get("/ready").status_code == 200
            assert client.get("/metrics").status_code == 401  # no key: not counted as a failure
            assert client.get("/metrics", headers={"Authorization": "Bearer k1"}).status_code == 200
            # The WebSocket handshake is refused with the same statuses, before the upgrade
            assert websocket_status(srv.ws_url, {}) == 401  # no key: not counted
            assert websocket_status(srv.ws_url, {"Authorization": "Bearer k2"}) == 101
            for _ in range(4):  # failures 2 to 5
                assert client.post("/asr", headers={"Authorization": "Bearer nope"}).status_code == 401
            # Wrong keys from the address are locked out now; the right key from it is still served.
            locked = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
            assert locked.status_code == 429 and locked.headers["retry-after"] == "60"
            assert websocket_status(srv.ws_url, {"Authorization": "Bearer nope"}) == 429
            assert client.get("/v1/models", headers={"Authorization": "Bearer k1"}).status_code == 200
            assert websocket_status(srv.ws_url, {"Authorization": "Bearer k1"}) == 101
            assert client.get("/health").status_code == 200
    finally:
        srv.stop()


def test_logs_carry_request_ids_and_no_transcript_text(server):
    with server.client() as client, open(JFK, "rb") as f:
        response = client.post(
            "/asr",
            files={"audio_file": ("jfk.flac", f)},
            data={"model": "tiny.en"},
            headers={"X-Request-ID": "trace-123"},
        )
    assert response.headers["x-request-id"] == "trace-123"
    time.sleep(0.3)
    log = Path(server.log).read_text()
    assert "[trace-123]" in log
    assert "fellow Americans" not in log and "ask not" not in log


def test_openapi_schema_fuzz_finds_no_server_error(server):
    """A property-based run over our OpenAPI schema (schemathesis): no 5xx for any generated request."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    failures = []
    calls = []

    def fuzz(strategy) -> None:
        @given(strategy)
        @settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:
            response = case.call(base_url=server.url, timeout=60)
            calls.append(response.status_code)
            if response.status_code >= 500 and response.status_code != 503:
                failures.append((case.method, case.path, response.status_code, response.text[:200]))

        check()

    for path in (
        "/asr",
        "/detect-language",
        "/v1/audio/transcriptions",
        "/v1/audio/translations",
        "/v1/models/{model_id}",
        "/health",
        "/ready",
    ):
        for _method, operation in schema[path].items():
            fuzz(operation.as_strategy())
    assert len(calls) >= 40, "the fuzzer really sent requests"
    assert not failures, json.dumps(failures[:5], indent=1)
