"""Long-file benchmark: `auricle transcribe` vs faster-whisper called directly (plain sequential), in one run.

Builds a ~10-minute file from the English corpus recordings (and a 60-minute one for peak memory), then prints
real-time factors (audio seconds / wall seconds), their ratio, word error rates and peak RSS of each process.

    .venv/bin/python bench/transcribe_long.py [--model base] [--minutes 10] [--memory-minutes 60] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from auricle.engine.decode import decode  # noqa: E402

from support import english_with_reference, wer  # noqa: E402

DIRECT = """
import sys, time
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8", cpu_threads=int(sys.argv[3]))
segments, info = model.transcribe(sys.argv[2], beam_size=5, vad_filter=True, language="en")
sys.stdout.write(" ".join(s.text for s in segments))
"""


def build(minutes: float, path: Path) -> str:
    """Concatenate the English corpus (1 s pauses) to ``minutes``; returns the reference text."""
    pieces, refs, total = [], [], 0
    entries = english_with_reference()
    silence = np.zeros(16000, np.float32)
    while total < minutes * 60 * 16000:
        for entry in entries:
            samples = decode(entry["path"]).samples
            pieces += [samples, silence]
            refs.append(entry["reference"])
            total += len(samples) + len(silence)
    audio = np.concatenate(pieces)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return " ".join(refs)


def run(cmd: list[str], env: dict[str, str] | None = None) -> tuple[str, float, float]:
    """Run a command; returns (stdout, wall seconds, peak RSS in MB of that process)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, env={**os.environ, **(env or {})})
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        if status != 0:
            raise RuntimeError(f"{cmd} failed with status {status}")
        out.seek(0)
        return out.read().decode(), wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base")
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--memory-minutes", type=float, default=60)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads of the plain faster-whisper call")
    args = parser.parse_args()

    from auricle.config import Settings
    from auricle.models.registry import ModelRegistry

    model_dir = ModelRegistry(Settings()).resolve(args.model)
    # Auricle with its defaults: one thread per decode, one decode per core.
    auricle = [sys.executable, "-m", "auricle", "transcribe", "--model", args.model, "--language", "en", "-o", "json"]
    with tempfile.TemporaryDirectory() as tmp:
        long_wav = Path(tmp) / "long.wav"
        reference = build(args.minutes, long_wav)
        duration = decode(long_wav).duration
        print(f"audio: {duration / 60:.1f} min, model {args.model}; plain call with {args.threads} thread(s)")

        ours_out, ours_wall, ours_rss = run([*auricle, str(long_wav)])
        ours_text = json.loads(ours_out)["text"]
        direct_text, direct_wall, direct_rss = run(
            [sys.executable, "-c", DIRECT, str(model_dir), str(long_wav), str(args.threads)]
        )
        ours_rtf, direct_rtf = duration / ours_wall, duration / direct_wall
        print(f"{'':<28}{'RTF (x real time)':>18}{'WER':>8}{'peak RSS MB':>13}")
        print(f"{'auricle transcribe':<28}{ours_rtf:>18.2f}{wer([reference], [ours_text]):>8.2%}{ours_rss:>13.0f}")
        print(
            f"{'faster-whisper sequential':<28}{direct_rtf:>18.2f}"
            f"{wer([reference], [direct_text]):>8.2%}{direct_rss:>13.0f}"
        )
        print(f"speed ratio auricle / direct: {ours_rtf / direct_rtf:.2f}x")

        if args.memory_minutes:
            big = Path(tmp) / "big.wav"
            build(args.memory_minutes, big)
            _, wall, rss = run([*auricle, str(big)])
            rtf = args.memory_minutes * 60 / wall
            print(f"{args.memory_minutes:.0f}-minute file: auricle peak RSS {rss:.0f} MB, RTF {rtf:.1f}")


if __name__ == "__main__":
    main()
