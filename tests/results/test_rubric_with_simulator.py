"""`llm-rubric` graded over HTTP by the local simulator's grader, whose rule is known, so verdicts are exact."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import httpx
import pytest

from rtflow.flow.spec import AssertionSpec
from rtflow.messages import Message, TurnOutput
from rtflow.results.assertions import AssertionContext, evaluate_assertions
from rtflow.sim import SimConfig, SimServer

Grade = Callable[[list[Message]], Awaitable[str]]


@pytest.fixture
async def grade() -> AsyncIterator[Grade]:
    """A grade callable that sends the grading messages to the simulator's Chat Completions endpoint."""
    async with SimServer(SimConfig()) as sim, httpx.AsyncClient(timeout=10) as client:

        async def ask(messages: list[Message]) -> str:
            response = await client.post(
                sim.http_base_url + "/chat/completions",
                headers={"Authorization": "Bearer sk-test-dummy"},
                json={"model": "gpt-4.1-mini", "messages": [message.model_dump() for message in messages]},
            )
            response.raise_for_status()
            body: dict[str, Any] = response.json()
            return str(body["choices"][0]["message"]["content"])

        yield ask


async def rubric(output: str, rubric_text: str, grade: Grade, **spec: Any) -> tuple[bool, float, str | None, str]:
    """(passed, score, error, reason) of one llm-rubric assertion."""
    results = await evaluate_assertions(
        [AssertionSpec(type="llm-rubric", value=rubric_text, **spec)],
        TurnOutput(text=output),
        context=AssertionContext(grade=grade),
    )
    return results[0].passed, results[0].score, results[0].error, results[0].reason


@pytest.mark.anyio
async def test_rubric_passes_when_the_output_has_the_rubric_terms(grade: Grade) -> None:
    """Both content words of the rubric appear in the output: score 1, pass."""
    passed, score, error, reason = await rubric(
        "Kyoto has many temples and shrines.", "Mentions temples in Kyoto", grade
    )
    assert (passed, score, error) == (True, 1.0, None)
    assert "Found 2 of 2" in reason


@pytest.mark.anyio
async def test_rubric_fails_below_half_the_terms_and_respects_threshold(grade: Grade) -> None:
    """One of three terms found scores 0.33 and fails; two of three pass alone but not under a 0.9 threshold."""
    passed, score, error, _ = await rubric("Tokyo is large.", "Kyoto temples and Tokyo", grade)
    assert (passed, round(score, 2), error) == (False, 0.33, None)
    passed, score, _, _ = await rubric("Tokyo and Kyoto.", "Kyoto temples and Tokyo", grade)
    assert (passed, round(score, 2)) == (True, 0.67)
    strict, _, _, _ = await rubric("Tokyo and Kyoto.", "Kyoto temples and Tokyo", grade, threshold=0.9)
    assert strict is False
    negated = await evaluate_assertions(
        [AssertionSpec(type="not-llm-rubric", value="Speaks like a pirate")],
        TurnOutput(text="Hello there."),
        context=AssertionContext(grade=grade),
    )
    assert negated[0].passed


@pytest.mark.anyio
async def test_a_grader_reply_that_is_not_json_is_an_assertion_error(grade: Grade) -> None:
    """The simulator answers a GARBAGE rubric with prose: the assertion fails with the reply quoted as its error."""
    passed, score, error, _ = await rubric("anything", "GARBAGE rubric", grade)
    assert (passed, score) == (False, 0.0)
    assert error is not None
    assert error.startswith("grader reply is not JSON") and "unable to grade" in error
