"""Reading the local files a flow names (the flow itself, var files, prompt templates) with limits.

A flow may name any path: a symlink loop, a folder, `/dev/zero` or a multi-gigabyte file must end in one clear
`LocalFileError` naming the file, never a traceback, a hang or an exhausted memory.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import yaml

from rtflow.flow.yaml_reader import describe_error, read_data

__all__ = ["MAX_FILE_BYTES", "DataFileError", "LocalFileError", "parse_data", "read_text"]

MAX_FILE_BYTES = 64 * 2**20
"""The largest file a flow may read: four times a 50,000-test suite."""


class LocalFileError(ValueError):
    """A local file could not be read; the message says which and why."""


def read_text(path: Path, what: str, *, limit: int = MAX_FILE_BYTES) -> str:
    """`path` as UTF-8 text; `what` names it in errors ("flow file", "var file", ...)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise LocalFileError(f"no such {what}: {path}") from None
    except OSError as exc:  # a symlink loop, a permission denied on a folder on the way
        raise LocalFileError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise LocalFileError(f"the {what} {path} is {kind}")
    if info.st_size > limit:
        raise LocalFileError(f"the {what} {path} holds {info.st_size:,} bytes; the limit is {limit:,}")
    try:
        with path.open("rb") as file:
            data = file.read(limit + 1)
    except OSError as exc:
        raise LocalFileError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if len(data) > limit:  # grew since the stat
        raise LocalFileError(f"the {what} {path} is larger than the limit of {limit:,} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LocalFileError(f"the {what} {path} is not UTF-8 text: {exc.reason} at byte {exc.start}") from None


class DataFileError(ValueError):
    """A data file that does not parse: its `language` (JSON or YAML), where (`line`, `column`) and why."""

    def __init__(self, language: str, reason: str, line: int | None, column: int | None = None) -> None:
        super().__init__(reason)
        self.language = language
        self.reason = reason
        self.line = line
        self.column = column


def parse_data(text: str, suffix: str) -> Any:
    """The data of a `.json` or `.yaml`/`.yml` file's text; YAML through the flow file's own reader and limits.
    Callers word the `DataFileError` for their file (a var file, a test file)."""
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataFileError("JSON", exc.msg, exc.lineno, exc.colno) from None
        except RecursionError:
            raise DataFileError("JSON", "it nests too deeply", None) from None
    try:
        return read_data(text)[0]
    except yaml.YAMLError as exc:
        reason, line, column = describe_error(exc, text)
        raise DataFileError("YAML", reason.removeprefix("YAML syntax error: "), line, column) from None
