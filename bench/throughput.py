"""HTTP throughput: 1, 2, 4 and 8 concurrent clients posting corpus files to `/v1/audio/transcriptions`,
side by side with the same work done by calling the pipeline directly (threads on one Runtime), in one run.

    .venv/bin/python bench/throughput.py [--model base] [--requests 16]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from auricle.config import Settings  # noqa: E402
from auricle.engine.runtime import Runtime  # noqa: E402
from auricle.engine.types import TranscribeOptions  # noqa: E402

from support import english_with_reference, start_server  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def run(clients: int, jobs: list[tuple[Path, float]], call) -> tuple[float, float, float]:
    """Returns (audio seconds per wall second, p50 latency, p95 latency)."""
    latencies: list[float] = []

    def one(job: tuple[Path, float]) -> None:
        started = time.perf_counter()
        call(job[0])
        latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(one, jobs))
    wall = time.perf_counter() - started
    return sum(d for _, d in jobs) / wall, statistics.median(latencies), percentile(latencies, 0.95)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="base")
    parser.add_argument("--requests", type=int, default=16)
    args = parser.parse_args()
    entries = english_with_reference()
    jobs = [(e["path"], e["duration_s"]) for e in entries]
    jobs = (jobs * (args.requests // len(jobs) + 1))[: args.requests]

    runtime = Runtime(Settings(), workers=2)
    runtime.models.get(args.model)
    options = TranscribeOptions(model=args.model)

    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), {"AURICLE_DEFAULT_MODEL": args.model, "AURICLE_MAX_QUEUE": "64"})
        try:
            client = server.client(timeout=600)

            def over_http(path: Path) -> None:
                with open(path, "rb") as f:
                    response = client.post(
                        "/v1/audio/transcriptions", files={"file": (path.name, f)}, data={"model": args.model}
                    )
                response.raise_for_status()

            def direct(path: Path) -> None:
                runtime.transcribe(path, options)

            print(f"model {args.model}, {len(jobs)} requests of {sum(d for _, d in jobs):.0f} s audio in total")
            print(
                f"{'clients':>8} | {'HTTP x RT':>10}{'p50 s':>8}{'p95 s':>8} | {'direct x RT':>12}{'p50 s':>8}"
                f"{'p95 s':>8} | {'HTTP/direct':>11}"
            )
            for clients in (1, 2, 4, 8):
                h = run(clients, jobs, over_http)
                d = run(clients, jobs, direct)
                print(
                    f"{clients:>8} | {h[0]:>10.2f}{h[1]:>8.2f}{h[2]:>8.2f} | {d[0]:>12.2f}{d[1]:>8.2f}{d[2]:>8.2f}"
                    f" | {h[0] / d[0]:>11.2f}"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
