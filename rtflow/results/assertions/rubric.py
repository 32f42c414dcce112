"""`llm-rubric`: a grader model judges the output against a rubric, with promptfoo's default rubric prompt.

The grader is reached through `AssertionContext.grade`, which the caller supplies with its own concurrency and
retries; this module only builds the prompt and reads the verdict. Whatever goes wrong on the grader's side
(a failed call, a reply that is not the JSON asked for) becomes an assertion error, never an exception.
"""

from __future__ import annotations

import json
from typing import Any

from rtflow.flow.assertion_types import grader_key
from rtflow.messages import Message, TurnOutput
from rtflow.results.assertions.base import AssertionContext, AssertionLike, Unevaluable, Verdict

__all__ = ["RUBRIC_SYSTEM_PROMPT", "check_llm_rubric", "rubric_messages"]

RUBRIC_SYSTEM_PROMPT = """\
You are grading output according to a user-specified rubric. If the statement in the rubric is true, then the \
output passes the test. You respond with a JSON object with this structure: {reason: string, pass: boolean, \
score: number}

Examples:

<Output>Hello world</Output>
<Rubric>Content contains a greeting</Rubric>
{"reason": "the content contains the word 'Hello'", "pass": true, "score": 1.0}

<Output>Avast ye swabs, repel the invaders!</Output>
<Rubric>Does not speak like a pirate</Rubric>
{"reason": "'avast ye' is a common pirate term", "pass": false, "score": 0.0}"""


def rubric_messages(output_text: str, rubric: str) -> list[Message]:
    """The grading conversation promptfoo sends for `llm-rubric`."""
    return [
        Message.of("system", RUBRIC_SYSTEM_PROMPT),
        Message.of("user", f"<Output>\n{output_text}\n</Output>\n<Rubric>\n{rubric}\n</Rubric>"),
    ]


def _first_json_object(reply: str) -> dict[str, Any] | None:
    """The grader's verdict: the reply as JSON, or the first JSON object inside it (models add prose)."""
    decoder = json.JSONDecoder()
    text = reply.strip()
    position = text.find("{")
    while position >= 0:
        try:
            document, _ = decoder.raw_decode(text, position)
        except ValueError:
            position = text.find("{", position + 1)
            continue
        if isinstance(document, dict):
            return document
        position = text.find("{", position + 1)
    return None


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


def verdict_from_reply(reply: str, threshold: float | None) -> Verdict:
    """Read the grader's `{reason, pass, score}`; `Unevaluable` when it gave something else."""
    document = _first_json_object(reply)
    if document is None:
        raise Unevaluable(f"grader reply is not JSON: {_shorten(reply)!r}")
    raw_pass, raw_score = document.get("pass"), document.get("score")
    has_pass = isinstance(raw_pass, bool)
    has_score = isinstance(raw_score, (int, float)) and not isinstance(raw_score, bool)
    if not has_pass and not has_score:
        raise Unevaluable(f"grader reply has neither a boolean `pass` nor a numeric `score`: {_shorten(reply)!r}")
    score = float(raw_score) if has_score else (1.0 if raw_pass else 0.0)  # type: ignore[arg-type]
    passed = bool(raw_pass) if has_pass else score >= (threshold if threshold is not None else 0.5)
    if threshold is not None and score < threshold:
        passed = False
    reason = str(document.get("reason") or "the grader gave no reason")
    return Verdict(passed, score, reason)


async def check_llm_rubric(value: Any, output: TurnOutput, spec: AssertionLike, context: AssertionContext) -> Verdict:
    """The grader says the output satisfies the rubric (and its score reaches the assertion's threshold)."""
    if not isinstance(value, str) or not value.strip():
        raise Unevaluable("llm-rubric needs the rubric text as its value")
    key = grader_key(spec.provider)
    grade = context.grade if key is None else context.graders.get(key)
    if grade is None:
        named = f"the grader {key!r} it names" if key is not None else "a grader, and this flow has none"
        raise Unevaluable(f"llm-rubric needs {named} (set `grader:` in the flow, or `provider:` on the assertion)")
    try:
        reply = await grade(rubric_messages(output.text, value))
    except Exception as exc:  # whatever the grader raised is this assertion's error, not the run's
        raise Unevaluable(f"grader failed: {type(exc).__name__}: {exc}") from exc
    return verdict_from_reply(reply, spec.threshold)
