"""Streaming reaches the engine only through its protocols and facade, and its modules import no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "auricle"


def imports_of(path: Path) -> set[str]:
    """Every module ``path`` imports, at module level or inside functions (lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


STREAMING = {f"auricle.streaming.{p.stem}": p for p in (PACKAGE / "streaming").glob("*.py") if p.stem != "__init__"}


@pytest.mark.parametrize("module", sorted(STREAMING))
def test_streaming_uses_the_engine_only_through_protocols_types_and_runtime(module: str) -> None:
    allowed = ("auricle.engine.protocols", "auricle.engine.types", "auricle.engine.runtime")
    for imported in imports_of(STREAMING[module]):
        assert not imported.startswith(("faster_whisper", "ctranslate2", "auricle.api")), f"{module}: {imported}"
        if imported.startswith("auricle.engine"):
            assert imported.startswith(allowed), f"{module} imports {imported}"


def test_streaming_modules_import_no_cycle() -> None:
    graph = {
        module: {other for other in STREAMING if other != module and other in imports_of(path)}
        for module, path in STREAMING.items()
    }

    def visit(module: str, trail: list[str]) -> None:
        assert module not in trail, " -> ".join([*trail, module])
        for other in graph[module]:
            visit(other, [*trail, module])

    for module in graph:
        visit(module, [])
