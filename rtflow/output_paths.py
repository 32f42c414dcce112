"""Checking the places a run will write to, before its first request: a run that cannot keep what it pays for
must not start. Each failure is a `FlowError` naming the path and what is wrong with it (exit 2), never a
provider failure reported later."""

from __future__ import annotations

import os
from pathlib import Path

from rtflow.errors import FlowError

__all__ = [
    "EXPORT_FORMATS",
    "check_export_file",
    "check_output_file",
    "ensure_writable_folder",
    "export_format_problem",
]

EXPORT_FORMATS = (".json", ".jsonl", ".csv", ".html", ".xml", ".md")
"""The file suffixes a run's results can be exported to (`.htm` is taken for `.html`, `.markdown` for `.md`):
`.xml` is JUnit XML and `.md` a Markdown summary, the formats CI systems show."""


def export_format_problem(path: str | Path) -> str | None:
    """What is wrong with `path` as an export target's name (its suffix), or None."""
    suffix = Path(path).suffix.lower()
    if suffix in (*EXPORT_FORMATS, ".htm", ".markdown"):
        return None
    return f"unknown export format {suffix or '(no suffix)'!r}; use {', '.join(EXPORT_FORMATS)}"


def check_export_file(path: Path, what: str) -> None:
    """`path` names a known export format and can be written (see `check_output_file`)."""
    problem = export_format_problem(path)
    if problem is not None:
        raise FlowError(f"{what} {path}: {problem}")
    check_output_file(path, what)


def ensure_writable_folder(folder: Path, what: str) -> None:
    """`folder` exists (it is created if missing) and this process may write in it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise FlowError(f"{what} {folder} is a file, not a folder") from None
    except OSError as exc:
        raise FlowError(f"{what} {folder} cannot be created: {exc.strerror or exc}") from None
    if not folder.is_dir():
        raise FlowError(f"{what} {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise FlowError(f"{what} {folder} is not writable")


def check_output_file(path: Path, what: str) -> None:
    """`path` can be written: its folder exists or can be made and is writable, and it is not a folder itself."""
    if path.is_dir():
        raise FlowError(f"{what} {path} is a folder; name a file")
    ensure_writable_folder(path.parent, f"the folder of {what} {path},")
    if path.exists() and not os.access(path, os.W_OK):
        raise FlowError(f"{what} {path} is not writable")
