"""The run's JavaScript worker, and calls by the references a flow writes.

A run opens `js_for_run()` once; the prompts, tool handlers and assertions it reaches call `call_js(reference,
args, ...)` without being handed the bridge: it is the run's context (a context variable, which the run's tasks
inherit). Opening the scope costs nothing: Node starts on the first call, so a flow without JavaScript never
starts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from rtflow.js.bridge import JsBridge
from rtflow.js.errors import JsError
from rtflow.js.refs import function_ref_from_text, split_js_ref
from rtflow.pyref import resolve_path

__all__ = ["call_js", "evaluate_js", "js_for_run"]

_current: ContextVar[JsBridge | None] = ContextVar("rtflow_js_bridge", default=None)


@asynccontextmanager
async def js_for_run() -> AsyncIterator[None]:
    """The scope of one run's JavaScript worker (started by the first call, stopped when the scope ends)."""
    async with JsBridge() as bridge:
        token = _current.set(bridge)
        try:
            yield
        finally:
            _current.reset(token)


def _bridge() -> JsBridge:
    bridge = _current.get()
    if bridge is None:
        raise JsError(
            "JavaScript is called only inside a run (rtflow.run, rtflow.arun, rtflow run)", file=None, kind="worker"
        )
    return bridge


async def evaluate_js(code: str, params: dict[str, Any], *, file: Path, timeout: float) -> Any:
    """Inline JavaScript written in a flow (an expression, or a body that returns), with `params` in scope."""
    return await _bridge().evaluate(code, params, file=file, timeout=timeout)


async def call_js(reference: str, args: Sequence[Any], *, base_dir: Path, timeout: float) -> Any:
    """Call the JavaScript `reference` names (`file://x.js[:name]` against `base_dir`, or a config's function)."""
    bridge = _bridge()
    function = function_ref_from_text(reference)
    if function is not None:
        return await bridge.call_ref(function, args, timeout=timeout)
    parts = split_js_ref(reference)
    if parts is None:
        raise JsError(f"{reference!r} does not name a JavaScript file", file=None, kind="load")
    file, export = parts
    return await bridge.call(resolve_path(file, base_dir), export, args, timeout=timeout)
