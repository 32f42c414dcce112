"""YAML flow file -> `FlowSpec`, with every problem reported at its file:line:column.

The YAML is read into plain data by `yaml_reader`; the start mark of every mapping key and sequence item,
keyed by its path from the root, is read only when a problem is to be shown. Each pydantic validation error (and
each problem found after validation: a missing prompt file, a missing var file, an unset environment
variable) is mapped back through that table to a line and column. All problems are reported together, one
line each, in file order.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from rtflow.errors import FlowLoadError, loose_key
from rtflow.flow.local_files import LocalFileError, read_text
from rtflow.flow.problems import Path_, Places, Problem
from rtflow.flow.resolve import resolve
from rtflow.flow.spec import FlowSpec, suggested_field, unknown_key_hint
from rtflow.flow.test_files import TestFileError, TestOrigin, expand_test_files, read_vars_file
from rtflow.flow.yaml_reader import describe_error, read_data, read_marks
from rtflow.gc_pause import gc_paused
from rtflow.js.refs import is_js_file

__all__ = ["load", "load_text"]

_OTHER_SPELLINGS = {"raw": "id", "outputs": "outputPath"}
"""Validation names a file may write as another key: a provider's `id` (read into `raw`), promptfoo's `outputPath`."""


def load(path: str | os.PathLike[str]) -> FlowSpec:
    """Load and validate a flow file; `FlowLoadError` names every problem with its file, line and key."""
    flow_path = Path(path)
    if not flow_path.exists():
        raise FlowLoadError("no such flow file", file=str(flow_path))
    if is_js_file(flow_path):  # promptfoo's promptfooconfig.js / .cjs / .mjs / .ts
        with gc_paused():
            flow = _load_javascript(flow_path)
        flow.source_path = flow_path.resolve()
        return flow
    try:
        text = read_text(flow_path, "flow file")
    except LocalFileError as exc:
        raise FlowLoadError(str(exc), file=str(flow_path)) from None
    flow = load_text(text, source=str(flow_path), base_dir=flow_path.resolve().parent)
    flow.source_path = flow_path.resolve()
    return flow


def _load_javascript(path: Path) -> FlowSpec:
    """A JavaScript or TypeScript config (its export: the suite, a function or a promise of one), run by Node;
    its inline functions (`functionCallHandler: async (name, args) => ...`, prompt functions) stay callable
    through the run's worker, written into the data as references (`JsFunctionRef.as_text`)."""
    from rtflow.js.config import load_js_config
    from rtflow.js.errors import JsError
    from rtflow.js.refs import JsFunctionRef

    try:
        data = load_js_config(path.resolve())
    except JsError as exc:  # its file and line are the place: said once, not inside the message too
        reason = f"{exc.name}: {exc.reason}" if exc.name and not exc.reason.startswith(exc.name) else exc.reason
        raise FlowLoadError(reason, file=str(exc.file or path), line=exc.line) from None

    def as_flow_data(value: Any) -> Any:
        if isinstance(value, JsFunctionRef):
            return value.as_text()
        if isinstance(value, dict):
            return {key: as_flow_data(item) for key, item in value.items()}
        if isinstance(value, list):
            return [as_flow_data(item) for item in value]
        return value

    if not isinstance(data, dict):
        raise FlowLoadError("the config must export an object (providers, prompts, tests, ...)", file=str(path))
    flow_data = as_flow_data(data)
    return _load_data(flow_data, _Document.of_data(flow_data, str(path)), path.resolve().parent)


