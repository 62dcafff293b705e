"""Streaming latency and capacity: word latency to first hypothesis and to confirmation (final phrase), p50/p95,
for 1, 2, 4 and 8 concurrent real-time streams, per model and per confirmation policy, against real server
processes (one per policy, ``AURICLE_STREAMING__POLICY``), run interleaved so that all contenders see the same
machine load: ``eager`` (opt-in), ``utterance`` (the default) and ``la2`` (plain fixed-step
LocalAgreement-2 over the same decoder, the published policy). Capacity is the most streams whose confirmed p95
stays within 3 s.

    .venv/bin/python bench/streaming.py [--models tiny.en base] [--streams 1 2 4 8] [--seconds 30]
        [--policies eager utterance la2]

A contender may also set other streaming settings: ``eager:step_s=1.0`` is the ``eager`` policy with
``AURICLE_STREAMING__STEP_S=1.0``.

Word times are estimated from message offsets: a message covering [offset, offset + duration] with n words is taken
to have its words end evenly across that span. A word's latency is the time its message arrived minus the time
the client sent the frame holding the word's end. "end lag" is the time from `speech.end` to the final phrase: it
stays flat while the server keeps up and grows with the stream's length once it cannot.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from pathlib import Path

import numpy as np
import websockets

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from auricle.engine.decode import decode  # noqa: E402

from support import CORPUS, start_server  # noqa: E402

FRAME_MS = 200


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def word_ends(payload: dict) -> list[float]:
    """Estimated end (ms) of each word of a hypothesis or phrase."""
    count = len(payload["text"].split())
    return [payload["offset"] + payload["duration"] * (i + 1) / count for i in range(count)]


async def one_stream(url: str, frames: list[bytes], model: str, delay: float) -> dict:
    await asyncio.sleep(delay)
    sent_at: list[float] = []  # wall time each frame was sent
    hypothesis_latency: list[float] = []
    confirm_latency: list[float] = []
    state = {"seen": 0, "end_sent": 0.0}

    def sent_time(ms: float) -> float:
        index = min(int(ms // FRAME_MS), len(sent_at) - 1)
        return sent_at[max(index, 0)]

    async with websockets.connect(url, max_size=None) as ws:
        await ws.send(json.dumps({"type": "speech.config", "payload": {"model_id": model}}))
        json.loads(await ws.recv())
        start = time.perf_counter()

        async def send() -> None:
            for index, frame in enumerate(frames):
                # Real time against the clock, so a slow send does not slow the stream down.
                await asyncio.sleep(max(0.0, start + index * FRAME_MS / 1000 - time.perf_counter()))
                sent_at.append(time.perf_counter())
                await ws.send(frame)
            state["end_sent"] = time.perf_counter()
            await ws.send(json.dumps({"type": "speech.end"}))

        sender = asyncio.create_task(send())
        end_lag = float("nan")
        async for raw in ws:
            now = time.perf_counter()
            message = json.loads(raw)
            payload = message["payload"]
            if message["type"] == "speech.hypothesis":
                ends = word_ends(payload)
                for end in ends[state["seen"] :]:
                    hypothesis_latency.append(now - sent_time(end))
                state["seen"] = max(state["seen"], len(ends))
            elif message["type"] == "speech.phrase" and payload["status"] == "Success":
                ends = word_ends(payload)
                confirm_latency += [now - sent_time(end) for end in ends]
                for end in ends[state["seen"] :]:
                    hypothesis_latency.append(now - sent_time(end))
                state["seen"] = 0
            elif message["type"] == "speech.phrase":
                end_lag = now - state["end_sent"]
                break
        await sender
    return {"hypothesis": hypothesis_latency, "confirm": confirm_latency, "end_lag": end_lag}


async def run(url: str, frames: list[bytes], model: str, streams: int) -> dict:
    results = await asyncio.gather(
        *(one_stream(url, frames, model, random.uniform(0, 1.0) if i else 0.0) for i in range(streams))
    )
    return {
        "hypothesis": [v for r in results for v in r["hypothesis"]],
        "confirm": [v for r in results for v in r["confirm"]],
        "end_lag": max(r["end_lag"] for r in results),
    }


def contender_env(spec: str) -> dict[str, str]:
    """The server environment of a contender ``policy[:setting=value,...]`` (streaming settings)."""
    policy, _, settings = spec.partition(":")
    env = {"AURICLE_STREAMING__POLICY": policy}
    for item in filter(None, settings.split(",")):
        key, _, value = item.partition("=")
        env[f"AURICLE_STREAMING__{key.upper()}"] = value
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["tiny.en", "base"])
    parser.add_argument("--streams", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--seconds", type=float, default=30.0, help="length of each stream (from the sonnet)")
    parser.add_argument("--policies", nargs="+", default=["eager", "utterance", "la2"])
    args = parser.parse_args()

    samples = decode(CORPUS / "audio" / "librivox_sonnet001.mp3").samples[: int(args.seconds * 16000)]
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()
    step = 16000 * FRAME_MS // 1000 * 2
    frames = [pcm[i : i + step] for i in range(0, len(pcm), step)]
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            policy: start_server(
                Path(tmp) / str(index),
                {"AURICLE_PRELOAD_MODELS": ",".join(args.models), **contender_env(policy)},
                wait_ready=False,
            )
            for index, policy in enumerate(args.policies)
        }
        urls = {policy: server.url.replace("http://", "ws://") + "/transcribe" for policy, server in servers.items()}
        capacity: dict[tuple[str, str], int] = {}
        try:
            print(f"{len(frames) * FRAME_MS / 1000:.0f} s streams of real-time pcm_s16le, {FRAME_MS} ms frames")
            print("| model | streams | policy | hyp p50 | hyp p95 | conf p50 | conf p95 | end lag |")
            print("|---|---|---|---|---|---|---|---|")
            for model in args.models:
                for policy in args.policies:
                    asyncio.run(run(urls[policy], frames[:25], model, 1))  # warm-up: load the model
                for streams in args.streams:
                    for policy in args.policies:
                        result = asyncio.run(run(urls[policy], frames, model, streams))
                        hyp, conf = result["hypothesis"], result["confirm"]
                        if percentile(conf, 0.95) <= 3.0:
                            capacity[(model, policy)] = max(capacity.get((model, policy), 0), streams)
                        print(
                            f"| {model} | {streams} | {policy} | {percentile(hyp, 0.5):.2f} s | "
                            f"{percentile(hyp, 0.95):.2f} s | {percentile(conf, 0.5):.2f} s | "
                            f"{percentile(conf, 0.95):.2f} s | {result['end_lag']:.2f} s |",
                            flush=True,
                        )
            print("\ncapacity (most streams with confirmed p95 <= 3 s):")
            for model in args.models:
                for policy in args.policies:
                    print(f"  {model:9s} {policy:24s} {capacity.get((model, policy), 0)}")
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    main()
