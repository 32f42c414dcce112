"""The dependency direction holds: lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "rtflow"

# module prefix -> rtflow modules it must never import (directly or lazily inside a function)
FORBIDDEN = {
    "rtflow.errors": ["rtflow."],
    "rtflow.messages": ["rtflow."],
    "rtflow.audio.g711": ["rtflow."],
    "rtflow.results.records": [
        "rtflow.runner.scheduler",
        "rtflow.api",
        "rtflow.cli",
        "rtflow.providers",
        "rtflow.results.store",
    ],
    "rtflow.flow.spec": ["rtflow.plan.compiler", "rtflow.runner.scheduler", "rtflow.api", "rtflow.cli"],
    "rtflow.plan.graph": ["rtflow.plan.compiler", "rtflow.runner.scheduler", "rtflow.api", "rtflow.cli"],
    "rtflow.plan.compiler": ["rtflow.runner.scheduler", "rtflow.api", "rtflow.cli", "rtflow.results.store"],
    "rtflow.providers": [
        "rtflow.plan.compiler",
        "rtflow.runner.scheduler",
        "rtflow.api",
        "rtflow.cli",
        "rtflow.plan.graph",
        "rtflow.results.store",
        "rtflow.flow.spec",
        "rtflow.flow.loader",
        "rtflow.sim",
    ],
    "rtflow.sim": [
        "rtflow.plan.compiler",
        "rtflow.runner.scheduler",
        "rtflow.api",
        "rtflow.providers",
        "rtflow.results.store",
        "rtflow.flow.spec",
        "rtflow.flow.loader",
        "rtflow.plan.graph",
    ],
    "rtflow.results.assertions": [
        "rtflow.plan.compiler",
        "rtflow.runner.scheduler",
        "rtflow.api",
        "rtflow.cli",
        "rtflow.providers",
    ],
    "rtflow.results.store": [
        "rtflow.plan.compiler",
        "rtflow.runner.scheduler",
        "rtflow.api",
        "rtflow.cli",
        "rtflow.providers",
    ],
    "rtflow.results.report": [
        "rtflow.plan.compiler",
        "rtflow.runner.scheduler",
        "rtflow.api",
        "rtflow.cli",
        "rtflow.providers",
    ],
    "rtflow.runner.scheduler": ["rtflow.api", "rtflow.cli", "rtflow.sim", "rtflow.providers.openai"],
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: _module_name(p))
def test_module_imports_follow_the_dependency_direction(path: Path) -> None:
    """Each module imports only from its own layer or below."""
    name = _module_name(path)
    rules = [banned for prefix, banned in FORBIDDEN.items() if name == prefix or name.startswith(prefix + ".")]
    for banned in (b for rule in rules for b in rule):
        for imported in _imports(path):
            if imported.startswith(banned) and not imported.startswith(name.split(".")[0] + "." + name.split(".")[1]):
                pytest.fail(f"{name} imports {imported}, which is above it ({banned})")
