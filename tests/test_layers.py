"""The dependency direction of DESIGN.md section 8 holds for every module of the package.

Data travels flow -> plan -> runner -> results. Each module belongs to one layer, found from its name, and
may import only the layers listed for it (imports inside functions count too). A module that no layer
claims fails the test, so a new folder cannot slip in without a rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rtflow"

LEAVES = {
    "rtflow._version",
    "rtflow.errors",
    "rtflow.messages",
    "rtflow.log",
    "rtflow.pyref",
    "rtflow.durations",
    "rtflow.output_paths",
    "rtflow.terminal",
    "rtflow.gc_pause",
    "rtflow.lazy_names",
    "rtflow.user_code",
    "rtflow.arrival_stamps",
}
"""Modules every layer may use; they import nothing of rtflow but one another."""

STAGES = ("flow", "plan", "runner", "results")
WINGS = ("providers", "audio", "sim", "js")

# layer -> the layers it may import (its own included)
ALLOWED: dict[str, set[str]] = {
    "leaf": {"leaf"},
    # Wings never import the pipeline: providers and the simulator share only the leaves and the audio codecs.
    "audio": {"leaf", "audio"},
    "providers": {"leaf", "audio", "js", "providers"},
    "sim": {"leaf", "audio", "sim"},
    # The JavaScript bridge: a wing the flow, the providers and the assertions call into.
    "js": {"leaf", "js"},
    # The pipeline, each stage on the ones before it (flow resolves provider configs through the registry).
    "flow": {"leaf", "flow", "providers", "js"},
    "plan": {"leaf", "flow", "plan"},
    "results": {"leaf", "flow", "plan", "js", "results"},
    "runner": {"leaf", "flow", "plan", "results", "providers", "audio", "js", "runner"},
    # The library's entry points: `rtflow.api` drives the stages (and starts the simulator for sim=True).
    "api": {"leaf", "flow", "plan", "runner", "results", "providers", "sim", "js", "api"},
    # rtflow/__init__.py names the public API (for type checkers) and resolves it lazily.
    "public": {"leaf", "public", "api", "flow", "plan", "results"},
    # The command line parses and prints: it calls the library and reads results; it never drives a stage itself.
    "cli": {"leaf", "public", "api", "results", "cli", "sim", "flow", "plan", "runner", "viewer"},
    # The local web app reads the run store and serves its reports; it never drives a run nor reaches a wing.
    "viewer": {"leaf", "results", "viewer"},
    # The pytest plugin, an entry point like the CLI: it runs flows through the public API and prints records.
    "pytest_plugin": {"leaf", "public", "results"},
}

# Finer rules inside a layer: module prefix -> prefixes it must never import.
FORBIDDEN = {
    "rtflow.errors": ["rtflow."],
    "rtflow.messages": ["rtflow."],
    "rtflow._version": ["rtflow."],
    "rtflow.durations": ["rtflow."],
    "rtflow.runner": ["rtflow.providers.openai"],  # the scheduler never special-cases a vendor
    "rtflow.cli": ["rtflow.runner.scheduler", "rtflow.plan.compiler", "rtflow.flow.loader", "rtflow.providers"],
    # Records and results come through the public API; it reads one results helper to print a turn, and never
    # opens the store itself.
    "rtflow.pytest_plugin": ["rtflow.results.store", "rtflow.results.run_result", "rtflow.results.records"],
}


def layer_of(module: str) -> str:
    if module == "rtflow":
        return "public"
    if module in LEAVES:
        return "leaf"
    if module == "rtflow.api":
        return "api"
    if module == "rtflow.__main__":  # `python -m rtflow` is the command line
        return "cli"
    if module == "rtflow.pytest_plugin":
        return "pytest_plugin"
    part = module.split(".")[1]
    if part in STAGES or part in WINGS or part in ("cli", "viewer"):
        return part
    raise LookupError(f"{module} belongs to no layer: add it to tests/test_layers.py")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "rtflow":
                found.update(f"rtflow.{alias.name}" for alias in node.names if alias.name != "__version__")
                found.add("rtflow")
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "rtflow" or name.startswith("rtflow.")}


def _imported_layer(imported: str) -> str:
    # `rtflow.flow.spec` -> flow; a name imported from the package itself is the public API.
    for candidate in (imported, ".".join(imported.split(".")[:2])):
        try:
            return layer_of(candidate)
        except LookupError:
            continue
    return "public"


EXAMPLES = PACKAGE / "examples"
"""The projects `rtflow init` writes out: data shipped in the package, not rtflow's code."""
MODULES = sorted(path for path in PACKAGE.rglob("*.py") if EXAMPLES not in path.parents)


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_module_imports_follow_the_dependency_direction(path: Path) -> None:
    """Each module imports only the layers its own layer may use, and nothing its finer rules forbid."""
    name = _module_name(path)
    layer = layer_of(name)
    for imported in sorted(_imports(path)):
        imported_layer = _imported_layer(imported)
        assert imported_layer in ALLOWED[layer], f"{name} ({layer}) imports {imported} ({imported_layer})"
        for prefix, banned in FORBIDDEN.items():
            if name == prefix or name.startswith(prefix + "."):
                for forbidden in banned:
                    assert not imported.startswith(forbidden), f"{name} imports {imported}, forbidden by {prefix}"


def test_every_layer_has_a_rule() -> None:
    """Every module of the package belongs to a layer that has a rule."""
    assert {layer_of(_module_name(path)) for path in MODULES} <= set(ALLOWED)
