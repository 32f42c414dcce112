"""YAML flow file -> `FlowSpec`, with every problem reported at its file:line:column.

The YAML is read into plain data by `yaml_reader`; the start mark of every mapping key and sequence item,
keyed by its path from the root, is read only when a problem is to be shown. Each pydantic validation error (and
each problem found after validation: a missing prompt file, a missing var file, an unset environment
variable) is mapped back through that table to a line and column. All problems are reported together, one
line each, in file order.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails

from rtflow.errors import CompileError, FlowError, FlowLoadError, PromptError, ProviderConfigError
from rtflow.flow.assertion_types import BASE_ASSERTION_TYPES
from rtflow.flow.spec import (
    AssertionSpec,
    FlowSpec,
    ProviderSpec,
    closest_key,
    loose_key,
    suggested_field,
    unknown_key_hint,
)
from rtflow.flow.yaml_reader import Path_, read_data, read_marks
from rtflow.pyref import FILE_PREFIX, resolve_path

__all__ = ["load", "load_text"]


AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".ogg", ".flac", ".pcm", ".webm", ".m4a"})
"""Var files kept as their resolved path: providers stream them, templates do not read them."""
BINARY_SUFFIXES = AUDIO_SUFFIXES | {".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf"}

_ENV_REFERENCE = re.compile(r"\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


@dataclass(frozen=True)
class _Problem:
    reason: str
    line: int | None
    column: int | None
    key_path: str


def load(path: str | os.PathLike[str]) -> FlowSpec:
    """Load and validate a flow file; `FlowLoadError` names every problem with its file, line and key."""
    flow_path = Path(path)
    try:
        text = flow_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FlowLoadError("no such flow file", file=str(flow_path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise FlowLoadError(f"cannot read the flow file: {exc}", file=str(flow_path)) from None
    flow = load_text(text, source=str(flow_path), base_dir=flow_path.resolve().parent)
    flow.source_path = flow_path.resolve()
    return flow


def load_text(text: str, *, source: str = "<string>", base_dir: Path | None = None) -> FlowSpec:
    """Load a flow from YAML text; `source` names it in errors, `base_dir` resolves its `file://` paths."""
    document = _Document(text, source)
    data = document.parse()
    resolved_base = (base_dir or Path.cwd()).resolve()
    problems = list(_render_provider_env(data, document))
    if problems:
        raise document.error(problems)
    try:
        flow = FlowSpec.model_validate(data)
    except ValidationError as exc:
        raise document.error(_validation_problems(exc.errors(), document)) from None
    flow.set_base_dir(resolved_base)
    problems = [
        *_check_provider_configs(flow, data, document, resolved_base),
        *_check_assertion_types(flow, document),
        *_check_prompts(flow, document, resolved_base),
        *_read_var_files(flow, document, resolved_base),
    ]
    if not problems:
        problems = list(_trial_render(flow, document, resolved_base))
    if problems:
        raise document.error(problems)
    return flow


def _validation_problems(details: list[ErrorDetails], document: _Document) -> list[_Problem]:
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


class _Document:
    """One YAML text: its data, and the start mark of every key and item by path."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source
        self._marks: dict[Path_, tuple[int, int]] | None = None
        self.children: dict[Path_, list[str | int]] = {}

    # ---------------------------------------------------------------------------------------------- parsing

    def parse(self) -> dict[str, Any]:
        self._reject_tabs()
        try:
            data, (line, column) = read_data(self.text)
        except yaml.MarkedYAMLError as exc:
            raise self._syntax_error(exc) from None
        except yaml.YAMLError as exc:
            raise FlowLoadError(f"YAML error: {exc}", file=self.source) from None
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

    def _syntax_error(self, exc: yaml.MarkedYAMLError) -> FlowLoadError:
        mark = exc.problem_mark or exc.context_mark
        reason = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem:
            reason += f" ({exc.context})"
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return FlowLoadError(reason, file=self.source, line=line, column=column)

    @property
    def marks(self) -> dict[Path_, tuple[int, int]]:
        """Where each key and item was written; read (a second pass over the text) only when a problem is shown."""
        if self._marks is None:
            self._marks = read_marks(self.text)
            for path in self._marks:
                if path:
                    self.children.setdefault(path[:-1], []).append(path[-1])
        return self._marks

    def _reject_tabs(self) -> None:
        # PyYAML's own message for a tab ("cannot start any token") does not say what to do.
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
        shorthand (a bare provider id) may have no node for the deeper parts at all.
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
            if part == "raw":
                wanted.add("id")
            for child in children:
                if isinstance(child, str) and loose_key(child) in wanted:
                    return child
        return None

    def problem(self, path: Path_, reason: str) -> _Problem:
        mark, shown = self.locate(path)
        line, column = mark if mark is not None else (None, None)
        return _Problem(reason=reason, line=line, column=column, key_path=shown)

    def problem_from_pydantic(self, detail: ErrorDetails) -> _Problem:
        path: Path_ = tuple(detail["loc"])
        context = detail.get("ctx") or {}
        if detail["type"] in {"unknown_key", "duplicate_key", "key_type"} and "bad_key" in context:
            path = (*path, context["bad_key"])
        if detail["type"] == "flow_consistency" and "at" in context:
            path = (*path, *context["at"])
        return self.problem(path, _describe(detail))

    def error(self, problems: list[_Problem]) -> FlowLoadError:
        ordered = sorted(problems, key=lambda problem: (problem.line or 0, problem.column or 0))
        first = ordered[0]
        error = FlowLoadError(
            first.reason, file=self.source, line=first.line, column=first.column, key_path=first.key_path or None
        )
        if len(ordered) > 1:
            lines = [_format(self.source, problem) for problem in ordered]
            error.message = f"{len(ordered)} problems in {self.source}:\n" + "\n".join(lines)
            error.args = (error.message,)
        return error


