"""`javascript`: promptfoo's JavaScript check, run in the run's Node worker (see `rtflow.js`).

The value is inline code (one line: an expression; several: a function body that returns) with `output` and
`context` in scope, or `file://check.js[:name]` (called as `fn(output, context)`), or a function written in a
JavaScript config. It returns what a `python` check returns: a boolean, a score, or `{pass, score, reason}`.
`context` holds the turn's `vars`, the assertion's `config`, the tool calls, metrics, usage and cost.
"""

from __future__ import annotations

from typing import Any

from rtflow.messages import TurnOutput
from rtflow.results.assertions.base import AssertionContext, AssertionLike, Unevaluable, Verdict
from rtflow.results.assertions.structured import check_context, verdict_from_user_code

__all__ = ["check_javascript"]


async def check_javascript(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """User JavaScript judges the output, within the run's timeout."""
    from rtflow.js.errors import JsError
    from rtflow.js.refs import is_js_reference
    from rtflow.js.run_scope import call_js, evaluate_js

    if not isinstance(value, str) or not value.strip():
        raise Unevaluable("javascript needs code, file://check.js[:function] or a function as its value")
    js_context = check_context(output, spec, context)
    try:
        if is_js_reference(value):
            result = await call_js(value, [output.text, js_context], base_dir=context.base_dir, timeout=context.timeout)
        else:
            result = await evaluate_js(
                value,
                {"output": output.text, "context": js_context},
                file=context.base_dir / "<javascript assertion>",
                timeout=context.timeout,
            )
    except JsError as exc:  # it threw, hung or returned something that is not JSON: this check's error
        raise Unevaluable(exc.message) from exc
    return verdict_from_user_code(result, spec.threshold, "javascript")
