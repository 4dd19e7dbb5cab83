"""The code's layout keeps its promises: no import cycles, the lesson's components stay plain
PyTorch, data never reaches into models or tasks, the lesson never reaches into the plumbing."""

import ast
from pathlib import Path

import pytest

from tests.helpers import ROOT

PACKAGE = ROOT / "src" / "attnlab"
LESSON = ("attnlab.attention", "attnlab.dropout", "attnlab.positional", "attnlab.models", "attnlab.decoding", "attnlab.metrics")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set:
    """Every module this file imports, at the top or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


GRAPH = {module_name(p): imports_of(p) for p in PACKAGE.rglob("*.py")}


def internal(module: str) -> set:
    """The attnlab modules ``module`` imports (``from attnlab.x import y`` counts as attnlab.x)."""
    return {m for m in GRAPH[module] if m in GRAPH}


def under(module: str, prefixes) -> bool:
    return any(module == p or module.startswith(p + ".") for p in prefixes)


def test_the_import_graph_has_no_cycle():
    state = {}  # module -> "visiting" | "done"

    def visit(module, path):
        if state.get(module) == "done":
            return
        if state.get(module) == "visiting":
            cycle = path[path.index(module):] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        state[module] = "visiting"
        for dep in sorted(internal(module)):
            visit(dep, path + [module])
        state[module] = "done"

    for module in sorted(GRAPH):
        visit(module, [])
    assert len(GRAPH) > 25  # the walk saw the whole package


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if under(m, LESSON)))
def test_the_lessons_components_are_plain_pytorch(module):
    # torchmetrics is fine (the metrics are torchmetrics objects): it is plain PyTorch too
    frameworks = {m for m in GRAPH[module] if under(m, ("lightning", "hydra", "wandb", "omegaconf"))}
    plumbing = {m for m in internal(module) if under(m, ("attnlab.run", "attnlab.cli", "attnlab.tasks", "attnlab.data"))}
    assert not frameworks and not plumbing, (frameworks, plumbing)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if under(m, ("attnlab.data",))))
def test_data_code_never_imports_models_tasks_or_the_run(module):
    reached = {m for m in internal(module) if under(m, ("attnlab.models", "attnlab.tasks", "attnlab.run", "attnlab.cli"))}
    assert not reached


def test_nothing_in_the_package_imports_the_training_pipeline():
    """train.py runs it; evaluation and the tools get what they need from data/, tasks/ and run/."""
    assert {m for m in GRAPH if "attnlab.run.pipeline" in internal(m)} == set()


def test_only_the_dashboard_command_imports_wandb_workspaces():
    """It is an optional extra (attnlab[dashboard]): training must run without it."""
    importers = {m for m, deps in GRAPH.items() if any(under(d, ("wandb_workspaces",)) for d in deps)}
    assert importers == {"attnlab.cli.dashboard"}
    assert {m for m in GRAPH if "attnlab.cli.dashboard" in internal(m)} == set()
