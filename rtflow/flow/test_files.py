"""Tests kept outside the flow file, as promptfoo keeps them: `tests: file://tests.csv` (or `.json`, `.jsonl`,
`.yaml`, a glob, a list mixing files and inline tests).

The files are read before the flow is validated, into the same test mappings an inline `tests:` list holds, so
every later check applies to them alike. Each test remembers the file and line it came from (`TestOrigin`), so
a problem in it is reported there, not at the flow's `tests:` key.

CSV follows promptfoo's columns: each column is a var, except `__expected` (and `__expected1`, `__expected2`, ...:
one assertion each, written as promptfoo writes them in CSV, see `assertion_from_string`), `__description`,
`__metric` (set on the row's assertions), `__threshold`, and `__metadata:NAME` (`__metadata:conversationId`
groups rows into threads). `__prefix`, `__suffix` and `__providerOutput` are refused with the reason: rtflow
does not support them, and silently ignoring them would change what is tested.
"""

from __future__ import annotations

import csv
import glob
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtflow.flow.assertion_types import BOUND_TYPES, PROMPTFOO_ASSERTION_TYPES
from rtflow.flow.local_files import DataFileError, LocalFileError, parse_data, read_text
from rtflow.pyref import FILE_PREFIX, resolve_path

__all__ = ["TestFileError", "TestOrigin", "assertion_from_string", "expand_test_files", "read_vars_file"]

TEST_FILE_SUFFIXES = (".csv", ".json", ".jsonl", ".yaml", ".yml")

_LIST_TYPES = frozenset({"contains-all", "contains-any", "icontains-all", "icontains-any"})
_THRESHOLD_TYPES = frozenset(
    {"answer-relevance", "classifier", "context-faithfulness", "context-recall", "context-relevance",
     "levenshtein", "perplexity-score", "perplexity", "rouge-n", "similar", "starts-with"}
)  # fmt: skip
"""Scored kinds: `kind(0.9)` is the score to reach, 0.75 (`similar`: 0.8) when the cell gives none."""

_EXPECTED = re.compile(r"^(not-)?([a-z][a-z0-9-]*)(?:\((\d+(?:\.\d+)?)\))?(?::([\s\S]*))?$")
_UNSUPPORTED_COLUMNS = {
    "__prefix": "a prefix added to the prompt",
    "__suffix": "a suffix added to the prompt",
    "__providerOutput": "a canned provider output",
}


class TestFileError(ValueError):
    """A test file that cannot be read or understood; the message names the file (and row)."""


@dataclass(frozen=True)
class TestOrigin:
    """Where one test of the flow was written: a test file and its line (1-based)."""

    file: str
    line: int


def assertion_from_string(expected: str) -> dict[str, Any]:
    """An assertion written as promptfoo writes one in a CSV cell: `contains:Paris`, `not-regex:\\d`,
    `similar(0.9):text`, `grade: rubric`, `javascript: expr`, `python: expr`, `file://check.py`; anything
    else means `equals` the cell's text."""
    for prefix, kind in (("javascript:", "javascript"), ("fn:", "javascript"), ("eval:", "javascript"),
                         ("grade:", "llm-rubric"), ("llm-rubric:", "llm-rubric"), ("python:", "python")):  # fmt: skip
        if expected.startswith(prefix):
            body = expected[len(prefix) :]
            return {"type": kind, "value": body if kind == "llm-rubric" else body.strip()}
    if expected.startswith(FILE_PREFIX):
        reference = expected[len(FILE_PREFIX) :].strip()
        if reference.endswith(".py") or ".py:" in reference:
            return {"type": "python", "value": expected.strip()}
        if re.search(r"\.(js|ts|mjs|cjs)(:|$)", reference):
            return {"type": "javascript", "value": expected.strip()}
    match = _EXPECTED.match(expected)
    if match is not None and match.group(2) in PROMPTFOO_ASSERTION_TYPES:
        negated, kind, threshold, value = match.groups()
        assertion: dict[str, Any] = {"type": f"{negated or ''}{kind}", "value": value}
        if kind in _LIST_TYPES:
            assertion["value"] = [part.strip() for part in (value or "").split(",")]
        elif kind in BOUND_TYPES:  # `latency(5000)`: the bound; a bare `latency` has none to give
            if threshold:
                assertion["threshold"] = float(threshold)
        elif kind in _THRESHOLD_TYPES:
            assertion["threshold"] = float(threshold) if threshold else (0.8 if kind == "similar" else 0.75)
        return assertion
    return {"type": "equals", "value": expected}


