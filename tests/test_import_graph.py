"""The modules of ArkDash import each other without cycles, but for one: a service queues a
Celery task by importing tasks_app.tasks inside the function that sends it (tasks_app.tasks
imports the services to call them). Read from the source with `ast` in a fresh interpreter (see
_imports_read_apart), nothing imported."""

from __future__ import annotations

import ast
import functools
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("tasks_app", "arkdash")
# The one import allowed to close a cycle, and only from inside a function.
CELERY_TASKS = "tasks_app.tasks"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" not in path.parts:
                found[_module_name(path)] = path
    return found


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The module that importing `name` runs: itself, or the package holding the name."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports(module: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported module, lazily: inside a function) for each import of `module`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    lazy_nodes = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for inner in ast.walk(node)
    }
    found = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name, modules)
            if target is not None and target != module:
                found.append((target, id(node) in lazy_nodes))
    return found


def _imports_read_apart(modules: dict[str, Path]) -> dict[str, list[tuple[str, bool]]]:
    """_imports of every module, read in a fresh interpreter. CPython 3.11's ast.parse counts
    its depth in one counter per interpreter, which another thread of the suite can leave off
    balance ("SystemError: AST constructor recursion depth mismatch", CPython gh-106905)."""
    script = (
        "import json, sys\n"
        "from pathlib import Path\n"
        "from tests.test_import_graph import _imports\n"
        "modules = {name: Path(path) for name, path in json.load(sys.stdin).items()}\n"
        "print(json.dumps({name: _imports(name, path, modules) for name, path in modules.items()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], input=json.dumps({n: str(p) for n, p in modules.items()}),
                          capture_output=True, text=True, cwd=ROOT, timeout=120, check=True)  # fmt: skip
    return {name: [(target, lazy) for target, lazy in found] for name, found in json.loads(done.stdout).items()}


@functools.cache
def _project_imports() -> dict[str, list[tuple[str, bool]]]:
    return _imports_read_apart(_modules())


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def _graph(*, lazy: bool) -> dict[str, set[str]]:
    imports = _project_imports()
    edges: dict[str, set[str]] = {name: set() for name in imports}
    for name, found in imports.items():
        for target, is_lazy in found:
            if not is_lazy:
                edges[name].add(target)
            elif lazy and target != CELERY_TASKS:
                edges[name].add(target)
    return edges


def test_it_finds_no_cycle_among_module_level_imports():
    assert _cycles(_graph(lazy=False)) == []


def test_it_finds_no_cycle_through_lazy_imports_other_than_the_celery_tasks():
    assert _cycles(_graph(lazy=True)) == []


def test_it_sees_the_lazy_celery_task_import_close_a_cycle():
    # The check above must be able to fail: with the Celery-task import counted, the
    # services and tasks_app.tasks form the one cycle there is.
    edges = _graph(lazy=True)
    for name, found in _project_imports().items():
        edges[name].update(target for target, is_lazy in found if is_lazy)
    cycles = _cycles(edges)
    assert len(cycles) == 1
    assert CELERY_TASKS in cycles[0]
    assert "tasks_app.services.sync" in cycles[0] and "tasks_app.services.archive" in cycles[0]


def test_it_reads_an_import_inside_a_function_as_lazy(tmp_path):
    path = tmp_path / "example.py"
    path.write_text("import tasks_app.models\n\ndef later():\n    from tasks_app import tasks\n")
    modules = {"example": path, "tasks_app.models": path, "tasks_app.tasks": path}
    assert _imports_read_apart(modules)["example"] == [("tasks_app.models", False), ("tasks_app.tasks", True)]
