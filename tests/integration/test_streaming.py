"""WebSocket `/transcribe` against a real server process, with a client written only from the protocol contract
(the OpenASR streaming protocol, summarised in the `auricle.streaming` package docstring).

The client below uses nothing but `websockets` and `json`; the project is imported only to compute the batch
baseline (faster-whisper on the same model directory) and to decode corpus files to PCM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import websockets

from support import CORPUS, Server, corpus_entries, english_with_reference, normalise, start_server, wer

pytestmark = [pytest.mark.slow, pytest.mark.model]

FRAME_MS = 200


# -- a client written from the protocol contract only ---------------------------------------------------------------


@dataclass
class StreamResult:
    """What a session sent back."""

    messages: list[dict] = field(default_factory=list)
    final_text: str | None = None
    checkpoints: list[dict] = field(default_factory=list)
    close_code: int | None = None
    """How the server closed the connection (1000 after a completed session)."""
    sent_at: list[float] = field(default_factory=list)
    """Clock time each audio frame was sent."""
    arrived_at: list[float] = field(default_factory=list)
    """Clock time each message arrived (parallel to ``messages``)."""

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.messages if m["type"] == kind]


async def stream(
    url: str,
    frames: list[bytes],
    *,
    config: dict | None = None,
    pace_s: float = 0.0,
    headers: dict | None = None,
    stop_after_checkpoint_ms: int | None = None,
) -> StreamResult:
    """Send ``speech.config``, the frames (paced or not), ``speech.end``; collect every server message."""
    result = StreamResult()
    async with websockets.connect(url, additional_headers=headers or {}, max_size=None) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": config or {}}))
        ack = json.loads(await ws.recv())
        assert ack["type"] == "speech.config.ack", ack
        result.messages.append(ack)
        result.arrived_at.append(time.perf_counter())
        done = asyncio.Event()

        async def send() -> None:
            for frame in frames:
                if done.is_set():
                    return
                if pace_s:
                    # Paced against the clock, so a slow send does not slow the stream down.
                    start = result.sent_at[0] if result.sent_at else time.perf_counter()
                    await asyncio.sleep(max(0.0, start + len(result.sent_at) * pace_s - time.perf_counter()))
                result.sent_at.append(time.perf_counter())
                await ws.send(frame)
            if stop_after_checkpoint_ms is None:
                await ws.send(json.dumps({"type": "speech.end", "payload": {}}))

        sender = asyncio.create_task(send())
        try:
            async for raw in ws:
                message = json.loads(raw)
                result.messages.append(message)
                result.arrived_at.append(time.perf_counter())
                if message["type"] == "speech.checkpoint":
                    result.checkpoints.append(message["payload"])
                    last = message["payload"]["last_audio_ms"]
                    if stop_after_checkpoint_ms is not None and last >= stop_after_checkpoint_ms:
                        break
                if message["type"] == "speech.phrase" and message["payload"]["status"] == "EndOfStream":
                    result.final_text = message["payload"]["text"]
        except websockets.ConnectionClosed:
            pass  # an error close: close_code says which
        done.set()
        sender.cancel()
    result.close_code = ws.close_code
    return result


def assert_completed(result: StreamResult) -> None:
    """The session ended as the contract says: the final phrase, then the final checkpoint, then a normal close."""
    assert result.final_text is not None
    assert [m["type"] for m in result.messages[-2:]] == ["speech.phrase", "speech.checkpoint"]
    assert result.checkpoints[-1]["full_transcript"] == result.final_text
    assert result.close_code == 1000


def pcm_frames(samples: np.ndarray, rate: int = 16000, frame_ms: int = FRAME_MS) -> list[bytes]:
    data = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    step = rate * frame_ms // 1000 * 2
    return [data[i : i + step] for i in range(0, len(data), step)]


# -- server processes ------------------------------------------------------------------------------------------------


def start(data_dir: Path, **env: str) -> Server:
    """A real server with tiny.en as its default model (the shared starter; /health is enough here)."""
    return start_server(data_dir, {"AURICLE_DEFAULT_MODEL": "tiny.en", **env}, wait_ready=False)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = start(tmp_path_factory.mktemp("stream"), AURICLE_PRELOAD_MODELS="tiny.en,base")
    yield srv
    srv.stop()


def streaming_limits(tmp_path_factory, name: str, **limits: str):
    """A server with the given ``AURICLE_STREAMING__*`` settings, for the length of a module."""
    srv = start(tmp_path_factory.mktemp(name), **{f"AURICLE_STREAMING__{k.upper()}": v for k, v in limits.items()})
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory):
    """Small limits: 2 sessions, 64 kB frames, a 6 s audio buffer."""
    yield from streaming_limits(tmp_path_factory, "strict", session_limit="2", max_frame_bytes="65536", buffer_s="6")


@pytest.fixture(scope="module")
def limits_server(tmp_path_factory):
    """Short limits: 2 s idle timeout, 8 s sessions, 200-byte transcripts."""
    yield from streaming_limits(
        tmp_path_factory, "limits", idle_timeout_s="2", max_session_s="8", max_transcript_bytes="200"
    )


@pytest.fixture(scope="module")
def audio():
    from auricle.engine.decode import decode

    return {e["id"]: decode(CORPUS / e["audio"]).samples for e in english_with_reference()}


@pytest.fixture(scope="module")
def whisper_model():
    """model name -> faster-whisper on the server's model directory (int8, CPU), loaded on first use."""
    from faster_whisper import WhisperModel

    from auricle.config import Settings
    from auricle.models.registry import ModelRegistry

    models: dict[str, WhisperModel] = {}

    def load(name: str) -> WhisperModel:
        if name not in models:
            path = ModelRegistry(Settings()).resolve(name)
            models[name] = WhisperModel(str(path), device="cpu", compute_type="int8")
        return models[name]

    return load


