"""The jobs package's place in the layers: it never imports the HTTP layer, and its modules import each other
without a cycle (imports inside functions count)."""

from __future__ import annotations

import ast
from pathlib import Path

import auricle.jobs

JOBS = Path(auricle.jobs.__file__).parent


def imports_of(path: Path) -> set[str]:
    """Every ``auricle`` module ``path`` imports, at any depth of the file."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.startswith("auricle"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("auricle"):
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def module_graph() -> dict[str, set[str]]:
    modules = {f"auricle.jobs.{p.stem}": p for p in JOBS.glob("*.py") if p.stem != "__init__"}
    return {name: imports_of(path) & set(modules) - {name} for name, path in modules.items()}


def test_jobs_never_import_the_api() -> None:
    for path in JOBS.glob("*.py"):
        assert not [m for m in imports_of(path) if m.startswith("auricle.api")], path


def test_no_import_cycle_between_job_modules() -> None:
    graph = module_graph()
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name in done:
            return
        for imported in graph[name]:
            visit(imported, [*path, name])
        done.add(name)

    for name in graph:
        visit(name, [])


def test_the_stores_do_not_know_the_workers() -> None:
    graph = module_graph()
    for store in ("base", "memory", "sqlite", "redis", "dramatiq"):
        assert not graph[f"auricle.jobs.{store}"] & {"auricle.jobs.worker", "auricle.jobs.service"}, store