def _format(source: str, problem: _Problem) -> str:
    where = source
    if problem.line is not None:
        where += f":{problem.line}:{problem.column}"
    key = f" {problem.key_path}:" if problem.key_path else ""
    return f"{where}:{key} {problem.reason}"


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


# ------------------------------------------------------------------------------------- after-parse passes


def _provider_entries(data: dict[str, Any]) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """Every provider mapping in the raw data (columns, their fallbacks, the grader), with its path."""

    def walk(value: Any, path: Path_) -> Iterator[tuple[Path_, dict[str, Any]]]:
        if isinstance(value, list):
            for index, item in enumerate(value):
                yield from walk(item, (*path, index))
        elif isinstance(value, dict):
            yield path, value
            if "fallback" in value:
                yield from walk(value["fallback"], (*path, "fallback"))

    yield from walk(data.get("providers"), ("providers",))
    yield from walk(data.get("grader"), ("grader",))


def _check_provider_configs(
    flow: FlowSpec, data: dict[str, Any], document: _Document, base_dir: Path
) -> Iterator[_Problem]:
    """Each provider checks its own `config` (keys, values, tool handlers); its complaints point at their line.

    What a provider only warns about (`temperature` on a GA Realtime model) joins `flow.warnings`, so nothing
    has to build the providers a second time to show it.
    """
    from rtflow.providers.registry import create_provider  # the providers know their keys; the spec does not

    for path, entry in _provider_entries(data):
        try:
            provider = create_provider(ProviderSpec.model_validate(entry).to_info(base_dir))
        except ProviderConfigError as exc:
            config = entry.get("config")
            raw_config: dict[str, Any] = config if isinstance(config, dict) else {}
            for key, reason in exc.problems:
                top = key.split(".")[0]
                written = next((k for k in raw_config if loose_key(k) == loose_key(top)), None)
                yield document.problem((*path, "config", written) if written else (*path, "config"), reason)
        except FlowError as exc:  # an unknown kind is the compiler's to report, with the known kinds
            if not isinstance(exc, CompileError):
                yield document.problem((*path, "config"), exc.message)
        else:
            flow.warnings.extend(warning for warning in provider.warnings() if warning not in flow.warnings)


def _render_provider_env(data: dict[str, Any], document: _Document) -> Iterator[_Problem]:
    """Replace `{{ env.NAME }}` in provider configs; an unset variable is named (its value never is)."""
    for path, provider in _provider_entries(data):
        config = provider.get("config")
        if config is not None:
            rendered, problems = _render_env(config, (*path, "config"), document)
            provider["config"] = rendered
            yield from problems


def _render_env(value: Any, path: Path_, document: _Document) -> tuple[Any, list[_Problem]]:
    if isinstance(value, dict):
        problems: list[_Problem] = []
        rendered_map = {}
        for key, item in value.items():
            rendered_map[key], found = _render_env(item, (*path, key), document)
            problems.extend(found)
        return rendered_map, problems
    if isinstance(value, list):
        problems = []
        rendered_list = []
        for index, item in enumerate(value):
            rendered, found = _render_env(item, (*path, index), document)
            rendered_list.append(rendered)
            problems.extend(found)
        return rendered_list, problems
    if not isinstance(value, str):
        return value, []
    missing = [name for name in _ENV_REFERENCE.findall(value) if name not in os.environ]
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        return value, [document.problem(path, f"environment variable {names} is not set")]
    return _ENV_REFERENCE.sub(lambda match: os.environ[match.group(1)], value), []


