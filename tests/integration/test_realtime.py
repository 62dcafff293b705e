"""OpenAI Realtime transcription sessions (`/v1/realtime?intent=transcription`) with the official `openai` SDK's
realtime client, against a real server process, the real model and real speech at 24 kHz.

The batch baseline is the same server's `/asr` on the same recording with the same model.
"""

from __future__ import annotations

import asyncio
import base64
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import websockets
from openai import AsyncOpenAI

from support import CORPUS, Server, english_with_reference, normalise, start_server, wer

pytestmark = [pytest.mark.slow, pytest.mark.model]

KEY = "realtime-secret"
MODEL = "tiny.en"
RATE = 24_000
CHUNK_MS = 100
JFK = "en_jfk_inaugural"
LIBRI = "en_librispeech_1995-1837-0001"
LJ = "en_ljspeech_LJ050-0131"
ENTRIES = {e["id"]: e for e in english_with_reference()}
SERVER_VAD = {"type": "server_vad", "threshold": 0.5, "prefix_padding_ms": 300, "silence_duration_ms": 500}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start_server(
        tmp_path_factory.mktemp("realtime"),
        {
            "AURICLE_DEFAULT_MODEL": MODEL,
            "AURICLE_PRELOAD_MODELS": MODEL,
            "AURICLE_API_KEYS": KEY,
            "AURICLE_STREAMING__SESSION_LIMIT": "2",
        },
    )
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def speech() -> dict[str, bytes]:
    """Corpus recordings as 16-bit PCM at 24 kHz (OpenAI's `audio/pcm`)."""
    import soxr

    from auricle.engine.decode import decode

    out = {}
    for key in (JFK, LIBRI, LJ):
        samples = soxr.resample(decode(CORPUS / ENTRIES[key]["audio"]).samples, 16_000, RATE)
        out[key] = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    return out


@dataclass
class Batch:
    """The batch transcription of a recording by the same server and model (`POST /asr`)."""

    text: str
    speech_end_ms: float
    """Where its last word ends."""


@pytest.fixture(scope="module")
def batch(server) -> dict[str, Batch]:
    out = {}
    with server.client(headers={"Authorization": f"Bearer {KEY}"}) as http:
        for key in (JFK, LIBRI, LJ):
            with open(CORPUS / ENTRIES[key]["audio"], "rb") as f:
                params = {"output": "json", "word_timestamps": "true"}
                response = http.post("/asr", params=params, files={"audio_file": f})
            response.raise_for_status()
            body = response.json()
            out[key] = Batch(body["text"], body["segments"][-1]["words"][-1]["end"] * 1000)
    return out


def silence(seconds: float) -> bytes:
    return b"\x00\x00" * int(RATE * seconds)


def chunks(pcm: bytes, ms: int = CHUNK_MS) -> list[bytes]:
    step = RATE * ms // 1000 * 2
    return [pcm[i : i + step] for i in range(0, len(pcm), step)]


# -- an SDK client ----------------------------------------------------------------------------------------------------


@dataclass
class Transcript:
    """What the server sent on one connection, as the SDK parsed it."""

    events: list[Any] = field(default_factory=list)

    def of(self, kind: str) -> list[Any]:
        return [e for e in self.events if e.type == kind]

    @property
    def kinds(self) -> list[str]:
        return [e.type for e in self.events]

    def completed(self) -> list[str]:
        return [e.transcript for e in self.of("conversation.item.input_audio_transcription.completed")]

    def text(self) -> str:
        return " ".join(t for t in self.completed() if t.strip())


def sdk(server: Server, key: str = KEY) -> AsyncOpenAI:
    return AsyncOpenAI(base_url=f"{server.url}/v1", api_key=key)


def session_config(turn_detection: dict | None, audio_format: dict | None = None, **transcription: Any) -> dict:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": audio_format or {"type": "audio/pcm", "rate": RATE},
                "transcription": {"model": MODEL, "language": "en", **transcription},
                "turn_detection": turn_detection,
                "noise_reduction": {"type": "near_field"},
            }
        },
        "include": ["item.input_audio_transcription.logprobs"],
    }