def load_text(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> FlowSpec:
    """Load a flow from YAML text; `source` names it in errors, `base_dir` resolves its `file://` paths."""
    with gc_paused():  # millions of small objects, all kept: see `rtflow.gc_pause`
        return _load_text(text, source=source, base_dir=base_dir)


def _load_text(text: str, *, source: str, base_dir: Path | None) -> FlowSpec:
    document = _Document(text, source)
    return _load_data(document.parse(), document, (base_dir or Path.cwd()).resolve())


def _load_data(data: dict[str, Any], document: _Document, folder: Path) -> FlowSpec:
    if "tests" in data:
        try:
            data["tests"], document.test_origins = expand_test_files(data["tests"], folder)
        except TestFileError as exc:
            raise document.error([document.problem(("tests",), str(exc))]) from None
    problems = list(_read_whole_vars_files(data, folder, document))
    if problems:
        raise document.error(problems)
    try:
        flow = FlowSpec.model_validate(data)
    except ValidationError as exc:
        raise document.error(_validation_problems(exc.errors(), document)) from None
    flow.set_base_dir(folder)
    return resolve(flow, document)


def _read_whole_vars_files(data: dict[str, Any], folder: Path, document: _Document) -> Iterator[Problem]:
    """`vars: file://vars.yaml` on a test or on `defaultTest`: the file's mapping in its place."""
    tests = data.get("tests")
    entries: list[tuple[Path_, Any]] = (
        [(("tests", index), test) for index, test in enumerate(tests)] if isinstance(tests, list) else []
    )
    for key in ("defaultTest", "default_test"):
        entries.append(((key,), data.get(key)))
    for path, test in entries:
        if isinstance(test, dict) and isinstance(test.get("vars"), str) and test["vars"].startswith("file://"):
            try:
                test["vars"] = read_vars_file(test["vars"], folder)
            except TestFileError as exc:
                yield document.problem((*path, "vars"), str(exc))


def _validation_problems(details: list[ErrorDetails], document: _Document) -> list[Problem]:
    # `promts:` also makes `prompts` missing; the unknown key's suggestion already says so.
    suggested = set()
    for detail in details:
        if detail["type"] == "extra_forbidden":
            field = suggested_field(tuple(detail["loc"]))
            if field is not None:
                suggested.add((*detail["loc"][:-1], field))
    return [
        document.problem_from_pydantic(detail)
        for detail in details
        if not (detail["type"] == "missing" and tuple(detail["loc"]) in suggested)
    ]


class _Document(Places):
    """One YAML text: its data, and the start mark of every key and item by path."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._marks: dict[Path_, tuple[int, int]] | None = None
        self.children: dict[Path_, list[str | int]] = {}
        self._data: Any = None
        """A JavaScript config's data (`of_data`), whose keys stand in for the marks a YAML text would give."""
        self.test_origins: dict[int, TestOrigin] = {}
        """Tests read from test files, by index: where each was written."""

    @classmethod
    def of_data(cls, data: Any, source: str) -> _Document:
        """A document with no YAML text (a JavaScript config's data): its keys (walked when a problem is shown, so
        after loading has expanded test files in place), and no line marks, so a problem is named by its key path
        in the config's own spelling (`defaultTest`, not `default_test`)."""
        document = cls("", source)
        document._data = data
        return document

    # ---------------------------------------------------------------------------------------------- parsing

    def parse(self) -> dict[str, Any]:
        self._reject_tabs()
        try:
            data, (line, column) = read_data(self.text)
        except yaml.YAMLError as exc:
            reason, error_line, error_column = describe_error(exc, self.text)
            raise FlowLoadError(reason, file=self.source, line=error_line, column=error_column) from None
        if data is None:
            raise FlowLoadError("the flow file is empty; expected a mapping with `providers`, `prompts`, `tests`",
                                file=self.source, line=1, column=1)  # fmt: skip
        if not isinstance(data, dict):
            raise FlowLoadError(
                f"the top level must be a mapping of keys (providers, prompts, tests, ...), got {_kind_of(data)}",
                file=self.source,
                line=line,
                column=column,
            )
        return data

    @property
    def marks(self) -> dict[Path_, tuple[int, int]]:
        """Where each key and item was written; read (a second pass over the text, or over a JavaScript config's
        data for its keys alone) only when a problem is shown."""
        if self._marks is None:
            if self._data is not None:
                self._marks = {}
                self._walk_keys(self._data, ())
                return self._marks
            self._marks = read_marks(self.text)
            for path in self._marks:
                if path:
                    self.children.setdefault(path[:-1], []).append(path[-1])
        return self._marks

    def _walk_keys(self, value: Any, path: Path_) -> None:
        keys: list[str | int] = list(value) if isinstance(value, dict) else list(range(len(value)))
        self.children[path] = keys
        for key in keys:
            child = value[key]
            if isinstance(child, dict | list):
                self._walk_keys(child, (*path, key))

    def _reject_tabs(self) -> None:
        # PyYAML's own message for a tab ("cannot start any token") does not say what to do.
        if "\t" not in self.text:
            return  # nearly every file: one scan in C instead of a loop over its lines
        for number, line in enumerate(self.text.splitlines(), start=1):
            indent = line[: len(line) - len(line.lstrip(" \t"))]
            if "\t" in indent:
                raise FlowLoadError(
                    "a tab is used for indentation; YAML indents with spaces only",
                    file=self.source,
                    line=number,
                    column=indent.index("\t") + 1,
                )

    # ----------------------------------------------------------------------------------------------- places

    def locate(self, path: Path_) -> tuple[tuple[int, int] | None, str]:
        """The mark of the deepest part of `path` present in the file, and the path in the writer's spelling.

        Validation paths use canonical names (`default_test`, `assert_`); the file may say `defaultTest`, and a
        shorthand (a bare provider id) may have no node for the deeper parts at all. A document with no YAML
        text (a JavaScript config's data, `of_data`) has no marks: its key path alone names the place.
        """
        marks = self.marks  # fills `children` too
        found: list[str | int] = []
        for part in path:
            actual = self._match_child(tuple(found), part)
            if actual is None:
                break
            found.append(actual)
        shown = list(found)
        if tuple(found) in self.children:  # a mapping or list: the rest of the path names what is missing in it
            shown.extend(path[len(found) :])
        return marks.get(tuple(found)), ".".join(str(part) for part in shown)

    def _match_child(self, parent: Path_, part: str | int) -> str | int | None:
        children = self.children.get(parent, [])
        if part in children:
            return part
        if isinstance(part, str):
            wanted = {loose_key(part), loose_key(to_camel(part)), loose_key(part.rstrip("_"))}
            if part in _OTHER_SPELLINGS:
                wanted.add(loose_key(_OTHER_SPELLINGS[part]))
            for child in children:
                if isinstance(child, str) and loose_key(child) in wanted:
                    return child
        return None

    def problem(self, path: Path_, reason: str) -> Problem:
        origin = self.test_origins.get(path[1]) if len(path) > 1 and path[0] == "tests" else None  # type: ignore[arg-type]
        if origin is not None:  # a test read from a test file: the problem is there
            return Problem(reason=reason, line=origin.line, column=None, key_path=".".join(map(str, path[2:])),
                           file=origin.file)  # fmt: skip
        mark, shown = self.locate(path)
        line, column = mark if mark is not None else (None, None)
        return Problem(reason=reason, line=line, column=column, key_path=shown)

    def problem_from_pydantic(self, detail: ErrorDetails) -> Problem:
        path: Path_ = tuple(detail["loc"])
        context = detail.get("ctx") or {}
        if detail["type"] in {"unknown_key", "duplicate_key", "key_type"} and "bad_key" in context:
            path = (*path, context["bad_key"])
        if detail["type"] == "flow_consistency" and "at" in context:
            path = (*path, *context["at"])
        return self.problem(path, _describe(detail))


def _kind_of(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, dict | list):
        return "a mapping" if isinstance(value, dict) else "a list"
    names = {str: "a string", bool: "a boolean", int: "a number", float: "a number"}
    return f"{names.get(type(value), type(value).__name__)} ({_show(value)})"


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_EXPECTATIONS = {
    "missing": "missing required key `{field}`",
    "string_type": "expected a string",
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
    "list_type": "expected a list",
    "extra_forbidden": "unknown key",
}


def _describe(detail: ErrorDetails) -> str:
    kind = detail["type"]
    context = detail.get("ctx") or {}
    value = detail.get("input")
    loc = detail["loc"]
    field = str(loc[-1]).rstrip("_") if loc else "value"
    if kind == "missing":
        return f"missing required key `{field}`"
    if kind == "extra_forbidden":
        hint = unknown_key_hint(tuple(loc))
        return f"unknown key `{loc[-1]}`" + (f"; {hint}" if hint else "")
    if kind in {"unknown_key", "duplicate_key", "key_type", "duration", "flow_consistency"}:
        return detail["msg"]
    if kind == "string_pattern_mismatch" and field == "id":
        return f"expected a provider id of the form kind:api:model (like openai:chat:gpt-4.1-mini), got {_show(value)}"
    if kind == "too_short":
        return f"expected at least {context.get('min_length', 1)} entry, got none"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        bound = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(context.values()), "?")
        return f"expected a number {bound} {limit}, got {_show(value)}"
    if kind == "value_error":
        return str(context.get("error", detail["msg"].removeprefix("Value error, ")))
    expected = _EXPECTATIONS.get(kind)
    if expected is not None:
        return f"{expected}, got {_kind_of(value)}"
    return f"{detail['msg']}, got {_kind_of(value)}"
