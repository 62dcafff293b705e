"""``auricle transcribe``: transcribe files offline, in this process, printing or writing each transcript."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from auricle.cli._output import OUTPUTS, out
from auricle.config import Settings
from auricle.errors import AuricleError

__all__ = ["cmd_transcribe", "register"]


def cmd_transcribe(args: argparse.Namespace, settings: Settings) -> int:
    """Transcribe files offline, printing or writing each transcript."""
    from tqdm import tqdm

    from auricle.api.params import parse_language
    from auricle.engine.formats import EXTENSIONS, render
    from auricle.engine.pipeline import PipelineEvent
    from auricle.engine.runtime import Runtime
    from auricle.engine.types import TranscribeOptions

    if args.model:
        settings.default_model = args.model
    if args.threads:
        settings.cpu_threads = args.threads
    # The same language names and codes as the HTTP API accepts (UnsupportedLanguageError otherwise).
    language = parse_language(args.language) if args.language else None
    runtime = Runtime(settings)
    options = TranscribeOptions(
        model=args.model,
        language=language,
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
                out(f"==> {path} <==")
            out(text)
    return 1 if failures else 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``transcribe`` to the ``auricle`` parser."""
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