async def run_session(
    server: Server,
    parts: list[bytes],
    *,
    turn_detection: dict | None = SERVER_VAD,
    speed: float = 1.0,
    audio_format: dict | None = None,
    speech_end_ms: float | None = None,
) -> Transcript:
    """Stream ``parts`` in 100 ms appends at ``speed`` times real time (0: unpaced); return the events.

    With ``server_vad`` the server commits: the session ends once the items up to ``speech_end_ms`` (where the last
    words end) are completed. Without, the client commits after each part and the session ends once every commit's
    item is completed.
    """
    result = Transcript()
    client = sdk(server)

    def finished() -> bool:
        committed = len(result.of("input_audio_buffer.committed"))
        if not committed or len(result.of("conversation.item.done")) != committed:
            return False
        if turn_detection is None:
            return committed == len(parts)
        stopped = result.of("input_audio_buffer.speech_stopped")
        return len(stopped) == committed and stopped[-1].audio_end_ms >= (speech_end_ms or 0)

    async with client.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"}) as conn:
        await conn.session.update(session=session_config(turn_detection, audio_format))

        async def send() -> None:
            for part in parts:
                for chunk in chunks(part):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
                    if speed:
                        await asyncio.sleep(CHUNK_MS / 1000 / speed)
                if turn_detection is None:
                    await conn.input_audio_buffer.commit()

        sender = asyncio.create_task(send())
        while not finished():
            result.events.append(await asyncio.wait_for(conn.recv(), 60))
        await sender
    await client.close()
    return result


def assert_well_ordered(result: Transcript) -> None:
    """Every server event has an id; each item's deltas come before its completion; completions in commit order."""
    assert result.kinds[0] == "session.created" and all(e.event_id for e in result.events)
    committed = [e.item_id for e in result.of("input_audio_buffer.committed")]
    completed = [e.item_id for e in result.of("conversation.item.input_audio_transcription.completed")]
    assert completed == committed
    previous = [e.previous_item_id for e in result.of("input_audio_buffer.committed")]
    assert previous == [None, *committed[:-1]]
    # Each committed item is added to the conversation, and done with its transcript
    assert [e.item.id for e in result.of("conversation.item.added")] == committed
    done = result.of("conversation.item.done")
    assert [(e.item.id, e.item.content[0].transcript) for e in done] == list(
        zip(committed, result.completed(), strict=True)
    )
    spelled = []
    for item_id in committed:
        indices = [i for i, e in enumerate(result.events) if getattr(e, "item_id", None) == item_id]
        kinds = [result.events[i].type for i in indices]
        assert kinds[-1] == "conversation.item.input_audio_transcription.completed", kinds
        deltas = [result.events[i].delta for i in indices if result.events[i].type.endswith(".delta")]
        final = result.events[indices[-1]]
        assert result.events.index(done[committed.index(item_id)]) > indices[-1]
        assert final.usage.type == "duration" and final.usage.seconds >= 0
        if final.transcript:
            assert deltas, kinds
        # A long turn the recognizer ends at a clause end may have shown words past it: they come again in the
        # next item, so an item's deltas start with its transcript
        spelled.append(" ".join("".join(deltas).split()[: len(final.transcript.split())]))
    # The deltas spell out the transcripts (a final decode may still correct a word agreed earlier)
    assert wer([" ".join(result.completed())], [" ".join(spelled)]) <= 0.15, (spelled, result.completed())


def assert_close_to_batch(key: str, streamed: str, batch: dict[str, Batch]) -> None:
    reference = ENTRIES[key]["reference"]
    got, baseline = wer([reference], [streamed]), wer([reference], [batch[key].text])
    print(f"{key}: realtime WER {got:.3f}, batch WER {baseline:.3f}")
    assert got <= baseline + 0.02 + 1e-9, (streamed, batch[key].text)


# -- server_vad: the server commits -------------------------------------------------------------------------------


