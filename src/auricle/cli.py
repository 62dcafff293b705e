"""The ``auricle`` command: serve, worker, transcribe, stream, jobs, models, config."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TextIO

from auricle import __version__
from auricle.config import Settings, reference
from auricle.errors import AuricleError
from auricle.logs import configure_logging

__all__ = ["main"]

logger = logging.getLogger(__name__)

OUTPUTS = ("text", "json", "srt", "vtt", "tsv", "verbose_json")


def _out(text: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(text if text.endswith("\n") else text + "\n")


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    """Run the HTTP server (embedded jobs, bundled model)."""
    import uvicorn

    from auricle.app import create_app

    if args.host:
        settings.host = args.host
    if args.port is not None:
        settings.port = args.port
    app = create_app(settings)
    logger.info("serving on http://%s:%s (default model %s)", settings.host, settings.port, settings.default_model)
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        timeout_graceful_shutdown=30,
        # A little above the frame limit, so an oversized frame gets INVALID_MESSAGE rather than a bare close.
        ws_max_size=settings.streaming.max_frame_bytes + 1024 * 1024,
    )
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    """Run a job worker (Redis backend)."""
    from auricle.jobs.worker import run_worker

    run_worker(settings)
    return 0


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """List known models."""
    from auricle.models.registry import ModelRegistry

    registry = ModelRegistry(settings)
    rows = registry.list()
    if args.json:
        _out(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    _out(f"{'model':<18}{'installed':<11}{'source':<10}{'languages':<11}{'size':>9}  default")
    for row in rows:
        size = f"{row.size_bytes / 1e6:.0f} MB" if row.size_bytes else "-"
        langs = "99 (multi)" if row.multilingual else "en only"
        _out(
            f"{row.id:<18}{'yes' if row.installed else 'no':<11}{row.source:<10}{langs:<11}{size:>9}  "
            f"{'*' if row.default else ''}"
        )
    if not settings.allow_download:
        _out("\nModels not installed need AURICLE_ALLOW_DOWNLOAD=true (online) or AURICLE_MODELS_DIR.")
    return 0


def cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    """Transcribe files offline, printing or writing each transcript."""
    from tqdm import tqdm

    from auricle.engine.formats import EXTENSIONS, render
    from auricle.engine.pipeline import PipelineEvent
    from auricle.engine.types import TranscribeOptions
    from auricle.runtime import Runtime

    if args.model:
        settings.default_model = args.model
    if args.threads:
        settings.cpu_threads = args.threads
    runtime = Runtime(settings)
    options = TranscribeOptions(
        model=args.model,
        language=args.language,
        task=args.task,
        word_timestamps=args.word_timestamps,
        initial_prompt=args.initial_prompt,
        hotwords=args.hotwords,
        vad_filter=not args.no_vad,
        diarize=args.diarize,
        num_speakers=args.num_speakers,
        min_speakers=args.min_speakers,
        max_speakers=args.max_speakers,
    )
    if args.language:
        from auricle.api.params import parse_language

        options.language = parse_language(args.language)
    if args.output_dir:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    failures = 0
    for path in args.files:
        bar = tqdm(total=100, desc=Path(path).name, unit="%", disable=None, file=sys.stderr, leave=False)

        def on_event(event: PipelineEvent, bar: tqdm = bar) -> None:
            bar.set_postfix_str(event.stage, refresh=False)
            bar.update(round(event.progress * 100) - bar.n)

        try:
            transcript = runtime.transcribe(path, options, on_event=on_event)
        except AuricleError as exc:
            bar.close()
            sys.stderr.write(f"auricle: {path}: {exc.message}\n")
            failures += 1
            continue
        bar.close()
        text = render(transcript, args.output)
        if args.output_dir:
            target = Path(args.output_dir) / f"{Path(path).stem}.{EXTENSIONS[args.output]}"
            target.write_text(text, encoding="utf-8")
            sys.stderr.write(f"wrote {target}\n")
        else:
            if len(args.files) > 1:
                _out(f"==> {path} <==")
            _out(text)
    return 1 if failures else 0


def cmd_stream(args: argparse.Namespace, settings: Settings) -> int:
    """Stream a file, or the microphone, to a running server over WebSocket."""
    from auricle.cli_stream import stream_file, stream_microphone

    if args.mic == (args.file is not None):
        sys.stderr.write("auricle stream: give a FILE or --mic\n")
        return 2
    if args.mic:
        stream_microphone(args.url, model=args.model, api_key=args.api_key, out=sys.stdout)
    else:
        stream_file(args.url, args.file, fast=args.fast, model=args.model, api_key=args.api_key, out=sys.stdout)
    return 0


def cmd_jobs(args: argparse.Namespace, settings: Settings) -> int:
    """Jobs against a local or remote server."""
    from auricle import cli_jobs

    remote = {"url": args.url, "api_key": args.api_key}
    if args.jobs_command == "submit":
        options = {
            k: v for k, v in {"model": args.model, "language": args.language, "diarize": args.diarize}.items() if v
        }
        code = cli_jobs.submit([Path(f) for f in args.files], sys.stdout, options=options, **remote)
        return code
    if args.jobs_command == "list":
        return cli_jobs.list_jobs(sys.stdout, status=args.status, **remote)
    if args.jobs_command == "watch":
        return cli_jobs.watch(args.ids, sys.stderr, **remote)
    output = Path(args.output_file) if args.output_file else None
    return cli_jobs.result(args.id, sys.stdout, fmt=args.output, output=output, **remote)


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Print the configuration reference (drawn from the Settings class)."""
    rows = reference()
    if args.markdown:
        _out("| variable | default | meaning |\n|---|---|---|")
        for row in rows:
            default = row["default"]
            shown = "" if default is None else json.dumps(default) if not isinstance(default, str) else default
            _out(f"| `{row['env']}` | `{shown}` | {row['description']} |")
        return 0
    for row in rows:
        _out(f"{row['env']}={row['default']!s:<12} {row['description']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI)."""
    parser = argparse.ArgumentParser(prog="auricle", description="Self-hosted speech-to-text server.")
    parser.add_argument("--version", action="version", version=f"auricle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP server")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.set_defaults(func=cmd_serve)

    worker = sub.add_parser("worker", help="run a job worker for the Redis backend")
    worker.set_defaults(func=cmd_worker)

    models = sub.add_parser("models", help="list models")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)

    tr = sub.add_parser("transcribe", help="transcribe files offline")
    tr.add_argument("files", nargs="+")
    tr.add_argument("-o", "--output", choices=OUTPUTS, default="text")
    tr.add_argument("--model", default=None)
    tr.add_argument("--language", default=None)
    tr.add_argument("--task", choices=("transcribe", "translate"), default="transcribe")
    tr.add_argument("--word-timestamps", action="store_true")
    tr.add_argument("--initial-prompt", default=None)
    tr.add_argument("--hotwords", default=None)
    tr.add_argument("--no-vad", action="store_true", help="decode all audio, not only speech")
    tr.add_argument("--diarize", action="store_true")
    tr.add_argument("--num-speakers", type=int, default=None)
    tr.add_argument("--min-speakers", type=int, default=None)
    tr.add_argument("--max-speakers", type=int, default=None)
    tr.add_argument("--threads", type=int, default=None, help="CPU threads (default AURICLE_CPU_THREADS)")
    tr.add_argument("--output-dir", default=None)
    tr.set_defaults(func=cmd_transcribe)

    st = sub.add_parser("stream", help="stream a file (or the microphone) to a server over WebSocket")
    st.add_argument("file", nargs="?", help="audio or video file (omit with --mic)")
    st.add_argument("--mic", action="store_true", help="stream the default microphone until Ctrl+C (sounddevice)")
    st.add_argument("--url", default="ws://127.0.0.1:9000/transcribe")
    st.add_argument("--fast", action="store_true", help="send as fast as possible (no real-time pacing)")
    st.add_argument("--model", default=None)
    st.add_argument("--api-key", default=None)
    st.set_defaults(func=cmd_stream)

    jobs = sub.add_parser("jobs", help="submit, list, watch and fetch jobs on a server")
    jobs.add_argument("--url", default="http://127.0.0.1:9000")
    jobs.add_argument("--api-key", default=None)
    jobs_sub = jobs.add_subparsers(dest="jobs_command", required=True)
    submit = jobs_sub.add_parser("submit")
    submit.add_argument("files", nargs="+")
    submit.add_argument("--model", default=None)
    submit.add_argument("--language", default=None)
    submit.add_argument("--diarize", action="store_true")
    listing = jobs_sub.add_parser("list")
    listing.add_argument("--status", default=None)
    watch = jobs_sub.add_parser("watch")
    watch.add_argument("ids", nargs="+")
    result = jobs_sub.add_parser("result")
    result.add_argument("id")
    result.add_argument("-o", "--output", choices=OUTPUTS, default="text")
    result.add_argument("--output-file", default=None)
    jobs.set_defaults(func=cmd_jobs)

    from auricle.evaluation.runner import add_parser as add_eval_parser

    add_eval_parser(sub)

    config = sub.add_parser("config", help="print the configuration reference")
    config.add_argument("--markdown", action="store_true")
    config.set_defaults(func=cmd_config)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``auricle`` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    configure_logging(
        settings.log_level if args.command not in ("transcribe", "eval") else "WARNING", settings.log_format
    )
    try:
        return args.func(args, settings)
    except AuricleError as exc:
        sys.stderr.write(f"auricle: {exc.message}\n")
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
