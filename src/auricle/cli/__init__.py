"""The ``auricle`` command: serve, worker, models, transcribe, stream, jobs, eval, config.

Each command lives in its own module with a ``cmd_*`` function and a ``register`` that adds its parser;
:func:`build_parser` puts them together and :func:`main` (the console script) runs one.
"""

from __future__ import annotations

import argparse
import logging
import sys

from auricle import __version__
from auricle.cli import jobs, models, serve, stream, transcribe
from auricle.config import Settings
from auricle.errors import AuricleError
from auricle.evaluation import runner as evaluation
from auricle.logs import configure_logging

__all__ = ["build_parser", "main"]

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the CLI)."""
    parser = argparse.ArgumentParser(prog="auricle", description="Self-hosted speech-to-text server.")
    parser.add_argument("--version", action="version", version=f"auricle {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    serve.register(sub)
    models.register_models(sub)
    transcribe.register(sub)
    stream.register(sub)
    jobs.register(sub)
    evaluation.add_parser(sub)
    models.register_config(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``auricle`` console script."""
    args = build_parser().parse_args(argv)
    settings = Settings()
    quiet = args.command in ("transcribe", "eval")  # their output is the result: logs only for warnings
    configure_logging("WARNING" if quiet else settings.log_level, settings.log_format)
    try:
        code: int = args.func(args, settings)
    except AuricleError as exc:
        sys.stderr.write(f"auricle: {exc.message}\n")
        return 2
    except KeyboardInterrupt:
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
