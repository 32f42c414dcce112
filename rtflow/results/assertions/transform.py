"""promptfoo's test option `transform`: the output, changed by user code, before the turn's assertions see it.

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

__all__ = ["TransformError", "transformed"]


class TransformError(Exception):
    """The transform failed (raised, hung, or is not found): the turn's assertions cannot be judged."""


async def transformed(transform: str, output: TurnOutput, context: AssertionContext) -> TurnOutput:
    """`output` with its text replaced by what `transform` returns for it."""
    from rtflow.js.errors import JsError
    from rtflow.js.refs import is_js_reference
    from rtflow.js.run_scope import call_js, evaluate_js

    transform_context = {"vars": dict(context.vars)}
    try:
        if is_python_ref(transform):
            function = load_callable(transform, context.base_dir)
            result: Any = await call_user_code(
                function, output.text, transform_context, deadline_s=context.timeout, what=f"transform {transform}"
            )
        elif is_js_reference(transform):
            result = await call_js(transform, [output.text, transform_context], base_dir=context.base_dir,
                                   timeout=context.timeout)  # fmt: skip
        else:
            result = await evaluate_js(
                transform,
                {"output": output.text, "context": transform_context},
                file=context.base_dir / "<transform>",
                timeout=context.timeout,
            )
    except (UserCodeError, JsError) as exc:
        raise TransformError(f"transform failed: {exc}") from exc
    except Exception as exc:  # a Python reference that cannot be loaded
        raise TransformError(f"transform failed: {exc}") from exc
    text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return output.model_copy(update={"text": text})
