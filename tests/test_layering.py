"""The package's layers: imports run one way, top to bottom, and never in a circle.

A lower layer never asks a higher one (config asks a model class for its own attributes; it
does not import the model contract), so any module can be imported first, on its own, from a
wheel or a source tree. The check reads the code (``ast``), every import at module level and
inside functions alike; it runs nothing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = "recbole_lsrm"
SOURCE = Path(__file__).resolve().parent.parent / PACKAGE
TESTS = Path(__file__).resolve().parent

# Top first. A module belongs to the first layer one of whose prefixes it starts with; every
# ``__main__`` (a command line) is a command whatever its package.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("commands", ("recbole_lsrm", "recbole_lsrm.__main__", "recbole_lsrm.cli", "recbole_lsrm.scales")),
    ("study", ("recbole_lsrm.study",)),
    ("sweep", ("recbole_lsrm.sweep",)),
    ("pipeline, recommend", ("recbole_lsrm.pipeline", "recbole_lsrm.recommend")),
    ("trainer, tasks, scaling, evaluation",
     ("recbole_lsrm.trainer", "recbole_lsrm.tasks", "recbole_lsrm.scaling", "recbole_lsrm.evaluation")),
    ("model", ("recbole_lsrm.model",)),
    ("data", ("recbole_lsrm.data", "recbole_lsrm.prepare")),
    ("config, options", ("recbole_lsrm.config", "recbole_lsrm.options", "recbole_lsrm.compat",
                         "recbole_lsrm.distributed", "recbole_lsrm.precision", "recbole_lsrm.logging_setup",
                         "recbole_lsrm.cpu_allocator")),
    ("io, errors", ("recbole_lsrm.io", "recbole_lsrm.errors", "recbole_lsrm.commands", "recbole_lsrm.tables")),
]
# Imports inside functions are kept only where they save real start-up time (Ray, matplotlib,
# TensorBoard's writer), each with a comment saying so.
LAZY_ALLOWED = ("ray", "matplotlib", "torch.utils.tensorboard")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SOURCE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(SOURCE.rglob("*.py"))}


def layer_of(module: str) -> int:
    if module.split(".")[-1] == "__main__":
        return 0
    best = None
    for rank, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if module == prefix or (prefix != PACKAGE and module.startswith(prefix + ".")):
                best = rank if best is None else best
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS in {__file__}"
    return best


def imports(module: str) -> list[tuple[str, int, bool, bool]]:
    """(imported name, line, inside a function, with a comment on its line or the one above)."""
    path = MODULES[module]
    source = path.read_text(encoding="utf-8")
    lines = source.splitlines()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []

    def commented(node: ast.stmt) -> bool:
        here = lines[node.lineno - 1]
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        return "#" in here or above.startswith("#")

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import):
                for alias in child.names:
                    found.append((alias.name, child.lineno, in_function, commented(child)))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parent = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join(parent + ([base] if base else []))
                for alias in child.names:
                    name = f"{base}.{alias.name}"
                    found.append((name if name in MODULES else base, child.lineno, in_function, commented(child)))
            else:
                visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    visit(ast.parse(source), False)
    return found


def own(name: str) -> str | None:
    """The package module an import names (its longest known prefix), or None for another package."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


GRAPH = {m: sorted({own(n) for n, *_ in imports(m)} - {None, m}) for m in MODULES}


def test_every_module_has_a_layer():
    for module in MODULES:
        layer_of(module)


def test_no_import_runs_upward():
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in GRAPH.items() for t in targets
        if layer_of(t) < layer_of(m) and not m.startswith(t + ".") and t != PACKAGE
    ]
    assert not upward, "imports from a lower layer to a higher one:\n" + "\n".join(upward)


def test_no_circle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(module: str) -> list[str] | None:
        state[module] = 1
        stack.append(module)
        for target in GRAPH[module]:
            # A module names its own package's __init__ only to reach a sibling; the package
            # importing its modules is not a circle.
            if module.startswith(target + "."):
                continue
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = walk(target)
                if cycle:
                    return cycle
        stack.pop()
        state[module] = 2
        return None

    for module in MODULES:
        if module not in state:
            cycle = walk(module)
            assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_imports_inside_functions_only_to_save_start_up_time():
    bad = sorted({
        f"{MODULES[m].relative_to(SOURCE.parent)}:{line} imports {name} inside a function"
        + ("" if commented else " (and says nothing of why)")
        for m in MODULES for name, line, in_function, commented in imports(m)
        if in_function and not (commented and any(name == a or name.startswith(a + ".") for a in LAZY_ALLOWED))
    })
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sorted(TESTS.glob("test_*.py")), ids=lambda p: p.name)
def test_no_test_file_imports_another(path: Path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    others = sorted(n for n in names if n.split(".")[0].startswith("test_"))
    assert not others, f"{path.name} imports {', '.join(others)}: shared helpers belong in conftest.py"


def test_the_check_sees_imports_and_ranks(tmp_path: Path):
    """The walk finds imports at the top and inside functions, and the ranks would catch config
    importing the model contract or data importing a model."""
    found = {(name, in_function) for name, _, in_function, _ in imports("recbole_lsrm.sweep.runner")}
    assert ("ray", True) in found and ("recbole_lsrm.sweep.plan", False) in found
    assert layer_of("recbole_lsrm.config") > layer_of("recbole_lsrm.model.contract")
    assert layer_of("recbole_lsrm.data.fields") > layer_of("recbole_lsrm.model.decoder")
    assert layer_of("recbole_lsrm.scaling.__main__") == 0
