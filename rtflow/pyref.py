"""Python references in flow files: `file://path/to/module.py:function`.

Prompt functions, tool handlers and `python` assertions all name a function this way. Paths resolve against
the flow file's folder. Each file is imported once per process under a private module name derived from its
absolute path, so two flows with a `tools.py` each never shadow one another.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from rtflow.errors import FlowError

__all__ = ["FILE_PREFIX", "is_python_ref", "load_callable", "resolve_path", "split_python_ref"]

FILE_PREFIX = "file://"


def resolve_path(ref: str, base_dir: Path) -> Path:
    """The absolute path a `file://` reference (or a plain relative path) names."""
    raw = ref[len(FILE_PREFIX) :] if ref.startswith(FILE_PREFIX) else ref
    path = Path(raw).expanduser()
    # Normalised, not resolved: following symlinks here would loop forever on a symlink loop (a read says so).
    return path if path.is_absolute() else Path(os.path.normpath(base_dir / path))


def is_python_ref(ref: str) -> bool:
    """Whether `ref` has the form `file://something.py:function`."""
    if not ref.startswith(FILE_PREFIX):
        return False
    file_part, _, func = ref[len(FILE_PREFIX) :].rpartition(":")
    return file_part.endswith(".py") and bool(func)


def split_python_ref(ref: str) -> tuple[str, str]:
    """`file://a/b.py:fn` -> (`a/b.py`, `fn`)."""
    file_part, _, func = ref[len(FILE_PREFIX) :].rpartition(":")
    return file_part, func


def _import_file(path: Path) -> ModuleType:
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:12]
    module_name = f"_rtflow_user_{path.stem}_{digest}"
    cached = sys.modules.get(module_name)
    if cached is not None:
        return cached
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise FlowError(f"{path}: cannot be imported as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[module_name]
        raise FlowError(f"{path}: importing it failed: {type(exc).__name__}: {exc}") from exc
    return module


def load_callable(ref: str, base_dir: Path) -> Callable[..., Any]:
    """Import the function that `file://x.py:func` names; a clear `FlowError` when it cannot."""
    if not is_python_ref(ref):
        raise FlowError(f"{ref!r} is not a Python reference; expected file://path/to/module.py:function")
    file_part, func_name = split_python_ref(ref)
    path = resolve_path(file_part, base_dir)
    if not path.is_file():
        raise FlowError(f"{ref}: no such file {path}")
    module = _import_file(path)
    func = getattr(module, func_name, None)
    if func is None or not callable(func):
        known = sorted(name for name, value in vars(module).items() if callable(value) and not name.startswith("_"))
        raise FlowError(f"{ref}: {path.name} has no function {func_name!r} (it has: {', '.join(known) or 'none'})")
    return func  # type: ignore[no-any-return]
