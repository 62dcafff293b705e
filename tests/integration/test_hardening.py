"""Defects found by a fault and bad-input run, each checked against a real ``auricle serve`` process: what the
client gets (status, headers, body) and that the connection and the log stay sound."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import websockets

from support import CORPUS, Server, start_server

pytestmark = [pytest.mark.slow, pytest.mark.model]

JFK = CORPUS / "audio" / "jfk.flac"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    srv = start_server(
        tmp_path_factory.mktemp("hardening"),
        {
            "AURICLE_DEFAULT_MODEL": "tiny.en",
            "AURICLE_PRELOAD_MODELS": "tiny.en",
            "AURICLE_STREAMING__MAX_TRANSCRIPT_BYTES": "2000",
        },
    )
    yield srv
    srv.stop()


def _multipart(field: str, filename: bytes, data: bytes) -> tuple[bytes, str]:
    """A multipart body whose filename is sent byte for byte (clients escape what an attacker would not)."""
    boundary = "auricleboundary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="'.encode()
        + filename
        + b'"\r\nContent-Type: application/octet-stream\r\n\r\n'
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def _wait_done(client: httpx.Client, job_id: str) -> dict:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def test_upload_names_cannot_inject_headers_and_uploads_are_never_served_as_pages(served: Server) -> None:
    with served.client() as client:
        # Given uploads named to inject a parameter and a path, and one that is an HTML page
        body, content_type = _multipart("file", b'../../x\\"; name=\\"evil.wav', JFK.read_bytes())
        job = client.post("/v1/jobs", content=body, headers={"Content-Type": content_type})
        assert job.status_code == 202, job.text
        job_id = job.json()["jobs"][0]["id"]
        page = b"<html><script>document.title='pwned'</script></html>"
        html = client.post("/v1/jobs", files={"file": ("page.html", page, "text/html")}).json()["jobs"][0]["id"]
        assert _wait_done(client, job_id)["status"] == "succeeded"
        # When their result and audio are fetched, the same pooled connection throughout
        result = client.get(f"/v1/jobs/{job_id}/result", params={"format": "srt"})
        disposition = result.headers["content-disposition"]
        # Then the header carries one clean filename: no quote break-out, no path, no injected parameter
        from email.message import Message

        parsed = Message()
        parsed["content-disposition"] = disposition
        params = dict(parsed.get_params(header="content-disposition") or [])
        assert set(params) == {"inline", "filename"}, disposition
        assert params["filename"] == "x name=evil.srt"
        audio = client.get(f"/v1/jobs/{html}/audio")
        assert audio.status_code == 200 and audio.content == page
        assert not audio.headers["content-type"].startswith(("text/", "image/svg"))
        assert audio.headers["content-disposition"].startswith("attachment")
        assert audio.headers["x-content-type-options"] == "nosniff"
        # A range past the end is a 416 that says why (and a satisfiable one still works).
        past = client.get(f"/v1/jobs/{html}/audio", headers={"Range": "bytes=99999-"})
        assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(page)}"
        assert "past the end" in past.json()["error"]["message"]
        assert client.get(f"/v1/jobs/{html}/audio", headers={"Range": "bytes=0-5"}).content == page[:6]
        assert "default-src 'self'" in client.get("/").headers["content-security-policy"]


def test_a_newline_in_an_upload_name_still_gets_an_answer(served: Server) -> None:
    body, content_type = _multipart("audio_file", b"talk\r\nX-Injected: yes.wav", JFK.read_bytes())
    with served.client() as client:
        response = client.post("/asr", content=body, headers={"Content-Type": content_type}, params={"output": "srt"})
        assert response.status_code == 200, response.text
        assert "x-injected" not in response.headers
        assert "\n" not in response.headers["content-disposition"]
        # The connection is still good for the next request.
        assert client.get("/health").status_code == 200


def test_raw_pcm_named_wav_is_transcribed(served: Server) -> None:
    from auricle.engine.decode import decode

    pcm = (decode(JFK).samples * 32767).astype("<i2").tobytes()
    with served.client() as client:
        response = client.post("/asr", params={"encode": "false"}, files={"audio_file": ("talk.wav", pcm)})
        assert response.status_code == 200, response.text
        assert "country" in response.text.lower()
        detected = client.post("/detect-language", params={"encode": "false"}, files={"audio_file": ("a.wav", pcm)})
        assert detected.status_code == 200, detected.text


def test_undecodable_audio_is_a_clean_error_everywhere(served: Server) -> None:
    junk = b"\x00\x01not audio at all" * 50
    with served.client() as client:
        # An SSE stream says why it ends,
        with client.stream(
            "POST", "/v1/audio/transcriptions", data={"stream": "true"}, files={"file": ("x.mp3", junk)}
        ) as stream:
            events = [json.loads(line[5:]) for line in stream.iter_lines() if line.startswith("data:")]
        assert events and events[-1]["type"] == "error", events
        assert "failed to decode audio" in events[-1]["error"]["message"]
        # and a plain request names neither a server path nor libav's text.
        plain = client.post("/asr", files={"audio_file": ("x.mp3", junk)})
        assert plain.status_code in (415, 422)
        message = plain.json()["detail"]
        assert "failed to decode audio" in message
        assert str(served.data_dir) not in message and "spool" not in message and "Errno" not in message


def test_list_paging_out_of_range_is_400(served: Server) -> None:
    with served.client() as client:
        for params in ({"offset": str(2**63)}, {"cursor": "9" * 40}, {"cursor": "١٢"}, {"offset": "-1"}):
            response = client.get("/v1/jobs", params=params)
            assert response.status_code == 400, (params, response.status_code, response.text)


def test_control_characters_in_a_path_do_not_forge_log_lines(served: Server) -> None:
    with served.client() as client:
        client.get("/v1/nothing%0D%0AFORGED-LINE%1B[31m")
    time.sleep(0.3)
    lines = served.log.read_text(errors="replace").splitlines()
    assert not any(line.startswith("FORGED-LINE") for line in lines)
    assert any("FORGED-LINE" in line and "\\x0d\\x0a" in line for line in lines)


def test_websocket_deep_json_huge_numbers_and_oversized_checkpoints_are_invalid_messages(served: Server) -> None:
    async def run() -> tuple[list[dict], int | None]:
        replies = []
        async with websockets.connect(served.ws_url, max_size=None) as ws:
            for text in (
                "[" * 100_000,
                '{"a":' * 50_000,
                '{"type": "speech.config", "payload": {"sample_rate": ' + "9" * 5000 + "}}",
                json.dumps(
                    {
                        "type": "speech.config",
                        "payload": {"resume_checkpoint": {"session_id": "s", "full_transcript": "word " * 1000}},
                    }
                ),
            ):
                await ws.send(text)
                replies.append(json.loads(await ws.recv()))
            # The session is still usable after all that.
            await ws.send(json.dumps({"type": "speech.config", "payload": {}}))
            replies.append(json.loads(await ws.recv()))
            silence = (np.zeros(16000, dtype="<i2")).tobytes()
            await ws.send(silence)
            await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
            async for _ in ws:
                pass
        return replies, ws.close_code

    replies, code = asyncio.run(run())
    assert [r["type"] for r in replies[:4]] == ["speech.error"] * 4, replies
    assert {r["payload"]["code"] for r in replies[:4]} == {"INVALID_MESSAGE"}
    assert replies[4]["type"] == "speech.config.ack"
    assert code == 1000


def test_forwarded_addresses_are_not_believed_from_an_untrusted_peer(tmp_path: Path) -> None:
    # Given a server with keys and a lock-out after 2 wrong keys, and no trusted proxies
    server = start_server(
        tmp_path / "keys",
        {"AURICLE_API_KEYS": "right", "AURICLE_AUTH_FAIL_LIMIT": "2", "AURICLE_DEFAULT_MODEL": "tiny.en"},
        wait_ready=False,
    )
    try:
        with server.client() as client:
            # When a local client sends wrong keys, each claiming another address
            for i in range(2):
                wrong = {"Authorization": "Bearer wrong", "X-Forwarded-For": f"203.0.113.{i}"}
                assert client.get("/v1/models", headers=wrong).status_code == 401
            # Then the lock-out follows its real address, whatever it claims next,
            spoofed = {"Authorization": "Bearer wrong", "X-Forwarded-For": "198.51.100.7"}
            assert client.get("/v1/models", headers=spoofed).status_code == 429
            # and the right key from the same address still works.
            assert client.get("/v1/models", headers={"Authorization": "Bearer right"}).status_code == 200
    finally:
        server.stop()
