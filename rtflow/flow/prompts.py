"""Prompts -> messages: sandboxed Jinja2 templates and promptfoo-style Python prompt functions.

Four kinds (see `PromptSpec.kind`):

- inline and text templates render to a string; if it parses as a JSON list of messages it is used as one,
  otherwise it becomes a single user message;
- JSON templates must render to a JSON list of messages. Every `{{ value }}` is JSON-escaped as it is written
  (a finalize hook), so a question holding `"`, a newline, a backslash or any unicode cannot break the JSON.
  This is right for values inside JSON strings, which is how message templates use them; a value meant to
  stand as JSON of its own is written `{{ value | tojson }}` and passes through untouched;
- Python functions are called as promptfoo calls them, `func({"vars": ..., "provider": {id, label,
  config}})`, and return a string (treated like a rendered template) or a list of messages. They are user
  code: `rtflow.user_code` runs them off the event loop under the turn's deadline, so `render_prompt` is async.

Messages may hold image parts in either API's spelling (`input_image`, or Chat's `image_url`); `Message` reads
both as one `input_image` part, and a `file://` image stays a path until a provider sends it.

Templates run in `jinja2.sandbox.SandboxedEnvironment` with `StrictUndefined`: a variable the template needs
but the test does not give is an error naming the variable and the prompt. Every failure is a `PromptError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from pydantic import ValidationError

from rtflow.errors import FlowError, PromptError
from rtflow.flow.local_files import LocalFileError, read_text
from rtflow.flow.spec import PromptSpec
from rtflow.messages import Message
from rtflow.providers.base import ProviderInfo
from rtflow.pyref import load_callable, resolve_path, split_python_ref
from rtflow.user_code import UserCodeError, call_user_code

__all__ = ["check_prompt", "messages_from", "render_prompt", "render_template"]


def _json_escaped(value: Any) -> Any:
    """What a `{{ value }}` writes into a JSON template."""
    if isinstance(value, jinja2.Undefined):  # StrictUndefined raises here, naming the variable
        return str(value)
    if isinstance(value, Markup):  # `| tojson` output is JSON already
        return str(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1]
    if value is None or isinstance(value, bool | int | float):
        return json.dumps(value)
    # Lists and mappings written bare: their JSON, escaped for a string (use `| tojson` outside strings).
    return json.dumps(json.dumps(value, ensure_ascii=False), ensure_ascii=False)[1:-1]


def _environment(*, json_mode: bool) -> SandboxedEnvironment:
    environment = SandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        finalize=_json_escaped if json_mode else None,
    )
    return environment


_TEXT_ENVIRONMENT = _environment(json_mode=False)
_JSON_ENVIRONMENT = _environment(json_mode=True)


@lru_cache(maxsize=256)
def _compile(source: str, json_mode: bool, where: str) -> jinja2.Template:
    environment = _JSON_ENVIRONMENT if json_mode else _TEXT_ENVIRONMENT
    try:
        return environment.from_string(source)
    except jinja2.TemplateSyntaxError as exc:
        raise PromptError(f"{where}, line {exc.lineno}: template syntax error: {exc.message}") from None


def _describe(prompt: PromptSpec) -> str:
    if prompt.is_function:
        return f"prompt function {prompt.raw.removeprefix('file://')}"
    if prompt.file is not None:
        return f"prompt file {prompt.file}"
    return f"inline prompt `{prompt.display_label}`"


def _template_source(prompt: PromptSpec, base_dir: Path) -> str:
    if prompt.file is None:
        return prompt.raw
    # Read once per loaded prompt (the loader's check reads it first), not on every turn that renders it.
    source = prompt._sources.get(base_dir)
    if source is not None:
        return source
    path = resolve_path(prompt.file, base_dir)
    try:
        source = read_text(path, "prompt file")
    except LocalFileError as exc:
        raise PromptError(f"{_describe(prompt)}: {exc}") from None
    prompt._sources[base_dir] = source
    return source


def check_prompt(prompt: PromptSpec, base_dir: Path) -> None:
    """Fail early (at load time) on a missing prompt file or a template that does not parse."""
    if prompt.kind == "javascript":
        _check_javascript_prompt(prompt, base_dir)
        return
    if prompt.kind == "python":
        file_part, _ = split_python_ref(prompt.raw)
        path = resolve_path(file_part, base_dir)
        if not path.is_file():
            raise PromptError(f"{_describe(prompt)}: no such file {path}")
        load_callable(prompt.raw, base_dir)  # the function must exist now, not fail every turn of the run
        return
    _compile(_template_source(prompt, base_dir), prompt.kind == "json", _describe(prompt))


async def render_prompt(
    prompt: PromptSpec, vars: Mapping[str, Any], provider: ProviderInfo, base_dir: Path, *, deadline_s: float
) -> list[Message]:
    """The messages `prompt` yields for one turn's `vars` (which hold `_conversation`, the earlier turns).

    A prompt function may take at most `deadline_s` seconds (it runs off the event loop, see `rtflow.user_code`);
    a template renders at once, in the sandbox.
    """
    if prompt.kind == "python":
        return await _call_prompt_function(prompt, vars, provider, base_dir, deadline_s)
    if prompt.kind == "javascript":
        return await _call_javascript_prompt(prompt, vars, provider, base_dir, deadline_s)
    return render_template(prompt, vars, base_dir)


def render_template(prompt: PromptSpec, vars: Mapping[str, Any], base_dir: Path) -> list[Message]:
    """The messages a template prompt (inline, text or JSON file) renders to; it runs no user code."""
    where = _describe(prompt)
    if prompt.is_function:
        raise ValueError(f"{where} is not a template: render it with render_prompt")
    template = _compile(_template_source(prompt, base_dir), prompt.kind == "json", where)
    try:
        rendered = template.render(**vars)
    except jinja2.UndefinedError as exc:
        raise PromptError(f"{where}: {_undefined_reason(exc)}") from None
    except jinja2.TemplateError as exc:
        raise PromptError(f"{where}: rendering failed: {exc}") from None
    except Exception as exc:  # a filter or method of a var raised: the template is at fault, not rtflow
        raise PromptError(f"{where}: rendering failed: {type(exc).__name__}: {exc}") from None
    if prompt.kind == "json":
        return _json_messages(rendered, where)
    return _messages_from_text(rendered, where)


def _undefined_reason(exc: jinja2.UndefinedError) -> str:
    message = exc.message or str(exc)
    # "'question' is undefined" -> name the variable the way a flow writer thinks of it.
    if message.endswith(" is undefined") and message.startswith("'"):
        name = message[1 : message.index("'", 1)]
        return f"missing variable `{name}` (give it in the test's vars or in default_test.vars)"
    return f"undefined value: {message}"


def _json_messages(rendered: str, where: str) -> list[Message]:
    try:
        data = json.loads(rendered)
    except json.JSONDecodeError as exc:
        lines = rendered.splitlines()
        context = lines[exc.lineno - 1].strip() if 0 < exc.lineno <= len(lines) else ""
        raise PromptError(
            f"{where}: renders invalid JSON ({exc.msg} at rendered line {exc.lineno}, column {exc.colno}: "
            f"{context[:80]!r})"
        ) from None
    if not isinstance(data, list):
        raise PromptError(f"{where}: must render to a JSON list of messages, got a JSON {type(data).__name__}")
    return messages_from(data, where)


def _messages_from_text(rendered: str, where: str) -> list[Message]:
    stripped = rendered.strip()
    if stripped.startswith("["):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, list) and data and all(isinstance(item, dict) and "role" in item for item in data):
            return messages_from(data, where)
    return [Message(role="user", content=rendered)]


def messages_from(items: list[Any], where: str) -> list[Message]:
    """Validate a list of message mappings (or `Message`s); the error names the item and what is wrong."""
    if not items:
        raise PromptError(f"{where}: the message list is empty")
    messages: list[Message] = []
    for position, item in enumerate(items, start=1):
        if isinstance(item, Message):
            messages.append(item)
            continue
        try:
            messages.append(Message.model_validate(item))
        except ValidationError as exc:
            raise PromptError(f"{where}: message {position} is not a valid message: {_message_problem(exc)}") from None
    return messages


def _message_problem(exc: ValidationError) -> str:
    problems = []
    for detail in exc.errors():
        if _is_other_union_branch(detail["loc"], detail["input"]):
            continue
        loc = ".".join(str(part) for part in detail["loc"] if not _is_union_branch(part))
        if detail["type"] == "literal_error":
            expected = (detail.get("ctx") or {}).get("expected", "")
            text = f"{loc} is {detail['input']!r}; expected {expected}"
        elif detail["type"] == "missing":
            text = f"missing `{loc}`"
        elif detail["type"] == "extra_forbidden":
            text = f"unknown key `{loc}`"
        elif detail["type"] == "value_error":  # a validator's own words, without pydantic's "Value error, "
            reason = str((detail.get("ctx") or {}).get("error", detail["msg"]))
            text = f"{loc}: {reason}" if loc else reason
        else:
            text = f"{loc}: {detail['msg']}"
        if text not in problems:
            problems.append(text)
    return "; ".join(problems[:3])


def _is_union_branch(part: str | int) -> bool:
    """A step of an error's location that names a branch of `content`'s union, not a key or an index."""
    return isinstance(part, str) and (part == "str" or part.startswith(("list[", "function-")))


def _is_other_union_branch(loc: tuple[str | int, ...], given: Any) -> bool:
    """An error of the `str` branch of `content` when a list was given: the list branch holds the real fault."""
    return loc[:2] == ("content", "str") and isinstance(given, list)


async def _call_prompt_function(
    prompt: PromptSpec, vars: Mapping[str, Any], provider: ProviderInfo, base_dir: Path, deadline_s: float
) -> list[Message]:
    where = _describe(prompt)
    try:
        function = load_callable(prompt.raw, base_dir)
    except FlowError as exc:
        raise PromptError(f"{where}: {exc.message}") from None
    context = {
        "vars": dict(vars),
        "provider": {"id": provider.id, "label": provider.label, "config": dict(provider.config)},
    }
    try:
        result = await call_user_code(function, context, deadline_s=deadline_s, what=where)
    except UserCodeError as exc:  # it raised, tried to exit or hung: the prompt's fault, the turn's error
        raise PromptError(exc.message) from exc
    return _messages_of_result(result, where)


def _messages_of_result(result: Any, where: str) -> list[Message]:
    """What a prompt function returned, as messages: a string (text, or chat messages as JSON) or a list."""
    if isinstance(result, str):
        return _messages_from_text(result, where)
    if isinstance(result, list):
        return messages_from(result, where)
    raise PromptError(f"{where} returned {type(result).__name__}; expected a string or a list of messages")


def _check_javascript_prompt(prompt: PromptSpec, base_dir: Path) -> None:
    """The file exists and a Node that can run it is there (else the error says how to get one)."""
    from rtflow.js.node import find_node

    assert prompt.file is not None
    path = resolve_path(prompt.file, base_dir)
    if not path.is_file():
        raise PromptError(f"{_describe(prompt)}: no such file {path}")
    find_node(path)


async def _call_javascript_prompt(
    prompt: PromptSpec, vars: Mapping[str, Any], provider: ProviderInfo, base_dir: Path, deadline_s: float
) -> list[Message]:
    """promptfoo's call: `fn({vars, provider})`, in the run's Node worker, returning text or chat messages."""
    from rtflow.js.errors import JsError
    from rtflow.js.run_scope import call_js

    where = _describe(prompt)
    context = {
        "vars": dict(vars),
        "provider": {"id": provider.id, "label": provider.label, "config": dict(provider.config)},
    }
    try:
        result = await call_js(prompt.raw, [context], base_dir=base_dir, timeout=deadline_s)
    except JsError as exc:
        raise PromptError(f"{where}: {exc.message}") from exc
    return _messages_of_result(result, where)