def expand_test_files(tests: Any, base_dir: Path) -> tuple[Any, dict[int, TestOrigin]]:
    """`tests` with every file reference replaced by the tests the files hold, and where each of those came from
    (by its index in the result). Inline tests pass through; `tests` that names no file is returned as is."""
    entries = tests if isinstance(tests, list) else [tests]
    if not any(_is_reference(entry) for entry in entries):
        return tests, {}
    expanded: list[Any] = []
    origins: dict[int, TestOrigin] = {}
    for entry in entries:
        if not _is_reference(entry):
            expanded.append(entry)
            continue
        for path in _matching_files(entry, base_dir):
            for test, line in _read_tests(path):
                origins[len(expanded)] = TestOrigin(str(path), line)
                expanded.append(test)
    return expanded, origins


def _is_reference(entry: Any) -> bool:
    return isinstance(entry, str)


def _matching_files(entry: str, base_dir: Path) -> list[Path]:
    reference = entry.removeprefix(FILE_PREFIX)
    pattern = Path(reference) if Path(reference).is_absolute() else base_dir / reference
    if glob.has_magic(reference):
        found = sorted(Path(match) for match in glob.glob(str(pattern), recursive=True))
        if not found:
            raise TestFileError(f"tests: {entry!r} matches no file (looked in {base_dir})")
        return found
    if not pattern.exists():
        raise TestFileError(f"tests: no such test file {entry!r} (looked for {pattern})")
    return [pattern]


def _read_tests(path: Path) -> Iterator[tuple[Any, int]]:
    suffix = path.suffix.lower()
    if suffix not in TEST_FILE_SUFFIXES:
        raise TestFileError(
            f"tests: {path}: unsupported test file type {suffix!r}; use {', '.join(TEST_FILE_SUFFIXES)}"
        )
    try:
        text = read_text(path, "test file")
    except LocalFileError as exc:
        raise TestFileError(str(exc)) from None
    if suffix == ".csv":
        yield from _csv_tests(text, path)
    elif suffix == ".jsonl":
        yield from _jsonl_tests(text, path)
    else:
        data = _data(text, path, suffix)
        items = data if isinstance(data, list) else [data]
        for item in items:
            if not isinstance(item, dict):
                raise TestFileError(f"{path}: each test must be a mapping (vars, assert, ...), got {_kind(item)}")
            yield item, 1  # no per-item line for JSON and YAML lists: the file is named


def _jsonl_tests(text: str, path: Path) -> Iterator[tuple[Any, int]]:
    numbered = [(number, line) for number, line in enumerate(text.splitlines(), 1) if line.strip()]
    try:
        # One decode of the whole file as a JSON list costs a third of one decode per line (50,000 lines: 0.2 s
        # saved); only a file with a bad line is read again line by line, to say which.
        items = json.loads("[" + ",".join(line for _number, line in numbered) + "]")
    except (json.JSONDecodeError, RecursionError):
        items = None
    if items is not None and len(items) == len(numbered):
        for (number, _line), item in zip(numbered, items, strict=True):
            if not isinstance(item, dict):
                raise TestFileError(f"{path}:{number}: each line must be a test object, got {_kind(item)}")
            yield item, number
        return
    for number, line in numbered:
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TestFileError(f"{path}:{number}: not valid JSON: {exc.msg} (column {exc.colno})") from None
        except RecursionError:
            raise TestFileError(f"{path}:{number}: the JSON nests too deeply") from None
        if not isinstance(item, dict):
            raise TestFileError(f"{path}:{number}: each line must be a test object, got {_kind(item)}")
        yield item, number


