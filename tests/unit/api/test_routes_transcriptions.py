"""``/asr``, ``/detect-language`` and ``/v1/audio/*`` in-process on the fake engine: shapes, formats, what reaches
the engine, and the errors real clients get."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from fakes import Script, wav_bytes

WAV = wav_bytes(2.0)


def asr(client: TestClient, params: dict[str, str] | None = None, **kwargs):
    return client.post("/asr", params=params or {}, files={"audio_file": ("clip.wav", WAV, "audio/wav")}, **kwargs)


# -- /asr --------------------------------------------------------------------------------------------------------


def test_asr_json_has_the_whisper_asr_webservice_shape(client: TestClient, script: Script) -> None:
    # When a file is posted with Speakr's query parameters
    response = asr(
        client, {"output": "json", "language": "en", "initial_prompt": "Names: Claflin", "hotwords": "Abbie"}
    )

    # Then the body is the transcript and the options reached the engine
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["text"] == "alpha bravo. bravo charlie."
    assert body["language"] == "en"
    assert [s["text"] for s in body["segments"]] == ["alpha bravo.", "bravo charlie."]
    assert response.headers["content-disposition"] == 'attachment; filename="clip.wav.json"'
    assert response.headers["asr-engine"] == "auricle"
    options = script.calls[-1]
    assert (options.initial_prompt, options.hotwords, options.language) == ("Names: Claflin", "Abbie", "en")


def test_asr_json_in_the_whisperx_service_shape_when_configured(make_client) -> None:
    # Given a server set to answer as WhisperX ASR services do
    client = make_client(asr_json_text_segments=True)
    # When a file is posted for JSON
    body = asr(client, {"output": "json", "word_timestamps": "true"}).json()
    # Then `text` is the segment list, words carry WhisperX's `score` beside `probability`
    assert [s["text"] for s in body["text"]] == ["alpha bravo.", "bravo charlie."]
    assert body["text"] == body["segments"] and 0 <= body["language_probability"] <= 1
    word = body["segments"][0]["words"][0]
    assert word["score"] == word["probability"]


@pytest.mark.parametrize(
    "output,media_type,ext,marker",
    [
        ("srt", "application/x-subrip", "srt", "00:00:00,000 --> 00:00:01,000"),
        ("vtt", "text/vtt", "vtt", "WEBVTT"),
        ("tsv", "text/tab-separated-values", "tsv", "start\tend\ttext"),
        ("txt", "text/plain", "txt", "alpha bravo."),
    ],
)
def test_asr_subtitle_and_text_outputs(client: TestClient, output, media_type, ext, marker) -> None:
    response = client.post("/asr", data={"output": output}, files={"audio_file": ("clip.wav", WAV)})
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(media_type)
    assert response.headers["content-disposition"].endswith(f'.{ext}"')
    assert marker in response.text


def test_asr_word_timestamps_and_translate_task(client: TestClient, script: Script) -> None:
    response = asr(client, {"word_timestamps": "true", "task": "translate"})
    assert response.status_code == 200, response.text
    words = response.json()["segments"][0]["words"]
    assert [w["word"].strip() for w in words] == ["alpha", "bravo."]
    assert script.calls[-1].task == "translate" and script.calls[-1].word_timestamps


def test_asr_raw_pcm_with_encode_false(client: TestClient) -> None:
    pcm = WAV[44:]  # the WAV's samples without the header: s16le 16 kHz mono
    response = client.post("/asr", params={"encode": "false"}, files={"audio_file": ("clip.pcm", pcm)})
    assert response.status_code == 200, response.text
    assert response.json()["segments"][-1]["end"] == pytest.approx(2.0, abs=0.01)


BAD = [
    ("/asr", {}, None, 400, "audio_file"),
    ("/asr", {}, ("empty.wav", b""), 415, "failed to decode audio"),
    ("/asr", {}, ("notes.mp3", b"this is not audio " * 100), 415, "failed to decode audio"),
    ("/asr", {"output": "docx"}, "wav", 400, "unknown output"),
    ("/asr", {"language": "klingon"}, "wav", 400, "unsupported language"),
    ("/asr", {"model": "nope"}, "wav", 404, "unknown model"),
    ("/asr", {"num_speakers": "many"}, "wav", 400, "whole number"),
    ("/asr", {"min_speakers": "3", "max_speakers": "2"}, "wav", 400, "min_speakers"),
    ("/asr", {"task": "summarise"}, "wav", 400, "task"),
    ("/asr", {"word_timestamps": "perhaps"}, "wav", 400, "true or false"),
    ("/asr", {"model": "tiny.en", "language": "de"}, "wav", 400, "English-only"),
    ("/detect-language", {}, None, 400, "audio_file"),
    ("/detect-language", {"model": "nope"}, "wav", 404, "unknown model"),
    ("/detect-language", {"encode": "maybe"}, "wav", 400, "true or false"),
    ("/v1/audio/transcriptions", {}, None, 400, "file"),
    ("/v1/audio/transcriptions", {"response_format": "pdf"}, "wav", 400, "response_format"),
    ("/v1/audio/transcriptions", {"temperature": "7"}, "wav", 400, "temperature"),
    ("/v1/audio/transcriptions", {"language": "xx"}, "wav", 400, "unsupported language"),
    ("/v1/audio/transcriptions", {"timestamp_granularities[]": "char"}, "wav", 400, "timestamp_granularities"),
    ("/v1/audio/transcriptions", {"model": "large-v3"}, "wav", 503, "not available offline"),
    ("/v1/audio/translations", {"model": "whisper-9000"}, "wav", 404, "unknown model"),
]


@pytest.mark.parametrize("path,fields,upload,status,message", BAD, ids=[f"{b[0]}-{b[3]}-{b[4]}" for b in BAD])
def test_bad_requests_get_clear_errors_and_leave_no_file(client: TestClient, path, fields, upload, status, message):
    field = "file" if path.startswith("/v1") else "audio_file"
    files = {field: ("clip.wav", WAV)} if upload == "wav" else {field: upload} if upload else None
    response = client.post(path, data=fields, files=files)
    assert response.status_code == status, response.text
    body = response.json()
    if path.startswith("/v1"):
        assert set(body["error"]) == {"message", "type", "param", "code"}
        text = body["error"]["message"]
    else:
        text = body["detail"]
    assert message.lower() in text.lower()
    spool = client.app.state.settings.spool_dir
    assert not [p for p in spool.glob("*") if p.is_file()], "no spooled upload is left behind"


# -- /detect-language --------------------------------------------------------------------------------------------


def test_detect_language_runs_as_a_job_and_names_the_language(client: TestClient, script: Script) -> None:
    # Given the engine hears German
    script.language, script.probability = "de", 0.91234
    detections, calls = script.detections, len(script.calls)
    try:
        response = client.post("/detect-language", files={"audio_file": ("de.wav", WAV)})
    finally:
        script.language, script.probability = "en", 0.97
    # Then the answer has the whisper-asr-webservice shape
    assert response.status_code == 200, response.text
    assert response.json() == {"detected_language": "german", "language_code": "de", "confidence": 0.9123}
    # And it detected without transcribing, and left no job behind
    assert script.detections == detections + 1 and len(script.calls) == calls
    assert client.get("/v1/jobs").json()["jobs"] == []


def test_detect_language_on_an_api_node_loads_no_model(make_client) -> None:
    """``local_workers=false`` with a shared SQLite store: the job runs on the worker node, not on the API node."""
    worker_script = Script(language="fr")
    api = make_client(Script(), local_workers=False)
    worker = make_client(worker_script, data_dir=api.app.state.settings.data_dir)
    response = api.post("/detect-language", files={"audio_file": ("fr.wav", WAV)})
    assert response.status_code == 200, response.text
    assert response.json()["language_code"] == "fr" and worker_script.detections == 1
    assert api.app.state.runtime.models.loaded() == {}
    assert worker.app.state.runtime.models.loaded() != {}


# -- /v1/audio ---------------------------------------------------------------------------------------------------


def test_openai_json_text_and_verbose_json(client: TestClient, script: Script) -> None:
    form = {"model": "whisper-1", "prompt": "Glossary: Claflin"}
    json_body = client.post("/v1/audio/transcriptions", data=form, files={"file": ("a.wav", WAV)}).json()
    assert json_body == {"text": "alpha bravo. bravo charlie."}
    assert script.calls[-1].initial_prompt == "Glossary: Claflin" and script.calls[-1].model == "base"

    text = client.post("/v1/audio/transcriptions", data={"response_format": "text"}, files={"file": ("a.wav", WAV)})
    assert text.headers["content-type"].startswith("text/plain") and "alpha bravo." in text.text

    verbose = client.post(
        "/v1/audio/transcriptions",
        data={"response_format": "verbose_json", "timestamp_granularities[]": ["word", "segment"]},
        files={"file": ("a.wav", WAV)},
    ).json()
    assert verbose["language"] == "english" and verbose["duration"] == pytest.approx(2.0)
    assert [w["word"] for w in verbose["words"]][:2] == ["alpha", "bravo."]
    assert len(verbose["segments"]) == 2


def test_openai_streaming_sends_deltas_then_done(client: TestClient) -> None:
    response = client.post("/v1/audio/transcriptions", data={"stream": "true"}, files={"file": ("a.wav", WAV)})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
    assert [e["type"] for e in events] == ["transcript.text.delta", "transcript.text.delta", "transcript.text.done"]
    assert events[-1]["text"] == "alpha bravo. bravo charlie."
    assert "".join(e["delta"] for e in events[:-1]).strip() == events[-1]["text"]


def test_openai_translation_asks_the_engine_to_translate(client: TestClient, script: Script) -> None:
    response = client.post("/v1/audio/translations", data={"response_format": "srt"}, files={"file": ("a.wav", WAV)})
    assert response.status_code == 200 and "-->" in response.text
    assert script.calls[-1].task == "translate" and script.calls[-1].language is None


def test_new_work_while_draining_is_503_draining_with_retry_after(make_client) -> None:
    # Given a server that began draining (SIGTERM)
    client = make_client()
    client.app.state.service.begin_drain()
    # When new work arrives, sync or background
    answers = [
        asr(client),
        client.post("/v1/jobs", files={"file": ("clip.wav", WAV, "audio/wav")}),
        client.post("/v1/audio/transcriptions", data={"model": "base"}, files={"file": ("clip.wav", WAV)}),
    ]
    # Then each is refused with 503 and a Retry-After, so a client retries on another instance
    for response in answers:
        assert response.status_code == 503, response.text
        assert response.headers.get("Retry-After") == "5", response.headers
        assert "shutting down" in response.text
    assert answers[1].json()["error"]["code"] == "draining"