@pytest.fixture(scope="module")
def batch_texts(audio, whisper_model):
    """model name -> {entry id: batch transcription with that model (faster-whisper defaults, beam 5)}."""
    cache: dict[tuple[str, int], dict[str, str]] = {}

    def texts(name: str, rate: int = 16000) -> dict[str, str]:
        """Batch of the audio as the server hears it when a client sends it at ``rate`` (band-limited below 16 kHz)."""
        import soxr

        if (name, rate) not in cache:
            model = whisper_model(name)
            cache[(name, rate)] = {}
            for key, samples in audio.items():
                if rate != 16000:
                    samples = soxr.resample(soxr.resample(samples, 16000, rate), rate, 16000)
                segments, _ = model.transcribe(samples, language="en", beam_size=5)
                cache[(name, rate)][key] = " ".join(s.text.strip() for s in segments)
        return cache[(name, rate)]

    return texts


@pytest.fixture(scope="module")
def batch_text(batch_texts):
    """Batch transcriptions with tiny.en, the test server's default model."""
    return batch_texts("tiny.en")


ENTRIES = {e["id"]: e for e in english_with_reference()}
EN_IDS = list(ENTRIES)


# -- (a) accuracy ----------------------------------------------------------------------------------------------------


# Accuracy is measured on the default model, base. With tiny.en, phrase boundaries depend on how decodes fall in
# time, and on the 108-word sonnet its streamed WER ranges over about 6.5-15% against 9.3% in batch (a few
# Shakespearean words decoded either way); base stays at or under its batch WER. The note on issue 6 has the runs.
ACCURACY_MODEL = "base"


def word_errors(reference: str, text: str) -> int:
    return round(wer([reference], [text]) * len(normalise(reference).split()))


def compared_to_batch(runs: list[tuple[str, int, str, str]]) -> tuple[float, float, list[tuple[str, int, str, str]]]:
    """Streamed and batch WER over all ``runs`` (entry id, sample rate, streamed text, batch text), and the runs
    that lost more than 2 words or 5 % of their words against batch: a dropped or repeated phrase costs several
    words. (On files of 16-30 words one word is 3-6 WER points, and which way Whisper decodes a word can depend on
    where a phrase ends, which depends on how steps fall in time.)"""
    streamed_errors = batch_errors = words = 0
    faults = []
    for entry_id, rate, text, batch_text in runs:
        reference = ENTRIES[entry_id]["reference"]
        count = len(normalise(reference).split())
        streamed, batch = word_errors(reference, text), word_errors(reference, batch_text)
        print(f"{entry_id} ({rate} Hz): {streamed} word errors streamed, {batch} in batch, of {count}")
        streamed_errors, batch_errors, words = streamed_errors + streamed, batch_errors + batch, words + count
        if streamed - batch > max(2, 0.05 * count):
            faults.append((entry_id, rate, text, batch_text))
    print(f"all: stream WER {streamed_errors / words:.3f}, batch WER {batch_errors / words:.3f}")
    return streamed_errors / words, batch_errors / words, faults