def _csv_tests(text: str, path: Path) -> Iterator[tuple[Any, int]]:
    # strict: a quote left open is an error at its row, not a field that runs to the end of the file.
    reader = csv.reader(io.StringIO(text.removeprefix("\ufeff")), strict=True)  # Excel writes a byte-order mark
    try:
        header = next(reader)
    except StopIteration:
        raise TestFileError(f"{path}: the CSV file is empty; its first row names the vars") from None
    except csv.Error as exc:
        raise TestFileError(f"{path}:1: not valid CSV: {exc}") from None
    header = [name.strip() for name in header]
    for name in header:
        if name in _UNSUPPORTED_COLUMNS:
            raise TestFileError(
                f"{path}:1: column {name!r} ({_UNSUPPORTED_COLUMNS[name]}) is not supported by rtflow; "
                "put it in the prompt template instead"
            )
        if name.startswith("__") and not _is_special_column(name):
            raise TestFileError(
                f"{path}:1: unknown column {name!r}; the special columns are __expected (__expected1, ...), "
                "__description, __metric, __threshold and __metadata:NAME"
            )
    try:
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) > len(header):
                raise TestFileError(f"{path}:{number}: {len(row)} cells but the header names {len(header)} columns")
            yield _test_from_row(dict(zip(header, row, strict=False)), path, number), number
    except csv.Error as exc:
        raise TestFileError(f"{path}:{reader.line_num}: not valid CSV: {exc}") from None


def _is_special_column(name: str) -> bool:
    return (
        re.fullmatch(r"__expected\d*", name) is not None
        or name in ("__description", "__metric", "__threshold")
        or (name.startswith("__metadata:") and len(name) > len("__metadata:"))
    )


def _test_from_row(row: dict[str, str], path: Path, number: int) -> dict[str, Any]:
    test: dict[str, Any] = {"vars": {}}
    asserts: list[dict[str, Any]] = []
    metric: str | None = None
    for name, value in row.items():
        if name.startswith("__expected"):
            if value.strip():
                asserts.append(assertion_from_string(value))
        elif name == "__description":
            test["description"] = value
        elif name == "__metric":
            metric = value or None
        elif name == "__threshold":
            if value.strip():
                try:
                    test["threshold"] = float(value)
                except ValueError:
                    raise TestFileError(f"{path}:{number}: __threshold {value!r} is not a number") from None
        elif name.startswith("__metadata:"):
            if value:  # an empty cell sets nothing (a row outside every thread)
                test.setdefault("metadata", {})[name.removeprefix("__metadata:")] = value
        else:
            test["vars"][name] = value
    if metric is not None:
        for assertion in asserts:
            assertion["metric"] = metric
    if asserts:
        test["assert"] = asserts
    return test


def _data(text: str, path: Path, suffix: str) -> Any:
    try:
        return parse_data(text, suffix)
    except DataFileError as exc:
        raise TestFileError(f"{path}:{exc.line or 1}: not valid {exc.language}: {exc.reason}") from None


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}.get(
        type(value), type(value).__name__
    )


def read_vars_file(reference: str, base_dir: Path) -> dict[str, Any]:
    """A test's whole `vars` written as a file (`vars: file://vars.yaml` or `.json`), as promptfoo allows."""
    path = resolve_path(reference, base_dir)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise TestFileError(
            f"vars: {reference!r}: a vars file is .json or .yaml (a CSV holds tests: `tests: {reference}`)"
        )
    try:
        text = read_text(path, "vars file")
    except LocalFileError as exc:
        raise TestFileError(str(exc)) from None
    data = _data(text, path, suffix)
    if not isinstance(data, dict):
        raise TestFileError(f"{path}: a vars file holds a mapping of names to values, got {_kind(data)}")
    return data
