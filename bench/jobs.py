"""Jobs benchmark: Redis throughput with 1 vs 2 worker processes, and per-job overhead of embedded vs Redis.

Run: ``.venv/bin/python bench/jobs.py [--jobs 24] [--overhead-jobs 10]``. Starts its own ``redis-server`` (free
port, temporary directory), API servers and ``auricle worker`` processes with ``tiny.en``, and prints a table.

* throughput: ``--jobs`` short corpus clips submitted at once; wall time from submit until all succeeded.
* overhead: jobs submitted one at a time, each followed over its SSE stream until ``done``; overhead is the
  client-observed latency minus the pipeline's own ``processing_seconds``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from _redis import CLIPS, JobsServer, RedisServer, WorkerProcess, submit_clips, wait_all


def throughput(root: Path, workers: int, jobs: int) -> dict[str, float]:
    redis_server = RedisServer(root / f"redis-{workers}").start()
    env = {"AURICLE_REDIS_URL": redis_server.url, "AURICLE_MAX_QUEUE": "500", "AURICLE_WORKERS": "1"}
    api = JobsServer(root / f"api-{workers}", {**env, "AURICLE_LOCAL_WORKERS": "false"})
    procs = [WorkerProcess(root / f"w{workers}-{i}", env, name=f"w{i}") for i in range(workers)]
    try:
        with api.client() as client:
            # Warm up: every worker process loads its model and answers one job.
            wait_all(client, list(submit_clips(client, 2 * workers)))
            started = time.perf_counter()
            ids = list(submit_clips(client, jobs))
            done = wait_all(client, ids, timeout=600)
            wall = time.perf_counter() - started
        audio = sum(j["audio_seconds"] or 0 for j in done.values())
        return {"wall_s": wall, "jobs_per_s": jobs / wall, "audio_x_realtime": audio / wall}
    finally:
        for p in [*procs, api]:
            p.stop()
        redis_server.stop()


def overhead(server: JobsServer, count: int) -> dict[str, float]:
    clip = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "audio" / "ami_ES2011a_headset0_40-46s.wav"
    rows: list[tuple[float, float, float]] = []
    with httpx.Client(base_url=server.url, timeout=httpx.Timeout(60, read=None)) as client:
        for i in range(count + 1):
            started = time.perf_counter()
            job = client.post("/v1/jobs", files=[("file", (clip.name, clip.read_bytes()))]).json()["jobs"][0]
            submitted = time.perf_counter() - started
            with client.stream("GET", f"/v1/jobs/{job['id']}/events") as response:
                for line in response.iter_lines():
                    if line.startswith("event: done") or line.startswith("event: failed"):
                        break
            latency = time.perf_counter() - started
            final = client.get(f"/v1/jobs/{job['id']}").json()
            if i:  # the first one loads the model
                rows.append((latency, final["processing_seconds"], submitted))
    return {
        "latency_s": statistics.median(r[0] for r in rows),
        "processing_s": statistics.median(r[1] for r in rows),
        "overhead_s": statistics.median(r[0] - r[1] for r in rows),
        "submit_s": statistics.median(r[2] for r in rows),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=24)
    parser.add_argument("--overhead-jobs", type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="auricle-bench-") as tmp:
        root = Path(tmp)
        print(f"clips: {', '.join(CLIPS)} (tiny.en, CPU)\n", flush=True)
        results = {n: throughput(root, n, args.jobs) for n in (1, 2)}
        print(f"{'Redis throughput':<28}{'wall s':>10}{'jobs/s':>10}{'x realtime':>12}")
        for n, r in results.items():
            label = f"{n} worker process(es)"
            print(f"{label:<28}{r['wall_s']:>10.2f}{r['jobs_per_s']:>10.2f}{r['audio_x_realtime']:>12.1f}")
        print(f"speed-up 2 vs 1: {results[2]['jobs_per_s'] / results[1]['jobs_per_s']:.2f}x\n", flush=True)

        embedded = JobsServer(root / "embedded", {"AURICLE_WORKERS": "1"})
        try:
            emb = overhead(embedded, args.overhead_jobs)
        finally:
            embedded.stop()
        redis_server = RedisServer(root / "redis-overhead").start()
        env = {"AURICLE_REDIS_URL": redis_server.url, "AURICLE_WORKERS": "1"}
        api = JobsServer(root / "api-overhead", {**env, "AURICLE_LOCAL_WORKERS": "false"})
        worker = WorkerProcess(root / "w-overhead", env)
        try:
            red = overhead(api, args.overhead_jobs)
        finally:
            worker.stop()
            api.stop()
            redis_server.stop()
        print(
            f"{'per job (median, 6 s clip)':<28}{'latency s':>10}{'pipeline s':>11}{'overhead s':>11}{'submit s':>10}"
        )
        for name, r in (("embedded (SQLite)", emb), ("Redis + 1 worker process", red)):
            print(
                f"{name:<28}{r['latency_s']:>10.3f}{r['processing_s']:>11.3f}{r['overhead_s']:>11.3f}{r['submit_s']:>10.3f}"
            )


if __name__ == "__main__":
    main()
