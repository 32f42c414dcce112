"""promptfoo's `transform`s and `transformVars`.

A `transform` changes the output, by user code, before assertions see it: the provider's first, then the test
options', then an assertion's own for that assertion alone. `transformVars` changes the turn's vars before its
prompt renders and its assertions run.

`transform: output.trim().toLowerCase()` (JavaScript, promptfoo's language for it: an expression, or a body that
returns), `file://transform.js[:name]`, or `file://transform.py:fn` (Python). It gets the output text and a
context with the turn's `vars`, and returns the text the assertions judge (anything else is judged as its JSON).
The stored output stays what the model said; the assertions' reasons say what they saw.
"""

from __future__ import annotations

import json
from typing import Any

from rtflow.messages import TurnOutput
from rtflow.pyref import is_python_ref, load_callable
from rtflow.results.assertions.base import AssertionContext
from rtflow.user_code import UserCodeError, call_user_code

__all__ = ["TransformError", "transformed", "transformed_vars"]


class TransformError(Exception):
    """The transform failed (raised, hung, or is not found): the turn's assertions cannot be judged."""


async def _run_transform(transform: str, names: dict[str, Any], base_dir: Any, timeout: float, what: str) -> Any:
    """Call the transform: Python (`file://x.py:fn`), a JavaScript file or function, or inline JavaScript with
    `names` in scope; the arguments are `names`' values, in order."""
    from rtflow.js.errors import JsError
    from rtflow.js.refs import is_js_reference
    from rtflow.js.run_scope import call_js, evaluate_js

    try:
        if is_python_ref(transform):
            function = load_callable(transform, base_dir)
            return await call_user_code(function, *names.values(), deadline_s=timeout, what=f"{what} {transform}")
        if is_js_reference(transform):
            return await call_js(transform, list(names.values()), base_dir=base_dir, timeout=timeout)
        return await evaluate_js(transform, names, file=base_dir / f"<{what}>", timeout=timeout)
    except (UserCodeError, JsError) as exc:
        raise TransformError(f"{what} failed: {exc}") from exc
    except Exception as exc:  # a Python reference that cannot be loaded
        raise TransformError(f"{what} failed: {exc}") from exc


async def transformed_vars(transform: str, vars: dict[str, Any], base_dir: Any, timeout: float) -> dict[str, Any]:
    """The turn's vars updated with the mapping `transformVars` returns (promptfoo's merge)."""
    result = await _run_transform(transform, {"vars": dict(vars), "context": {}}, base_dir, timeout, "transformVars")
    if not isinstance(result, dict):
        raise TransformError(f"transformVars returned {type(result).__name__}; expected an object of vars")
    return {**vars, **result}


async def transformed(
    transform: str, output: TurnOutput, context: AssertionContext, *, what: str = "transform"
) -> TurnOutput:
    """`output` with its text replaced by what `transform` returns for it; `what` names the transform in errors
    (the provider's, the test's or an assertion's)."""
    transform_context = {"vars": dict(context.vars)}
    names = {"output": output.text, "context": transform_context}
    result = await _run_transform(transform, names, context.base_dir, context.timeout, what)
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return output.model_copy(update={"text": text})
