"""``auricle jobs submit|list|watch|result``: a small HTTP client of ``/v1/jobs``.

:func:`register` adds the commands to the ``auricle`` parser and :func:`cmd_jobs` dispatches them. Every
function talks to ``url`` (default ``http://127.0.0.1:9000``) with an optional API key, writes to the text stream
it is given (never ``print``) and returns a process exit code: 0 on success, 1 when a job failed or was cancelled,
2 on a request error.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import httpx
from tqdm import tqdm

from auricle.cli._output import OUTPUTS, server_error_detail
from auricle.config import Settings

__all__ = ["DEFAULT_URL", "cmd_jobs", "list_jobs", "register", "result", "submit", "watch"]

logger = logging.getLogger(__name__)

DEFAULT_URL = "http://127.0.0.1:9000"
_TERMINAL = ("done", "failed", "cancelled", "deleted")


def _client(url: str, api_key: str | None, timeout: float | httpx.Timeout | None = 60.0) -> httpx.Client:
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)


def _error(response: httpx.Response) -> str:
    return f"HTTP {response.status_code}: {server_error_detail(response.content) or response.text[:200]}"


def submit(
    files: Sequence[Path],
    out: TextIO,
    *,
    url: str = DEFAULT_URL,
    api_key: str | None = None,
    options: dict[str, Any] | None = None,
    session: str | None = None,
    audio_urls: Sequence[str] = (),
    webhook: str | None = None,
) -> int:
    """Upload ``files`` and name ``audio_urls`` (the server fetches them) in one request, and write one
    ``<job id>\\t<file name>`` line per job. ``webhook`` is told with a signed event when each job ends."""
    data: dict[str, Any] = {
        k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (options or {}).items() if v is not None
    }
    if session:
        data["session"] = session
    if webhook:
        data["webhook_url"] = webhook
    if audio_urls:
        data["url"] = list(audio_urls)
    handles = [open(path, "rb") for path in files]  # noqa: SIM115 - closed below
    try:
        with _client(url, api_key, timeout=None) as client:
            uploads = [("file", (p.name, h)) for p, h in zip(files, handles, strict=True)]
            response = client.post("/v1/jobs", data=data, files=uploads or None)
    except httpx.HTTPError as exc:
        out.write(f"error: {exc}\n")
        return 2
    finally:
        for handle in handles:
            handle.close()
    if response.status_code != 202:
        out.write(f"error: {_error(response)}\n")
        return 2
    for job in response.json()["jobs"]:
        out.write(f"{job['id']}\t{job['filename']}\n")
    return 0


def list_jobs(
    out: TextIO,
    *,
    url: str = DEFAULT_URL,
    api_key: str | None = None,
    status: str | None = None,
    session: str | None = None,
    limit: int = 50,
) -> int:
    """Write a table of jobs, newest first."""
    params = {k: v for k, v in {"status": status, "session": session, "limit": limit}.items() if v is not None}
    try:
        with _client(url, api_key) as client:
            response = client.get("/v1/jobs", params=params)
    except httpx.HTTPError as exc:
        out.write(f"error: {exc}\n")
        return 2
    if response.status_code != 200:
        out.write(f"error: {_error(response)}\n")
        return 2
    out.write(f"{'ID':32}  {'STATUS':9}  {'PROGRESS':>8}  {'RTF':>6}  FILE\n")
    for job in response.json()["jobs"]:
        rtf = f"{job['real_time_factor']:.1f}" if job.get("real_time_factor") else "-"
        out.write(
            f"{job['id']:32}  {job['status']:9}  {job['progress']:7.0f}%  {rtf:>6}  {job.get('filename') or ''}\n"
        )
    return 0


def _events(client: httpx.Client, job_id: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Parse the job's server-sent events as they arrive."""
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as response:
        if response.status_code != 200:
            response.read()
            raise httpx.HTTPStatusError(_error(response), request=response.request, response=response)
        name, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif not line and data:
                yield name, json.loads(data)
                name, data = "message", ""