def test_unpaced_streams_match_batch_accuracy(server, audio, batch_texts):
    # Given a client that sends each English file as fast as the socket allows
    config = {"model_id": ACCURACY_MODEL}
    runs = []
    for entry_id in EN_IDS:
        result = asyncio.run(stream(server.ws_url, pcm_frames(audio[entry_id]), config=config))
        assert result.final_text is not None
        runs.append((entry_id, 16000, result.final_text, batch_texts(ACCURACY_MODEL)[entry_id]))
        # And the phrases concatenate to the final transcript, followed by the final checkpoint
        phrases = [m["payload"] for m in result.of("speech.phrase") if m["payload"]["status"] == "Success"]
        assert normalise(" ".join(p["text"] for p in phrases)) == normalise(result.final_text)
        assert_completed(result)
    # Then over all files the streamed WER is within 2 points of the batch transcription with the same model, and
    # no file loses a phrase (issue 13 aims at 1 point on every file)
    streamed, batch, faults = compared_to_batch(runs)
    assert not faults
    assert streamed <= batch + 0.02


def resampled_frames(samples: np.ndarray, rate: int) -> list[bytes]:
    """PCM frames of ``samples`` (16 kHz) resampled to ``rate``, as a telephone client would send them."""
    import soxr

    return pcm_frames(soxr.resample(samples, 16000, rate), rate)


def test_real_time_paced_streams_match_batch_accuracy(server, audio, batch_texts):
    # Given a client that sends each English file at real-time pace (as a microphone would), at 16 kHz and then at
    # 8 kHz (one at a time: two base streams at once overload 2 cores, and accuracy under overload is another
    # property)
    config = {"model_id": ACCURACY_MODEL}
    runs = []
    for entry_id in EN_IDS:
        for rate in (16000, 8000):
            frames = pcm_frames(audio[entry_id]) if rate == 16000 else resampled_frames(audio[entry_id], rate)
            payload = {**config, "sample_rate": rate}
            result = asyncio.run(stream(server.ws_url, frames, config=payload, pace_s=FRAME_MS / 1000))
            assert result.of("speech.hypothesis"), "partial results arrive while audio is still being sent"
            # Batch: the same model on the same audio (at 8 kHz band-limited as the server hears it)
            runs.append((entry_id, rate, result.final_text or "", batch_texts(ACCURACY_MODEL, rate)[entry_id]))
    # Then over all files and both rates the streamed WER is within 2 points of batch, and no file loses a phrase
    # (issue 13 aims at 1 point on every file)
    streamed, batch, faults = compared_to_batch(runs)
    assert not faults
    assert streamed <= batch + 0.02


def boundary_faults(
    phrases: list[dict], said_twice: Callable[[float, list[str]], bool] = lambda *_: False
) -> list[str]:
    """Repeats and cuts across phrase boundaries: the same audio decoded twice shows as an n-gram ending one phrase
    that starts the next within a second of its end (n = 2-4; later, people do say things again) or, for one word,
    inside its time; or a word cut in two ("America. | American", "self | -substantial").

    People also say a thing twice in a row ("and he's Ed. And he's Ed.", an AMI speaker spelling a name):
    ``said_twice(t, words)`` tells whether a batch decode hears some of ``words`` said twice in a row around session
    time ``t`` (s); a repeat there is speech, not a fault.
    """
    faults = []
    for first, second in zip(phrases, phrases[1:], strict=False):
        before, after = first["text"], second["text"]
        left, right = normalise(before).split(), normalise(after).split()
        if not left or not right:
            continue
        end = first["offset"] + first["duration"]
        # One word said twice ("Okay. Okay.") happens in speech, but not within the time of the first.
        sizes = range(1, 5) if second["offset"] < end else range(2, 5) if second["offset"] < end + 1000 else range(0)
        repeated = [n for n in sizes if len(left) >= n and len(right) >= n and left[-n:] == right[:n]]
        if repeated and not said_twice(end / 1000, left[-max(repeated) :]):
            faults += [f"repeated {' '.join(left[-n:])!r}: {before!r} | {after!r}" for n in repeated]
        if after.lstrip()[:1] == "-" or (left[-1] != right[0] and right[0].startswith(left[-1]) and len(left[-1]) > 3):
            faults.append(f"word cut: {before!r} | {after!r}")
    return faults