def test_server_vad_at_real_time_and_at_twice_real_time(server, speech, batch):
    # Given two server_vad sessions at once: one sent at real-time pace, one at twice that, each ending in a pause
    async def both() -> tuple[Transcript, Transcript]:
        real_time = run_session(
            server, [speech[LIBRI] + silence(2.5)], speed=1.0, speech_end_ms=batch[LIBRI].speech_end_ms - 500
        )
        twice = run_session(
            server, [speech[JFK] + silence(2.5)], speed=2.0, speech_end_ms=batch[JFK].speech_end_ms - 500
        )
        return await asyncio.gather(real_time, twice)

    real_time, twice = asyncio.run(both())
    for key, result in ((LIBRI, real_time), (JFK, twice)):
        # Then the server found the speech, committed it as items and transcribed them as well as batch does
        started = result.of("input_audio_buffer.speech_started")
        stopped = result.of("input_audio_buffer.speech_stopped")
        assert started and stopped, result.kinds
        assert 0 <= started[0].audio_start_ms < stopped[0].audio_end_ms <= 12_500
        assert result.kinds.index("conversation.item.input_audio_transcription.delta") < result.kinds.index(
            "conversation.item.input_audio_transcription.completed"
        )
        assert_well_ordered(result)
        assert_close_to_batch(key, result.text(), batch)
    updated = real_time.of("session.updated")[0].session
    assert updated.audio.input.turn_detection.type == "server_vad"
    assert updated.audio.input.transcription.model == MODEL
    first = real_time.of("conversation.item.input_audio_transcription.completed")[0]
    assert first.logprobs and first.logprobs[0].logprob <= 0


# -- turn_detection null: the client commits ----------------------------------------------------------------------


def test_manual_commits_are_transcribed_in_commit_order(server, speech, batch):
    # Given three recordings, each committed by the client, sent as fast as the server reads them
    keys = [LJ, JFK, LIBRI]
    result = asyncio.run(run_session(server, [speech[k] for k in keys], turn_detection=None, speed=0))
    # Then there is one item per commit, completed in commit order, each as good as batch; no VAD events
    assert len(result.completed()) == 3
    assert not result.of("input_audio_buffer.speech_started")
    assert_well_ordered(result)
    for key, text in zip(keys, result.completed(), strict=True):
        assert_close_to_batch(key, text, batch)


def test_g711_mu_law_input(server, speech):
    import audioop

    import soxr

    pcm = np.frombuffer(speech[JFK], dtype="<i2").astype(np.float32) / 32768
    # Given the first 5.5 s ("And so my fellow Americans, ask not") as a telephone line carries them: 8 kHz mu-law
    narrow = (np.clip(soxr.resample(pcm[: RATE * 11 // 2], RATE, 8000), -1, 1) * 32767).astype("<i2").tobytes()
    ulaw = audioop.lin2ulaw(narrow, 2)
    result = asyncio.run(run_session(server, [ulaw], turn_detection=None, speed=0, audio_format={"type": "audio/pcmu"}))
    # Then the session decodes it as G.711 and transcribes it
    assert result.of("session.updated")[0].session.audio.input.format.type == "audio/pcmu"
    text = normalise(result.text())
    assert "fellow america" in text and text.endswith("ask not"), text


# -- errors -------------------------------------------------------------------------------------------------------


BAD_EVENTS = {
    "bad json": "{not json",
    "unknown type": json.dumps({"type": "response.create", "event_id": "evt_1"}),
    "bad base64": json.dumps({"type": "input_audio_buffer.append", "audio": "***", "event_id": "evt_2"}),
    "odd-length pcm": json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x00").decode()}),
    "commit of an empty buffer": json.dumps({"type": "input_audio_buffer.commit", "event_id": "evt_3"}),
    "wrong format": json.dumps(
        {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "x"}}}}}
    ),
    "rate out of range": json.dumps(
        {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"rate": 10}}}}}
    ),
    "realtime session": json.dumps({"type": "session.update", "session": {"type": "realtime"}}),
    "unknown model": json.dumps(
        {
            "type": "session.update",
            "session": {"type": "transcription", "audio": {"input": {"transcription": {"model": "nope"}}}},
        }
    ),
    "missing type": json.dumps({"audio": ""}),
    "binary frame": b"\x00\x01",
}


