"""Function tools shared by the Realtime and Chat providers: definitions and the handlers that answer them.

Handlers come from config `function_handlers` (`{name: file://tools.py:func}`, called with the parsed JSON
arguments as one dict) or from promptfoo's `function_call_handler` (`file://tools.py:handle`, called with the
tool's name and its arguments as a JSON string). Either may be sync (run in a worker thread so the event loop
keeps serving other conversations) or async. Each call runs under `tool_timeout` through `rtflow.user_code`,
which abandons a sync handler that overruns it (a thread cannot be killed).

A failing handler does not fail the turn: the full failure (type, message, traceback) is recorded on the
`ToolCall` and the model is sent a short error output, as a real deployment would. The turn fails only when
the model keeps calling tools past `max_tool_iterations` (see `tool_rounds`, the loop that runs these handlers).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import anyio

from rtflow.errors import FlowError
from rtflow.messages import ToolCall
from rtflow.pyref import FILE_PREFIX, load_callable, resolve_path
from rtflow.user_code import UserCodeError, call_user_code

__all__ = ["PendingCall", "ToolRunner", "chat_tools", "load_handler", "native_tools"]

PendingCall = tuple[str, str, str]
"""(call_id, name, arguments_json) of a function call the model made."""


def native_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the Realtime form `{type: function, name, description, parameters}`, from either form."""
    converted: list[dict[str, Any]] = []
    for tool in tools:
        function = tool.get("function")
        if tool.get("type") == "mcp":  # the server's own tool: sent exactly as the flow wrote it
            converted.append(dict(tool))
        elif isinstance(function, Mapping):
            converted.append(_without_strict({"type": "function", **dict(function)}))
        else:
            converted.append(_without_strict({"type": "function", **{k: v for k, v in tool.items() if k != "type"}}))
    return converted


def _without_strict(tool: dict[str, Any]) -> dict[str, Any]:
    # Chat's `strict` flag has no Realtime counterpart.
    return {k: v for k, v in tool.items() if k != "strict"}


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Tools in the Chat Completions form `{type: function, function: {...}}`, from either form."""
    converted: list[dict[str, Any]] = []
    for tool in tools:
        if isinstance(tool.get("function"), Mapping):
            converted.append(dict(tool))
        else:
            converted.append({"type": "function", "function": {k: v for k, v in tool.items() if k != "type"}})
    return converted


def _encode_result(result: Any) -> str:
    if isinstance(result, str):
        return result
    return json.dumps(result, default=str, ensure_ascii=False)


def load_handler(reference: str, base_dir: Path, timeout: float) -> Callable[..., Any]:
    """The function a handler reference names: Python (`file://tools.py:fn`), or JavaScript (`file://tools.js:fn`,
    or a JS config's inline function), which runs in the run's Node worker and is awaited like async Python."""
    from rtflow.js.refs import function_ref_from_text, is_js_reference, split_js_ref

    if not is_js_reference(reference):
        return load_callable(reference, base_dir)
    parts = split_js_ref(reference)
    if parts is not None:
        from rtflow.js.node import find_node

        path = resolve_path(parts[0], base_dir)
        if not path.is_file():
            raise FlowError(f"tool handler {reference}: no such file {path}")
        find_node(path)
    else:
        assert function_ref_from_text(reference) is not None

    async def call_javascript(*args: Any) -> Any:
        from rtflow.js.run_scope import call_js

        return await call_js(reference, list(args), base_dir=base_dir, timeout=timeout)

    return call_javascript


class ToolRunner:
    """Runs the model's function calls with the handlers a provider's config names."""

    def __init__(
        self,
        handlers: Mapping[str, str],
        dispatcher: str | None,
        base_dir: Path,
        timeout: float,
    ) -> None:
        # Imported (or, for JavaScript, found with a Node to run it) at construction, so a bad reference is a
        # FlowError before any call is made.
        self._handlers: dict[str, Callable[..., Any]] = {
            name: load_handler(ref, base_dir, timeout) for name, ref in handlers.items()
        }
        self._handler_refs = {name: ref.removeprefix(FILE_PREFIX) for name, ref in handlers.items()}
        self._dispatcher = load_handler(dispatcher, base_dir, timeout) if dispatcher else None
        self._dispatcher_ref = dispatcher.removeprefix(FILE_PREFIX) if dispatcher else ""
        self.timeout = timeout

    async def run_all(self, calls: list[PendingCall]) -> list[ToolCall]:
        """Every call's outcome, in the order the model made them (handlers run concurrently)."""
        results: list[ToolCall | None] = [None] * len(calls)

        async def run_one(index: int, call: PendingCall) -> None:
            results[index] = await self.run(*call)

        async with anyio.create_task_group() as group:
            for index, call in enumerate(calls):
                group.start_soon(run_one, index, call)
        return [result for result in results if result is not None]

    async def run(self, call_id: str, name: str, arguments: str) -> ToolCall:
        """One call's outcome; never raises for a handler's failure."""
        started = time.perf_counter()
        record = ToolCall(call_id=call_id, name=name, arguments=arguments)

        def finish(output: str, error: str | None = None) -> ToolCall:
            record.output = output
            record.error = error
            record.duration_ms = (time.perf_counter() - started) * 1000
            return record

        if name not in self._handlers and self._dispatcher is None:
            message = f"no handler is configured for tool {name!r}"
            return finish(json.dumps({"error": message}), message)
        try:
            target, args, what = self._call_for(name, arguments)
        except ValueError as exc:  # the model's arguments, not the handler, are at fault
            message = f"tool {name!r}: the arguments are not JSON: {exc}"
            return finish(json.dumps({"error": message}), message)
        try:
            result = await call_user_code(target, *args, deadline_s=self.timeout, what=what)
        except UserCodeError as exc:
            cause = exc.__cause__
            # The record keeps the whole story (the traceback when the handler raised); the model gets one line.
            detail = "".join(traceback.format_exception(cause)) if cause is not None else exc.message
            return finish(json.dumps({"error": exc.message}), detail)
        return finish(_encode_result(result))

    def _call_for(self, name: str, arguments: str) -> tuple[Callable[..., Any], tuple[Any, ...], str]:
        """(function, arguments, how messages name it) for a call of tool `name`; ValueError for bad JSON."""
        handler = self._handlers.get(name)
        if handler is not None:
            parsed = json.loads(arguments) if arguments.strip() else {}
            return handler, (parsed,), f"tool {name!r} handler {self._handler_refs[name]}"
        assert self._dispatcher is not None
        return self._dispatcher, (name, arguments), f"tool {name!r} handler {self._dispatcher_ref}"
