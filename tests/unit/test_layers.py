"""The import contract over every module: layers point one way, no cycles, one home for faster-whisper.

Imports are read from the source (``ast``), so lazy imports inside functions count as much as top-level ones.
Imports under ``if TYPE_CHECKING:`` never run, so they count for layers but not for cycles.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "auricle"

# What each part may import from inside auricle (besides itself). Everything below the line is shared ground.
SHARED = ("auricle.config", "auricle.errors", "auricle.logs", "auricle.metrics")
ALLOWED: dict[str, tuple[str, ...]] = {
    "auricle.engine": ("auricle.models", *SHARED),
    "auricle.models": ("auricle.engine", *SHARED),
    "auricle.jobs": ("auricle.engine", "auricle.models", *SHARED),
    "auricle.streaming": ("auricle.engine", "auricle.models", *SHARED),
    "auricle.evaluation": ("auricle.engine", "auricle.models", *SHARED),
    "auricle.api": ("auricle.engine", "auricle.models", "auricle.jobs", "auricle.streaming", *SHARED),
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    runtime: bool  # False when only under `if TYPE_CHECKING:`


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str:
    """The module a dotted import name lands in (``from auricle.x import y`` may name a module or an attribute)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(module: str, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text())
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            type_only.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    is_package = path.name == "__init__.py"
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_package else anchor[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names] if base.startswith("auricle") else [base]
        for name in names:
            target = _resolve(name) if name.startswith("auricle") else name
            found.append(Import(module, target, node.lineno, id(node) not in type_only))
    return found


ALL_IMPORTS = [imp for module, path in MODULES.items() for imp in _imports(module, path)]


def _part(module: str) -> str | None:
    return next((part for part in ALLOWED if module == part or module.startswith(part + ".")), None)


def test_each_layer_imports_only_what_lies_below_it():
    broken = []
    for imp in ALL_IMPORTS:
        part = _part(imp.source)
        if part is None or not imp.target.startswith("auricle.") or imp.target.startswith(part):
            continue
        if not imp.target.startswith(ALLOWED[part]):
            broken.append(f"{imp.source}:{imp.line} imports {imp.target}")
    assert not broken, "imports against the layers:\n" + "\n".join(broken)


def test_nothing_below_the_api_imports_web_frameworks_or_the_api_nor_the_engine_queues():
    above = ("auricle.api", "auricle.app", "auricle.cli")
    web = ("fastapi", "starlette", "uvicorn")
    queues = ("redis", "dramatiq")
    broken = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if (_part(imp.source) not in (None, "auricle.api") and imp.target.startswith(above))
        or (_part(imp.source) in ("auricle.engine", "auricle.models", "auricle.jobs") and imp.target.startswith(web))
        or (_part(imp.source) in ("auricle.engine", "auricle.models") and imp.target.startswith(queues))
    ]
    assert not broken, "\n".join(broken)


def test_only_the_engine_imports_faster_whisper():
    broken = [
        f"{imp.source}:{imp.line}"
        for imp in ALL_IMPORTS
        if imp.target.split(".")[0] in ("faster_whisper", "ctranslate2") and _part(imp.source) != "auricle.engine"
    ]
    assert not broken, "faster_whisper imported outside engine/: " + ", ".join(broken)


def _cycle() -> list[str] | None:
    graph: dict[str, set[str]] = {module: set() for module in MODULES}
    for imp in ALL_IMPORTS:
        if imp.runtime and imp.target in MODULES and imp.target != imp.source:
            # A module importing its own package's __init__ for a sibling is resolved to the sibling already;
            # a plain `import auricle` from inside the package is not a dependency on every submodule.
            if imp.target == "auricle":
                continue
            graph[imp.source].add(imp.target)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module)):
            return found
    return None


def test_no_import_cycle_between_modules():
    cycle = _cycle()
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_contract_sees_lazy_and_type_only_imports(tmp_path):
    # Given a module with a lazy import in a function and an import only for type checking
    module = tmp_path / "sample.py"
    module.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from auricle.api import deps\n"
        "def later():\n    from auricle.jobs import base\n    import faster_whisper\n"
    )
    # When its imports are read
    found = {imp.target: imp.runtime for imp in _imports("auricle.engine.sample", module)}
    # Then the lazy ones count as run-time imports and the type-only one does not
    assert found["auricle.jobs.base"] is True and found["faster_whisper"] is True
    assert found["auricle.api.deps" if "auricle.api.deps" in MODULES else "auricle.api"] is False


def test_streaming_reaches_the_engine_only_through_protocols_types_and_runtime():
    seams = ("auricle.engine.protocols", "auricle.engine.types", "auricle.engine.runtime")
    broken = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if _part(imp.source) == "auricle.streaming"
        and imp.target.startswith("auricle.engine")
        and not imp.target.startswith(seams)
    ]
    assert not broken, "\n".join(broken)


def test_job_stores_do_not_know_the_workers():
    stores = {f"auricle.jobs.{name}" for name in ("base", "memory", "sqlite", "redis", "dramatiq")}
    broken = [
        f"{imp.source}:{imp.line} imports {imp.target}"
        for imp in ALL_IMPORTS
        if imp.source in stores and imp.target in ("auricle.jobs.worker", "auricle.jobs.service")
    ]
    assert not broken, "\n".join(broken)