def test_every_bad_event_gets_an_error_while_another_session_keeps_working(server, speech, batch):
    async def scenario() -> tuple[Transcript, dict[str, Any], Transcript]:
        healthy = run_session(
            server, [speech[JFK] + silence(2.5)], speed=2.0, speech_end_ms=batch[JFK].speech_end_ms - 500
        )
        healthy = asyncio.create_task(healthy)
        errors: dict[str, Any] = {}
        client = sdk(server)
        after = Transcript()
        async with client.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"}) as conn:
            assert (await conn.recv()).type == "session.created"
            for name, raw in BAD_EVENTS.items():
                await conn.send_raw(raw)
                errors[name] = await asyncio.wait_for(conn.recv(), 30)
            # And the same session still works after all of them
            await conn.session.update(session=session_config(None))
            after.events.append(await conn.recv())
            # (audio that is cleared is not transcribed)
            for chunk in chunks(speech[LIBRI][: RATE * 2 * 2]):
                await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await conn.input_audio_buffer.clear()
            after.events.append(await conn.recv())
            for chunk in chunks(speech[JFK][: RATE * 2 * 4]):
                await conn.input_audio_buffer.append(audio=base64.b64encode(chunk).decode())
            await conn.input_audio_buffer.commit()
            while not after.completed():
                after.events.append(await asyncio.wait_for(conn.recv(), 30))
            # And with two sessions open, a third is over the server's limit of two
            url = server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
            async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {KEY}"}) as third:
                refused = json.loads(await third.recv())
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(third.recv(), 10)
                errors["over the session limit"] = refused
                errors["close code"] = third.close_code
        await client.close()
        return await healthy, errors, after

    healthy, errors, after = asyncio.run(scenario())
    refused, code = errors.pop("over the session limit"), errors.pop("close code")
    assert refused["type"] == "error" and refused["error"]["code"] == "session_limit" and code == 1013
    for name, event in errors.items():
        assert event.type == "error", (name, event)
        assert event.event_id and event.error.type == "invalid_request_error" and event.error.message, name
    assert errors["unknown type"].error.event_id == "evt_1"
    assert errors["bad base64"].error.event_id == "evt_2"
    assert errors["commit of an empty buffer"].error.code == "input_audio_buffer_commit_empty"
    assert errors["wrong format"].error.param == "session.audio.input.format"
    assert [e.type for e in after.events[:2]] == ["session.updated", "input_audio_buffer.cleared"]
    assert "fellow americans" in normalise(after.text()) and "sorrow" not in normalise(after.text())
    assert_close_to_batch(JFK, healthy.text(), batch)
    # The errors are counted with their codes, in the metrics /transcribe reports to
    metrics = server.client(headers={"Authorization": f"Bearer {KEY}"}).get("/metrics").text
    assert 'auricle_stream_errors_total{code="input_audio_buffer_commit_empty"} 1.0' in metrics
    assert 'auricle_stream_errors_total{code="session_limit"} 1.0' in metrics


# -- authentication -----------------------------------------------------------------------------------------------


def test_a_wrong_key_is_refused_before_the_upgrade(server):
    async def sdk_status(key: str) -> int:
        client = sdk(server, key)
        try:
            async with client.realtime.connect(model="whisper-1", extra_query={"intent": "transcription"}) as conn:
                return 101 if (await conn.recv()).type == "session.created" else 0
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
        finally:
            await client.close()

    async def browser_status(subprotocols: list[str]) -> int:
        url = server.url.replace("http://", "ws://") + "/v1/realtime?intent=transcription"
        try:
            async with websockets.connect(url, subprotocols=subprotocols) as ws:
                assert ws.subprotocol == "realtime"
                return 101 if json.loads(await ws.recv())["type"] == "session.created" else 0
        except websockets.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(sdk_status("wrong")) == 401
    assert asyncio.run(sdk_status(KEY)) == 101
    # A browser cannot send headers on a WebSocket: it offers the key as a subprotocol, as OpenAI accepts
    assert asyncio.run(browser_status(["realtime", f"openai-insecure-api-key.{KEY}"])) == 101
    assert asyncio.run(browser_status(["realtime", "openai-insecure-api-key.wrong"])) == 401
    # And wrong keys from an address that keeps failing are locked out (429), the lock-out /transcribe has; the
    # right key from the same (possibly shared) address is still let in.
    # (Last in the module: the lock-out lasts the server's window.)
    statuses = [asyncio.run(sdk_status("wrong")) for _ in range(10)]
    assert statuses[-1] == 429 and set(statuses) == {401, 429}
    assert asyncio.run(sdk_status(KEY)) == 101
