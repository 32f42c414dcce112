"""The resolve step: a validated `FlowSpec` -> one that can run, checked against the world outside the file.

Loading is parse (YAML with places) -> validate (the pydantic models) -> resolve (this module) -> compile. Every
flow passes here exactly once, whether it was loaded from a file or built in code (`compile_flow` resolves a
flow that has not been): `{{ env.NAME }}` in provider configs is rendered, each provider is built from its
config (its kind and its config's keys, values and tool handlers checked by the provider itself), each
assertion's type is checked and its value read as its check will read it (`rtflow.flow.assertion_values`),
prompt files and prompt functions are found, `file://` vars are read, and every template prompt is rendered
once per shape of turn (the names its vars give) so a missing variable is a load error, not a failed run. Each
problem is reported at its key path, and at its file:line:column when the flow came from a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rtflow.errors import FlowError, PromptError, ProviderConfigError, did_you_mean, loose_key
from rtflow.flow.assertion_types import BASE_ASSERTION_TYPES, grader_key, split_negation
from rtflow.flow.assertion_values import AssertionValueError, read_value
from rtflow.flow.local_files import DataFileError, parse_data, read_text
from rtflow.flow.problems import Path_, Places, Problem
from rtflow.flow.spec import AssertionSpec, FlowSpec, ProviderSpec, conversation_id_of
from rtflow.pyref import FILE_PREFIX, resolve_path

__all__ = ["AUDIO_SUFFIXES", "resolve"]

AUDIO_SUFFIXES = frozenset({".wav", ".mp3", ".ogg", ".flac", ".pcm", ".webm", ".m4a"})
"""Var files kept as their resolved path: providers stream them, templates do not read them."""
BINARY_SUFFIXES = AUDIO_SUFFIXES | {".png", ".jpg", ".jpeg", ".gif", ".webp", ".pdf"}

_ENV_REFERENCE = re.compile(r"\{\{\s*env\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def resolve(flow: FlowSpec, places: Places | None = None) -> FlowSpec:
    """Check and complete `flow` in place (once); `FlowLoadError` names every problem with its place."""
    if flow.resolved:
        return flow
    places = places or Places()
    base_dir = flow.base_dir
    problems = list(_render_provider_env(flow, places))
    if problems:
        raise places.error(problems)
    problems = [
        *_check_providers(flow, places, base_dir),
        *_check_assertions(flow, places),
        *_check_prompts(flow, places, base_dir),
        *_read_var_files(flow, places, base_dir),
    ]
    if not problems:
        problems = list(_trial_render(flow, places, base_dir))
    if problems:
        raise places.error(problems)
    flow.mark_resolved()
    return flow


def _provider_specs(flow: FlowSpec) -> Iterator[tuple[Path_, ProviderSpec]]:
    """Every provider of the flow (columns, their fallbacks, the grader), with its path."""

    def walk(provider: ProviderSpec, path: Path_) -> Iterator[tuple[Path_, ProviderSpec]]:
        yield path, provider
        for index, fallback in enumerate(provider.fallback):
            yield from walk(fallback, (*path, "fallback", index))

    for index, provider in enumerate(flow.providers):
        yield from walk(provider, ("providers", index))
    if flow.grader is not None:
        yield from walk(flow.grader, ("grader",))


def _render_provider_env(flow: FlowSpec, places: Places) -> Iterator[Problem]:
    """Replace `{{ env.NAME }}` in provider configs; an unset variable is named (its value never is)."""
    for path, provider in _provider_specs(flow):
        rendered, problems = _render_env(provider.config, (*path, "config"), places)
        provider.config = rendered
        yield from problems


def _render_env(value: Any, path: Path_, places: Places) -> tuple[Any, list[Problem]]:
    if isinstance(value, dict):
        problems: list[Problem] = []
        rendered_map = {}
        for key, item in value.items():
            rendered_map[key], found = _render_env(item, (*path, key), places)
            problems.extend(found)
        return rendered_map, problems
    if isinstance(value, list):
        problems = []
        rendered_list = []
        for index, item in enumerate(value):
            rendered, found = _render_env(item, (*path, index), places)
            rendered_list.append(rendered)
            problems.extend(found)
        return rendered_list, problems
    if not isinstance(value, str):
        return value, []
    missing = [name for name in _ENV_REFERENCE.findall(value) if name not in os.environ]
    if missing:
        names = ", ".join(f"`{name}`" for name in missing)
        return value, [places.problem(path, f"environment variable {names} is not set")]
    return _ENV_REFERENCE.sub(lambda match: os.environ[match.group(1)], value), []


def _check_providers(flow: FlowSpec, places: Places, base_dir: Path) -> Iterator[Problem]:
    """Each provider is built from its spec: the registry checks its kind, the provider its own `config`.

    What a provider only warns about (`temperature` on a GA Realtime model) joins `flow.warnings`, so nothing
    has to build the providers a second time to show it.
    """
    from rtflow.providers.registry import UnknownProviderKind, create_provider  # imported by flows that resolve

    graders, problems = _grader_specs(flow, places)
    yield from problems
    playable: dict[str, frozenset[str]] = {}
    for path, spec in [*_provider_specs(flow), *graders]:
        try:
            provider = create_provider(spec.to_info(base_dir))
            if spec in flow.providers:
                playable[spec.display_label] = provider.script_steps
        except UnknownProviderKind as exc:
            yield places.problem((*path, "id"), exc.message)
        except ProviderConfigError as exc:
            for key, reason in exc.problems:
                top, _, inside = key.partition(".")
                written = next((k for k in spec.config if loose_key(k) == loose_key(top)), None)
                # The place names the key as written; what it does not name (a key inside it) the reason says.
                unnamed = inside if written else key
                if unnamed and not reason.startswith("unknown key"):
                    reason = f"{unnamed!r}: {reason}"
                yield places.problem((*path, "config", written) if written else (*path, "config"), reason)
        except FlowError as exc:
            yield places.problem((*path, "config"), exc.message)
        else:
            flow.warnings.extend(warning for warning in provider.warnings() if warning not in flow.warnings)
    yield from _check_script_steps(flow, places, playable)
    yield from _check_dialogues(flow, places, base_dir)


def _check_dialogues(flow: FlowSpec, places: Places, base_dir: Path) -> Iterator[Problem]:
    """A `simulate:` entry ends its thread, and its caller is a provider rtflow can build."""
    from rtflow.providers.registry import UnknownProviderKind, create_provider

    simulated = [(path, turn) for path, turn in _turn_entries(flow, with_default=False) if turn.simulate is not None]
    if not simulated:
        return  # most flows: no thread's last turn needs finding
    later_in_thread: dict[str, object] = {}
    for path, turn in _turn_entries(flow, with_default=False):
        if path[0] == "threads":
            later_in_thread[f"threads/{path[1]}"] = path[2]
        else:
            thread = conversation_id_of(flow.merged_turn(turn).metadata) or f"test-{path[1]}"
            later_in_thread[f"tests/{thread}"] = path[1]
    for path, turn in simulated:
        if path[0] == "threads":
            last = later_in_thread[f"threads/{path[1]}"] == path[2]
        else:
            thread = conversation_id_of(flow.merged_turn(turn).metadata) or f"test-{path[1]}"
            last = later_in_thread[f"tests/{thread}"] == path[1]
        if not last:
            yield places.problem((*path, "simulate"), "a `simulate:` entry must be the last of its thread")
        try:
            create_provider(turn.simulate.caller.to_info(base_dir))
        except UnknownProviderKind as exc:
            yield places.problem((*path, "simulate", "caller"), exc.message)
        except FlowError as exc:
            yield places.problem((*path, "simulate", "caller"), exc.message)


def _check_script_steps(flow: FlowSpec, places: Places, playable: dict[str, frozenset[str]]) -> Iterator[Problem]:
    """A barge-in or a silence needs a provider that plays answers in time: each of the flow's providers runs
    every thread, so each must be able to play every step written (a fallback skips them)."""
    for path, turn in _turn_entries(flow, with_default=False):
        written: list[tuple[Path_, str]] = []
        if turn.interrupt is not None:
            written.append(((*path, "interrupt"), "interrupt"))
        for index, step in enumerate(turn.then):
            kind = next(name for name in ("silence", "wait_for", "dtmf") if getattr(step, name) is not None)
            written.append(((*path, "then", index), kind))
        for where, kind in written:
            unable = [label for label, steps in playable.items() if kind not in steps]
            if unable:
                why = (
                    "the Realtime WebSocket API has no client event for keypad tones"
                    if kind == "dtmf"
                    else "it answers in text, not in time (use an openai:realtime provider)"
                )
                yield places.problem(where, f"`{kind}` cannot be played by provider {', '.join(unable)}: {why}")


_SUPPORTED_TEST_OPTIONS = frozenset({"provider", "transform", "transformVars"})


def _grader_specs(flow: FlowSpec, places: Places) -> tuple[list[tuple[Path_, ProviderSpec]], list[Problem]]:
    """The graders tests and assertions name (`options.provider`, an assertion's `provider`), each once, with
    the place it was first named; a test option rtflow does not act on is a warning, not silently ignored."""
    found: dict[str, tuple[Path_, ProviderSpec]] = {}
    problems: list[Problem] = []
    named: list[tuple[Path_, Any]] = []
    for path, turn in _turn_entries(flow):
        for key in turn.options:
            if key not in _SUPPORTED_TEST_OPTIONS:
                warning = (
                    f"test option `{key}` is not supported by rtflow and is ignored"
                    " (supported: provider, transform, transformVars)"
                )
                if warning not in flow.warnings:
                    flow.warnings.append(warning)
        if "provider" in turn.options:
            named.append(((*path, "options", "provider"), turn.options["provider"]))
        for index, assertion in enumerate(turn.assert_):
            if assertion.provider is not None:
                named.append(((*path, "assert", index, "provider"), assertion.provider))
    for path, value in named:
        key = grader_key(value) if isinstance(value, str | dict) else repr(value)
        if key is None or key in found:
            continue
        try:
            found[key] = (path, ProviderSpec.model_validate(value))
        except ValidationError as exc:
            reason = exc.errors()[0]["msg"] if exc.errors() else str(exc)
            problems.append(places.problem(path, f"not a provider (an id like `openai:chat:gpt-4.1-mini`): {reason}"))
    return list(found.values()), problems


def _check_prompts(flow: FlowSpec, places: Places, base_dir: Path) -> Iterator[Problem]:
    # Imported here: prompts renders with Jinja2 and is not needed to merely parse a flow.
    from rtflow.flow.prompts import check_prompt

    for index, prompt in enumerate(flow.prompts):
        try:
            check_prompt(prompt, base_dir)
        except (PromptError, FlowError) as exc:
            yield places.problem(("prompts", index), exc.message)


def _check_assertions(flow: FlowSpec, places: Places) -> Iterator[Problem]:
    """Each assertion's type is known and its value readable as its check will read it (unless a template)."""
    for path, assertions in _turn_assertions(flow):
        for index, assertion in enumerate(assertions):
            kind, negated = split_negation(assertion.type)
            if kind in BASE_ASSERTION_TYPES:
                try:
                    read_value(kind, assertion.value, assertion.config)
                except AssertionValueError as exc:
                    yield places.problem((*path, index, "value"), str(exc))
                continue
            prefix = "not-" if negated else ""
            hint = did_you_mean(kind, BASE_ASSERTION_TYPES, prefix=prefix)
            reason = f"unknown assertion type {assertion.type!r}; {hint} (each also as not-<type>)"
            yield places.problem((*path, index, "type"), reason)


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


def _trial_render(flow: FlowSpec, places: Places, base_dir: Path) -> Iterator[Problem]:
    """Render every template prompt once per distinct set of variable names, so a missing one is found now.

    Templates are sandboxed and side-effect free, so this is safe; Python prompt functions are user code and
    are only called when the turn runs. History (`_conversation`) is empty here, as on a first turn. Whether a
    variable is missing depends on the names a turn gives, not their values, so turns that give the same names
    are rendered once: a 50,000-test suite whose tests share their vars costs one render, not 50,000. (A failure
    that depends on a value, a filter raising on one turn's text, shows when that turn runs.)
    """
    # Decided: no prompt function is called here, so validating needs no deadline. Calling one would run user
    # code (its side effects, its sleeps) at `rtflow validate` and load time, and what it needs from a turn (the
    # history, the provider) is not known yet; at run time it runs under the turn's deadline instead
    # (`rtflow.user_code`). `render_template` refuses a function, so none can slip in here.
    from rtflow.flow.prompts import render_template

    templates = [prompt for prompt in flow.prompts if not prompt.is_function]
    if not templates:
        return
    reported: set[str] = set()
    rendered_names: set[frozenset[str]] = set()
    # What decides the names a turn renders with is its own var names, options and simulate, and whether it is
    # a test (a test takes `default_test`'s simulate): turns alike in those are merged (and rendered) once.
    shapes_seen: set[tuple[object, frozenset[str], frozenset[str], bool]] = set()
    for path, turn in _turn_entries(flow, with_default=False):
        if getattr(turn, "step_only", False):
            continue  # a step of the turn before it: nothing renders for it
        shape = (path[0], frozenset(turn.vars), frozenset(turn.options), turn.simulate is not None)
        if shape in shapes_seen:
            continue
        shapes_seen.add(shape)
        merged = flow.merged_turn(turn)
        if "transformVars" in merged.options:
            continue  # its vars are made at run time, by user code: what the template needs is known only then
        variables = {**merged.vars, "_conversation": []}
        if merged.simulate is not None:
            variables["caller"] = ""  # each generated turn renders with the caller's line as `caller`
        names = frozenset(variables)
        if names in rendered_names:
            continue
        rendered_names.add(names)
        for prompt in templates:
            try:
                render_template(prompt, variables, base_dir)
            except PromptError as exc:
                if exc.message not in reported:  # one broken template would otherwise repeat per turn
                    reported.add(exc.message)
                    yield places.problem(path, exc.message)


def _read_var_files(flow: FlowSpec, places: Places, base_dir: Path) -> Iterator[Problem]:
    """Replace `file://` var values by what the files hold (audio stays a path)."""
    for path, turn in _turn_entries(flow):
        variables = turn.vars
        for name, value in list(variables.items()):
            if not (isinstance(value, str) and value.startswith(FILE_PREFIX)):
                continue
            try:
                variables[name] = _read_var_file(value, base_dir)
            except ValueError as exc:
                yield places.problem(_var_path(places, path, name), str(exc))


def _var_path(places: Places, turn_path: Path_, name: str) -> Path_:
    """Where a var was written: under the turn's `vars`, or loose in a `threads:` turn (the sugar form)."""
    under_vars: Path_ = (*turn_path, "vars", name)
    if turn_path[0] == "threads" and places.problem(under_vars, "").line is None:
        return (*turn_path, name)
    return under_vars


def _read_var_file(reference: str, base_dir: Path) -> Any:
    path = resolve_path(reference, base_dir)
    suffix = path.suffix.lower()
    if suffix == ".py":
        raise ValueError(f"{reference}: Python var generators are not supported; use a text, JSON or YAML file")
    if not path.exists():
        raise ValueError(f"var file not found: {reference} (looked for {path})")
    if suffix in BINARY_SUFFIXES:
        return str(path)
    text = read_text(path, "var file")  # LocalFileError is a ValueError: reported at the var's place
    if suffix not in {".json", ".yaml", ".yml"}:
        return text
    try:
        return parse_data(text, suffix)
    except DataFileError as exc:
        where = f" (line {exc.line}, column {exc.column})" if exc.line is not None else ""
        raise ValueError(f"{reference} is not valid {exc.language}{where}: {exc.reason}") from None
