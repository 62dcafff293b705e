"""``auricle models`` (the models this installation can use) and ``auricle config`` (the settings reference)."""

from __future__ import annotations

import argparse
import json

from auricle.cli._output import out
from auricle.config import Settings, reference

__all__ = ["cmd_config", "cmd_models", "register_config", "register_models"]


def cmd_models(args: argparse.Namespace, settings: Settings) -> int:
    """List known models."""
    from auricle.models.registry import ModelRegistry

    registry = ModelRegistry(settings)
    rows = registry.list()
    if args.json:
        out(json.dumps([r.__dict__ for r in rows], indent=2))
        return 0
    out(f"{'model':<18}{'installed':<11}{'source':<10}{'languages':<11}{'size':>9}  default")
    for row in rows:
        size = f"{row.size_bytes / 1e6:.0f} MB" if row.size_bytes else "-"
        langs = "99 (multi)" if row.multilingual else "en only"
        out(
            f"{row.id:<18}{'yes' if row.installed else 'no':<11}{row.source:<10}{langs:<11}{size:>9}  "
            f"{'*' if row.default else ''}"
        )
    if not settings.allow_download:
        out("\nModels not installed need AURICLE_ALLOW_DOWNLOAD=true (online) or AURICLE_MODELS_DIR.")
    return 0


def cmd_config(args: argparse.Namespace, settings: Settings) -> int:
    """Print the configuration reference (drawn from the Settings class)."""
    rows = reference()
    if args.markdown:
        out("| variable | default | meaning |\n|---|---|---|")
        for row in rows:
            default = row["default"]
            shown = "" if default is None else json.dumps(default) if not isinstance(default, str) else default
            out(f"| `{row['env']}` | `{shown}` | {row['description']} |")
        return 0
    for row in rows:
        out(f"{row['env']}={row['default']!s:<12} {row['description']}")
    return 0


def register_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``models`` to the ``auricle`` parser."""
    models = sub.add_parser("models", help="list models")
    models.add_argument("--json", action="store_true")
    models.set_defaults(func=cmd_models)


def register_config(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``config`` to the ``auricle`` parser."""
    config = sub.add_parser("config", help="print the configuration reference")
    config.add_argument("--markdown", action="store_true")
    config.set_defaults(func=cmd_config)