def _check_prompts(flow: FlowSpec, document: _Document, base_dir: Path) -> Iterator[_Problem]:
    # Imported here: prompts renders with Jinja2 and is not needed to merely parse a flow.
    from rtflow.flow.prompts import check_prompt

    for index, prompt in enumerate(flow.prompts):
        try:
            check_prompt(prompt, base_dir)
        except PromptError as exc:
            yield document.problem(("prompts", index), exc.message)


def _check_assertion_types(flow: FlowSpec, document: _Document) -> Iterator[_Problem]:
    for path, assertions in _turn_assertions(flow):
        for index, assertion in enumerate(assertions):
            kind = assertion.type.removeprefix("not-")
            if kind in BASE_ASSERTION_TYPES:
                continue
            suggestion = closest_key(kind, BASE_ASSERTION_TYPES)
            prefix = "not-" if assertion.type.startswith("not-") else ""
            hint = (
                f"did you mean `{prefix}{suggestion}`?"
                if suggestion
                else "known types: " + ", ".join(sorted(BASE_ASSERTION_TYPES)) + " (each also as not-<type>)"
            )
            reason = f"unknown assertion type {assertion.type!r}; {hint}"
            yield document.problem((*path, index, "type"), reason)


def _turn_entries(flow: FlowSpec, *, with_default: bool = True) -> Iterator[tuple[Path_, Any]]:
    """Every turn as written (`default_test`, each of `tests`, each turn of `threads`), with its path."""
    if with_default and flow.default_test is not None:
        yield ("default_test",), flow.default_test
    for index, test in enumerate(flow.tests):
        yield ("tests", index), test
    for thread_id, turns in flow.threads.items():
        for index, turn in enumerate(turns):
            yield ("threads", thread_id, index), turn


def _turn_assertions(flow: FlowSpec) -> Iterator[tuple[Path_, list[AssertionSpec]]]:
    for path, turn in _turn_entries(flow):
        yield (*path, "assert"), turn.assert_


def _trial_render(flow: FlowSpec, document: _Document, base_dir: Path) -> Iterator[_Problem]:
    """Render every template prompt for every turn, so a missing variable or broken JSON is found now.

    Templates are sandboxed and side-effect free, so this is safe; Python prompt functions are user code and
    are only called when the turn runs. History (`_conversation`) is empty here, as on a first turn.
    """
    from rtflow.flow.prompts import render_prompt

    templates = [prompt for prompt in flow.prompts if prompt.kind != "python"]
    if not templates:
        return
    provider = flow.providers[0].to_info(base_dir)
    reported: set[str] = set()
    for path, turn in _turn_entries(flow, with_default=False):
        variables = {**flow.merged_turn(turn).vars, "_conversation": []}
        for prompt in templates:
            try:
                render_prompt(prompt, variables, provider, base_dir)
            except PromptError as exc:
                if exc.message not in reported:  # one broken template would otherwise repeat per turn
                    reported.add(exc.message)
                    yield document.problem(path, exc.message)


def _turn_vars(flow: FlowSpec) -> Iterator[tuple[Path_, dict[str, Any]]]:
    for path, turn in _turn_entries(flow):
        yield (*path, "vars"), turn.vars


def _read_var_files(flow: FlowSpec, document: _Document, base_dir: Path) -> Iterator[_Problem]:
    """Replace `file://` var values by what the files hold (audio stays a path)."""
    for path, variables in _turn_vars(flow):
        for name, value in list(variables.items()):
            if not (isinstance(value, str) and value.startswith(FILE_PREFIX)):
                continue
            try:
                variables[name] = _read_var_file(value, base_dir)
            except ValueError as exc:
                var_path: Path_ = (*path, name)
                if path[0] == "threads" and (*path, name) not in document.marks:
                    var_path = (*path[:-1], name)  # a loose var in the threads sugar
                yield document.problem(var_path, str(exc))


def _read_var_file(reference: str, base_dir: Path) -> Any:
    path = resolve_path(reference, base_dir)
    suffix = path.suffix.lower()
    if suffix == ".py":
        raise ValueError(f"{reference}: Python var generators are not supported; use a text, JSON or YAML file")
    if not path.is_file():
        raise ValueError(f"var file not found: {reference} (looked for {path})")
    if suffix in BINARY_SUFFIXES:
        return str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read var file {reference}: {exc}") from None
    if suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{reference} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if suffix in {".yaml", ".yml"}:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{reference} is not valid YAML: {exc}") from None
    return text