def watch(ids: Sequence[str], out: TextIO, *, url: str = DEFAULT_URL, api_key: str | None = None) -> int:
    """Show a progress bar per job (fed by its events stream) until all have finished."""
    failed = False
    with _client(url, api_key, timeout=httpx.Timeout(60.0, read=None)) as client:
        for position, job_id in enumerate(ids):
            bar = tqdm(total=100, desc=job_id[:8], file=out, position=position, unit="%", leave=True)
            final = "?"
            try:
                for name, event in _events(client, job_id):
                    job = event.get("job") or {}
                    progress = event.get("progress", job.get("progress"))
                    if progress is not None:
                        bar.n = float(progress)
                    stage = event.get("stage") or job.get("stage")
                    bar.set_postfix_str(f"{job.get('status', 'running')} {stage or ''}".strip())
                    if name in _TERMINAL:
                        final = name
                        if name == "done":
                            bar.n = 100
                        bar.set_postfix_str("succeeded" if name == "done" else name)
                        break
            except httpx.HTTPError as exc:
                final = f"error: {exc}"
            finally:
                bar.refresh()
                bar.close()
            if final != "done":
                failed = True
                out.write(f"{job_id}: {final}\n")
    return 1 if failed else 0


def result(
    job_id: str,
    out: TextIO,
    *,
    url: str = DEFAULT_URL,
    api_key: str | None = None,
    fmt: str = "text",
    output: Path | None = None,
) -> int:
    """Write the job's transcript in ``fmt`` to ``output`` (a file) or to ``out``."""
    try:
        with _client(url, api_key) as client:
            response = client.get(f"/v1/jobs/{job_id}/result", params={"format": fmt})
    except httpx.HTTPError as exc:
        out.write(f"error: {exc}\n")
        return 2
    if response.status_code != 200:
        out.write(f"error: {_error(response)}\n")
        return 1 if response.status_code == 409 else 2
    if output is not None:
        output.write_text(response.text, encoding="utf-8")
        out.write(f"wrote {output}\n")
    else:
        out.write(response.text if response.text.endswith("\n") else response.text + "\n")
    return 0


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    """Jobs against a local or remote server."""
    remote = {"url": args.url, "api_key": args.api_key}
    if args.jobs_command == "submit":
        options = {
            k: v for k, v in {"model": args.model, "language": args.language, "diarize": args.diarize}.items() if v
        }
        if not args.files and not args.audio_urls:
            sys.stderr.write("error: give audio files, or audio URLs with --url\n")
            return 2
        return submit(
            [Path(f) for f in args.files],
            sys.stdout,
            options=options,
            audio_urls=args.audio_urls,
            webhook=args.webhook,
            **remote,
        )
    if args.jobs_command == "list":
        return list_jobs(sys.stdout, status=args.status, **remote)
    if args.jobs_command == "watch":
        return watch(args.ids, sys.stderr, **remote)
    output = Path(args.output_file) if args.output_file else None
    return result(args.id, sys.stdout, fmt=args.output, output=output, **remote)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``jobs submit|list|watch|result`` to the ``auricle`` parser."""
    jobs = sub.add_parser("jobs", help="submit, list, watch and fetch jobs on a server")
    jobs.add_argument("--url", default=DEFAULT_URL)
    jobs.add_argument("--api-key", default=None)
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    submit_cmd = jobs_sub.add_parser("submit")
    submit_cmd.add_argument("files", nargs="*")
    submit_cmd.add_argument(
        "--url", dest="audio_urls", action="append", default=[], help="an audio URL the server fetches (repeatable)"
    )
    submit_cmd.add_argument("--webhook", default=None, help="a URL told with a signed event when each job ends")
    submit_cmd.add_argument("--model", default=None)
    submit_cmd.add_argument("--language", default=None)
    submit_cmd.add_argument("--diarize", action="store_true")
    listing = jobs_sub.add_parser("list")
    listing.add_argument("--status", default=None)
    watching = jobs_sub.add_parser("watch")
    watching.add_argument("ids", nargs="+")
    fetching = jobs_sub.add_parser("result")
    fetching.add_argument("id")
    fetching.add_argument("-o", "--output", choices=OUTPUTS, default="text")
    fetching.add_argument("--output-file", default=None)
    jobs.set_defaults(func=cmd_jobs)