def batch_repeats(model, samples: np.ndarray) -> Callable[[float, list[str]], bool]:
    """Whether a batch decode (word times, beam 5) hears 1-4 words said twice in a row within 3 s of a time (s),
    one of them among given words (the decodes may hear the rest differently: "and he's Ed" for "and he's dead")."""
    segments, _ = model.transcribe(samples, language="en", beam_size=5, word_timestamps=True)
    words = [(w.start, normalise(w.word)) for s in segments for w in s.words or [] if normalise(w.word)]
    texts = [text for _, text in words]
    repeats = [
        (words[i][0], set(texts[i : i + n]))
        for n in range(1, 5)
        for i in range(len(words) - 2 * n + 1)
        if texts[i : i + n] == texts[i + n : i + 2 * n]
    ]
    return lambda t, said: any(abs(start - t) <= 3.0 and heard & set(said) for start, heard in repeats)


def confirmed_latencies(result: StreamResult, frame_ms: int = FRAME_MS) -> list[float]:
    """Seconds from sending the frame holding a word's end to receiving its phrase (words spread over the span)."""
    latencies = []
    for message, arrived in zip(result.messages, result.arrived_at, strict=True):
        payload = message["payload"]
        if message["type"] != "speech.phrase" or payload["status"] != "Success" or not result.sent_at:
            continue
        count = len(payload["text"].split())
        for index in range(count):
            end_ms = payload["offset"] + payload["duration"] * (index + 1) / count
            frame = min(int(end_ms // frame_ms), len(result.sent_at) - 1)
            latencies.append(arrived - result.sent_at[frame])
    return latencies


ALL_EN = [e for e in corpus_entries() if e["language"] == "en"]


def test_phrases_are_in_order_without_repeats_or_cuts_on_every_english_file(server, whisper_model):
    # Given every English corpus file, streamed at real-time pace, four sessions at a time (tiny.en)
    from auricle.engine.decode import decode

    limit = asyncio.Semaphore(4)

    async def one(entry: dict) -> tuple[str, np.ndarray, StreamResult]:
        async with limit:
            samples = decode(entry["path"]).samples
            return entry["id"], samples, await stream(server.ws_url, pcm_frames(samples), pace_s=FRAME_MS / 1000)

    async def everything() -> list[tuple[str, np.ndarray, StreamResult]]:
        return await asyncio.gather(*(one(e) for e in ALL_EN))

    latencies: list[float] = []
    for entry_id, samples, result in asyncio.run(everything()):
        assert result.final_text is not None and result.close_code == 1000, entry_id
        phrases = [m["payload"] for m in result.of("speech.phrase") if m["payload"]["status"] == "Success"]
        # Then the phrases, concatenated, are the final transcript ...
        assert normalise(" ".join(p["text"] for p in phrases)) == normalise(result.final_text or ""), entry_id
        # ... they come in order of their audio (word times of different decodes may overlap a little) ...
        starts = [p["offset"] for p in phrases]
        assert all(b >= a - 300 for a, b in zip(starts, starts[1:], strict=False)), (entry_id, starts)
        # ... and no word is repeated or cut at a boundary (unless a batch decode hears it said twice there)
        if boundary_faults(phrases):
            assert boundary_faults(phrases, batch_repeats(whisper_model("tiny.en"), samples)) == [], entry_id
        latencies += confirmed_latencies(result)
    # And words are confirmed while the audio still streams (timing belongs to bench/streaming.py: a loose bound)
    ordered = sorted(latencies)
    p50, p95 = ordered[len(ordered) // 2], ordered[int(0.95 * (len(ordered) - 1))]
    print(f"confirmed latency, tiny.en, 4 real-time streams: p50 {p50:.2f} s, p95 {p95:.2f} s ({len(ordered)} words)")
    assert p95 < 90.0  # a stuck session, not a slow machine (22 s p50 was seen on a loaded one)


def test_real_time_stream_gives_hypotheses_then_phrases(server, audio, batch_text):
    entry_id = "en_jfk_inaugural"
    result = asyncio.run(stream(server.ws_url, pcm_frames(audio[entry_id]), pace_s=FRAME_MS / 1000))
    reference = ENTRIES[entry_id]["reference"]
    assert wer([reference], [result.final_text or ""]) <= wer([reference], [batch_text[entry_id]]) + 0.02
    kinds = [m["type"] for m in result.messages]
    assert kinds.index("speech.hypothesis") < kinds.index("speech.phrase") < kinds.index("speech.checkpoint")
    first = result.of("speech.phrase")[0]["payload"]
    assert first["status"] == "Success" and 0 <= first["offset"] < 2000 and first["duration"] > 0
    assert 0 < first["confidence"] <= 1
    assert not result.of("speech.backpressure")
    assert_completed(result)


def test_what_the_openasr_test_client_sends_gets_phrases_and_a_transcript(server, audio, batch_text):
    # Given exactly what OpenASR's own test client sends: its model name, 16 kHz PCM in 200 ms frames, unpaced
    entry_id = "en_jfk_inaugural"
    config = {"language": "en", "sample_rate": 16000, "encoding": "pcm_s16le", "model_id": "whisper-tiny.en"}
    # When it streams the file and sends speech.end
    result = asyncio.run(stream(server.ws_url, pcm_frames(audio[entry_id]), config=config))
    # Then the model name resolves, phrases arrive, and the EndOfStream transcript is as good as batch
    assert result.messages[0]["payload"]["effective_config"]["model_id"] == "tiny.en"
    assert [p for p in result.of("speech.phrase") if p["payload"]["status"] == "Success"]
    reference = ENTRIES[entry_id]["reference"]
    assert wer([reference], [result.final_text or ""]) <= wer([reference], [batch_text[entry_id]]) + 0.02
    assert_completed(result)


async def unknown_model_then_corrected(url: str, frames: list[bytes]) -> tuple[dict, dict, str | None]:
    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": {"model_id": "whisper-no-such-size"}}))
        error = json.loads(await asyncio.wait_for(ws.recv(), 30))
        await ws.send(json.dumps({"type": "speech.config", "payload": {"model_id": "Whisper-Tiny.EN"}}))
        ack = json.loads(await asyncio.wait_for(ws.recv(), 60))
        for frame in frames:
            await ws.send(frame)
        await ws.send(json.dumps({"type": "speech.end", "payload": {}}))
        final = None
        async for raw in ws:
            message = json.loads(raw)
            if message["type"] == "speech.phrase" and message["payload"]["status"] == "EndOfStream":
                final = message["payload"]["text"]
        return error, ack, final


def test_an_unknown_model_id_is_named_and_the_session_stays_open_for_a_corrected_config(server, audio):
    error, ack, final = asyncio.run(unknown_model_then_corrected(server.ws_url, pcm_frames(audio["en_jfk_inaugural"])))
    assert error["type"] == "speech.error" and error["payload"]["code"] == "INVALID_MESSAGE"
    assert "whisper-no-such-size" in error["payload"]["message"] and "tiny.en" in error["payload"]["message"]
    assert ack["type"] == "speech.config.ack" and ack["payload"]["effective_config"]["model_id"] == "tiny.en"
    assert "ask not what your country" in normalise(final or "")


def test_silence_produces_no_text(server):
    result = asyncio.run(stream(server.ws_url, pcm_frames(np.zeros(16000 * 4, dtype=np.float32))))
    assert result.final_text == ""
    assert not result.of("speech.hypothesis")
    assert_completed(result)


def test_opus_round_trip(server, audio, batch_text):
    import av

    entry_id = "en_librispeech_1995-1837-0001"
    import soxr

    samples48 = soxr.resample(audio[entry_id], 16000, 48000)
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate, encoder.layout, encoder.format, encoder.bit_rate = 48000, "mono", "s16", 48000
    encoder.open()
    pcm = (np.clip(samples48, -1, 1) * 32767).astype(np.int16)
    packets: list[bytes] = []
    for index, start in enumerate(range(0, len(pcm) - 960 + 1, 960)):
        frame = av.AudioFrame.from_ndarray(pcm[None, start : start + 960], format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48000, index * 960
        packets += [bytes(p) for p in encoder.encode(frame)]
    packets += [bytes(p) for p in encoder.encode(None)]
    result = asyncio.run(stream(server.ws_url, packets, config={"encoding": "opus", "sample_rate": 48000}))
    reference = ENTRIES[entry_id]["reference"]
    assert wer([reference], [result.final_text or ""]) <= wer([reference], [batch_text[entry_id]]) + 0.05


def test_resampled_input_is_recognised(server, audio):
    import soxr

    samples = soxr.resample(audio["en_jfk_inaugural"], 16000, 44100)
    config = {"sample_rate": 44100}
    result = asyncio.run(stream(server.ws_url, pcm_frames(samples, rate=44100), config=config))
    assert "ask not what your country" in normalise(result.final_text or "")


# -- (b) resume on another server process ----------------------------------------------------------------------------


def test_resume_on_a_new_server_after_kill(tmp_path, server, audio):
    entry_id = "en_librivox_sonnet001"
    samples = audio[entry_id]
    frames = pcm_frames(samples)
    # Given an uninterrupted session's transcript
    whole = asyncio.run(stream(server.ws_url, frames)).final_text or ""
    # And a session on another server that is killed (-9) once a checkpoint past 10 s arrived
    first = start(tmp_path / "a")
    partial = asyncio.run(stream(first.ws_url, frames, stop_after_checkpoint_ms=10_000))
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    checkpoint = partial.checkpoints[-1]
    assert checkpoint["backend_model_id"] == "tiny.en" and checkpoint["full_transcript"]
    # (OpenASR's last_text_offset is a character offset into full_transcript; the time is Auricle's own field)
    assert checkpoint["last_text_offset"] == len(checkpoint["full_transcript"])
    assert checkpoint["last_text_end_ms"] > 0
    # When a new server process gets the checkpoint and the audio from its last_audio_ms on
    second = start(tmp_path / "b")
    try:
        rest = samples[checkpoint["last_audio_ms"] * 16 :]
        resumed = asyncio.run(stream(second.ws_url, pcm_frames(rest), config={"resume_checkpoint": checkpoint}))
    finally:
        second.stop()
    # Then offsets continue and the transcript matches the uninterrupted one (allowing in-flight words)
    phrases = [m["payload"] for m in resumed.of("speech.phrase") if m["payload"]["status"] == "Success"]
    assert phrases and phrases[0]["offset"] >= checkpoint["last_audio_ms"] - 1000
    assert resumed.final_text and resumed.final_text.startswith(checkpoint["full_transcript"])
    assert wer([whole], [resumed.final_text]) <= 0.1, (whole, resumed.final_text)


# -- (c) errors ------------------------------------------------------------------------------------------------------


async def first_error(url: str, sends: list[str | bytes]) -> str | None:
    """Send frames on a new connection; the code of the first ``speech.error`` (acks are skipped)."""
    async with websockets.connect(url, max_size=None) as ws:
        for item in sends:
            await ws.send(item)
        while True:
            message = json.loads(await asyncio.wait_for(ws.recv(), 30))
            if message["type"] == "speech.error":
                return message["payload"]["code"]


def config_message(**payload) -> str:
    return json.dumps({"type": "speech.config", "payload": payload})


ERROR_CASES = {
    "audio before config": ([b"\x00\x00" * 100], "INVALID_STATE"),
    "bad json": (["{not json"], "INVALID_MESSAGE"),
    "unknown type": ([json.dumps({"type": "speech.dance", "payload": {}})], "INVALID_MESSAGE"),
    "sample rate out of range": ([config_message(sample_rate=100)], "INVALID_MESSAGE"),
    "overlap not below window": (
        [config_message(window_duration_ms=1000, overlap_duration_ms=1000)],
        "INVALID_MESSAGE",
    ),
    "unknown encoding": ([config_message(encoding="flac")], "INVALID_MESSAGE"),
    "unknown model": ([config_message(model_id="no-such-model")], "INVALID_MESSAGE"),
    "second config": ([config_message(), config_message()], "INVALID_STATE"),
    "odd-length pcm": ([config_message(), b"\x00" * 301], "AUDIO_ERROR"),
    "oversized frame": ([config_message(), b"\x00" * 70_000], "INVALID_MESSAGE"),
    "corrupt opus": ([config_message(encoding="opus", sample_rate=48000), b"\x03\x00"], "AUDIO_ERROR"),
    "end before config": ([json.dumps({"type": "speech.end"})], "INVALID_STATE"),
}


def test_errors_have_documented_codes_while_another_session_keeps_working(strict_server, audio):
    async def scenario():
        healthy = asyncio.create_task(stream(strict_server.ws_url, pcm_frames(audio["en_jfk_inaugural"])))
        codes = {}
        for name, (sends, _) in ERROR_CASES.items():
            codes[name] = await first_error(strict_server.ws_url, sends)
        return codes, await healthy

    codes, healthy = asyncio.run(scenario())
    assert codes == {name: code for name, (_, code) in ERROR_CASES.items()}
    # The healthy client sends without pacing into a 6 s buffer: it is told to slow down, then that all is
    # well again, and it still gets its whole transcript.
    actions = [m["payload"]["action"] for m in healthy.of("speech.backpressure")]
    assert actions[:2] == ["slow_down", "ok"], actions
    reference = ENTRIES["en_jfk_inaugural"]["reference"]
    assert wer([reference], [healthy.final_text or ""]) <= 0.1, healthy.final_text


def test_the_session_goes_on_after_an_oversized_frame(strict_server, audio):
    # Given a configured session on a server that takes frames of at most 64 kB
    samples = audio["en_librispeech_1995-1837-0001"]
    frames = pcm_frames(samples)
    oversized = b"\x00" * 70_000
    # When the client sends one frame over the limit among its audio, then the rest and speech.end
    result = asyncio.run(stream(strict_server.ws_url, frames[:10] + [oversized] + frames[10:], pace_s=0.01))
    # Then that frame gets INVALID_MESSAGE, and the session goes on: the audio is recognised to the end
    errors = [m["payload"] for m in result.of("speech.error")]
    assert [e["code"] for e in errors] == ["INVALID_MESSAGE"] and "70000 bytes" in errors[0]["message"]
    assert_completed(result)
    reference = ENTRIES["en_librispeech_1995-1837-0001"]["reference"]
    assert wer([reference], [result.final_text or ""]) <= 0.15, result.final_text


def test_session_survives_errors_and_limit_is_enforced(strict_server):
    async def scenario():
        async with websockets.connect(strict_server.ws_url) as one, websockets.connect(strict_server.ws_url) as two:
            await one.send("{oops")
            error = json.loads(await one.recv())
            await one.send(config_message())
            ack = json.loads(await one.recv())
            await two.send(config_message())
            await two.recv()
            async with websockets.connect(strict_server.ws_url) as three:
                refused = json.loads(await three.recv())
                with pytest.raises(websockets.ConnectionClosed):
                    await asyncio.wait_for(three.recv(), 10)
        return error, ack, refused

    error, ack, refused = asyncio.run(scenario())
    assert error["payload"]["code"] == "INVALID_MESSAGE"
    assert ack["type"] == "speech.config.ack" and ack["payload"]["session_id"] == ack["session_id"]
    assert refused["type"] == "speech.error" and refused["payload"]["code"] == "SESSION_LIMIT"


# -- (d) session limits ----------------------------------------------------------------------------------------------


async def until_closed(url: str, frames: list[bytes], pace_s: float = 0.0) -> tuple[list[dict], int | None, str]:
    """Send a config and ``frames`` (no ``speech.end``), then read until the server closes: messages, close code
    and reason."""
    messages: list[dict] = []
    async with websockets.connect(url, max_size=None) as ws:

        async def send() -> None:
            with contextlib.suppress(websockets.ConnectionClosed):
                await ws.send(config_message())
                for frame in frames:
                    await ws.send(frame)
                    await asyncio.sleep(pace_s)

        sender = asyncio.create_task(send())
        with contextlib.suppress(websockets.ConnectionClosed):
            while True:
                messages.append(json.loads(await asyncio.wait_for(ws.recv(), 60)))
        await sender
        return messages, ws.close_code, ws.close_reason


def test_an_idle_session_is_ended_with_its_transcript_and_checkpoint(limits_server, audio):
    # Given a client that sends 4 s of speech and then nothing, without speech.end
    frames = pcm_frames(audio["en_jfk_inaugural"][: 4 * 16000])
    messages, code, reason = asyncio.run(until_closed(limits_server.ws_url, frames))
    # Then after the idle timeout the session ends as if it had sent speech.end, and the server closes (1001)
    assert (code, reason) == (1001, "idle timeout")
    final = [m["payload"] for m in messages if m["type"] == "speech.phrase" and m["payload"]["status"] == "EndOfStream"]
    assert len(final) == 1 and "fellow americans" in normalise(final[0]["text"])
    assert messages[-1]["type"] == "speech.checkpoint"
    assert messages[-1]["payload"]["full_transcript"] == final[0]["text"]


def test_a_session_over_the_time_limit_ends_with_a_checkpoint_to_resume_from(limits_server, audio):
    # Given a client still sending in real time when the 8 s session limit passes
    frames = pcm_frames(audio["en_librispeech_1995-1837-0001"])  # 8.7 s of speech
    messages, code, reason = asyncio.run(until_closed(limits_server.ws_url, frames + frames, pace_s=FRAME_MS / 1000))
    # Then the session ends with what was recognised and a checkpoint, and the close says why (1008)
    assert (code, reason) == (1008, "maximum session duration reached")
    checkpoint = messages[-1]
    assert checkpoint["type"] == "speech.checkpoint"
    assert 2000 < checkpoint["payload"]["last_audio_ms"] <= 9000
    assert "first great sorrow" in normalise(checkpoint["payload"]["full_transcript"])


def test_a_transcript_over_its_limit_ends_the_session_with_an_error(limits_server, audio):
    # Given a 53 s reading sent without pacing to a server that keeps at most 200 bytes of transcript
    messages, code, _ = asyncio.run(until_closed(limits_server.ws_url, pcm_frames(audio["en_librivox_sonnet001"])))
    # Then the phrases stop short of the limit, an INVALID_STATE error explains why, and the session closes (1009)
    errors = [m["payload"] for m in messages if m["type"] == "speech.error"]
    assert [e["code"] for e in errors] == ["INVALID_STATE"] and "transcript" in errors[0]["message"]
    assert code == 1009
    checkpoints = [m["payload"] for m in messages if m["type"] == "speech.checkpoint"]
    assert checkpoints and all(len(c["full_transcript"].encode()) <= 200 for c in checkpoints)


# -- (e) authentication ----------------------------------------------------------------------------------------------


def test_api_key_is_required_before_the_upgrade(tmp_path):
    secured = start(tmp_path, AURICLE_API_KEYS="secret")
    try:

        async def status(url: str, headers: dict | None = None, subprotocols: list[str] | None = None) -> int:
            try:
                async with websockets.connect(url, additional_headers=headers or {}, subprotocols=subprotocols) as ws:
                    assert ws.subprotocol == ("auricle" if subprotocols else None)
                    await ws.send(config_message())
                    assert json.loads(await ws.recv())["type"] == "speech.config.ack"
                    return 101
            except websockets.InvalidStatus as exc:
                return exc.response.status_code

        assert asyncio.run(status(secured.ws_url)) == 401
        assert asyncio.run(status(secured.ws_url, {"Authorization": "Bearer wrong"})) == 401
        assert asyncio.run(status(secured.ws_url + "?api_key=secret")) == 401
        assert asyncio.run(status(secured.ws_url, {"Authorization": "Bearer secret"})) == 101
        # A browser cannot send headers on a WebSocket: it offers the key (base64url) as a subprotocol
        assert asyncio.run(status(secured.ws_url, subprotocols=["auricle", "auricle.bearer.c2VjcmV0"])) == 101
        assert asyncio.run(status(secured.ws_url, subprotocols=["auricle", "auricle.bearer.d3Jvbmc"])) == 401
    finally:
        secured.stop()


# -- the CLI helper --------------------------------------------------------------------------------------------------


def test_cli_stream_file_prints_finals_and_returns_the_transcript(server):
    import io

    from auricle.cli.stream import stream_file

    out = io.StringIO()
    text = stream_file(server.ws_url, str(CORPUS / "audio" / "jfk.flac"), fast=True, model=None, api_key=None, out=out)
    assert "ask not what your country" in normalise(text)
    finals = [line.rsplit("\r", 1)[-1] for line in out.getvalue().split("\n")]
    assert normalise(" ".join(finals)) == normalise(text)
