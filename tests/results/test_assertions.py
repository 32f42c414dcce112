"""Assertion kinds judge outputs as promptfoo does, with `not-`, weights, thresholds and Jinja values."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rtflow.errors import FlowError
from rtflow.flow.spec import AssertionSpec
from rtflow.messages import Message, ToolCall, TurnMetrics, TurnOutput
from rtflow.results.assertions import (
    KNOWN_ASSERTION_TYPES,
    AssertionContext,
    check_assertion_type,
    evaluate_assertions,
    turn_passed,
)
from rtflow.results.records import AssertionResult

REPLY = 'You said: "What is in Kyoto?" (user messages: 1, instructions: none)'
JSON_REPLY = '{"city": "Kyoto", "days": 3}'
WEATHER = ToolCall(call_id="c1", name="get_weather", arguments='{"city": "Kyoto", "unit": "celsius"}')
PERSON_SCHEMA = {
    "type": "object",
    "required": ["city", "days"],
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
}


def output_of(text: str = REPLY, **fields: Any) -> TurnOutput:
    """A turn output with the given text and fields."""
    return TurnOutput(text=text, **fields)


async def judge(
    type_: str, value: Any = None, text: str = REPLY, *, context: AssertionContext | None = None, **spec: Any
) -> AssertionResult:
    """The single verdict of one assertion on one output text."""
    assertion = AssertionSpec(type=type_, value=value, **spec)
    results = await evaluate_assertions([assertion], output_of(text), context=context or AssertionContext())
    assert len(results) == 1
    return results[0]


# (type, value, output that passes, output that fails)
CASES: list[tuple[str, Any, str, str]] = [
    ("equals", REPLY, REPLY, REPLY + "!"),
    ("equals", {"city": "Kyoto", "days": 3}, JSON_REPLY, '{"city": "Osaka", "days": 3}'),
    ("contains", "Kyoto", REPLY, REPLY.lower()),
    ("icontains", "KYOTO", REPLY, "Osaka"),
    ("contains-any", ["Osaka", "Kyoto"], REPLY, "Tokyo"),
    ("contains-any", "Osaka, Kyoto", REPLY, "Tokyo"),
    ("contains-all", ["Kyoto", "user messages"], REPLY, "Kyoto only"),
    ("icontains-any", ["OSAKA", "kYoTo"], REPLY, "Tokyo"),
    ("icontains-all", ["KYOTO", "USER MESSAGES: 1"], REPLY, "kyoto"),
    ("starts-with", "You said", REPLY, "I said"),
    ("regex", r"user messages: \d+", REPLY, "no numbers here"),
    ("is-json", None, JSON_REPLY, "city: Kyoto"),
    ("is-json", PERSON_SCHEMA, JSON_REPLY, '{"city": "Kyoto"}'),
    ("contains-json", None, f"Here it is: {JSON_REPLY} enjoy", "no braces {here"),
    ("contains-json", PERSON_SCHEMA, f"Plan: {JSON_REPLY}.", 'Plan: {"city": 3}.'),
    ("json-schema", PERSON_SCHEMA, JSON_REPLY, '{"city": "Kyoto", "days": "three"}'),
    ("is-valid-json-schema", PERSON_SCHEMA, JSON_REPLY, "[1, 2]"),
    ("python", "'Kyoto' in output and len(output) < 100", REPLY, "Osaka"),
    ("python", "words = output.split()\nreturn len(words) > 3", REPLY, "Kyoto"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("type_", "value", "passing", "failing"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)]
)
async def test_each_kind_passes_and_fails(type_: str, value: Any, passing: str, failing: str) -> None:
    """Each kind passes on the matching output, fails on the other, and `not-` inverts both."""
    passed = await judge(type_, value, passing)
    failed = await judge(type_, value, failing)
    assert (passed.passed, passed.score, passed.error) == (True, 1.0, None), passed.reason
    assert (failed.passed, failed.score, failed.error) == (False, 0.0, None), failed.reason
    negated_pass = await judge("not-" + type_, value, failing)
    negated_fail = await judge("not-" + type_, value, passing)
    assert (negated_pass.passed, negated_pass.score) == (True, 1.0)
    assert (negated_fail.passed, negated_fail.score) == (False, 0.0)
    assert negated_pass.type == "not-" + type_


@pytest.mark.anyio
async def test_values_render_jinja_from_the_turn_vars() -> None:
    """`{{ var }}` in a value (also inside lists) is rendered from the turn's vars; an unknown var is an error."""
    context = AssertionContext(vars={"city": "Kyoto", "other": "Osaka"})
    result = await judge("contains", "{{ city }}", context=context)
    assert result.passed and result.value == "Kyoto"
    listed = await judge("contains-all", ["{{ city }}", "You"], context=context)
    assert listed.passed and listed.value == ["Kyoto", "You"]
    missing = await judge("contains", "{{ nowhere }}", context=context)
    assert not missing.passed and missing.error is not None and "nowhere" in missing.error


@pytest.mark.anyio
async def test_weights_metrics_and_turn_threshold() -> None:
    """Weights and metrics are carried; a test threshold compares the weighted score, else all must pass."""
    asserts = [
        AssertionSpec(type="icontains", value="kyoto", weight=3, metric="mentions-city"),
        AssertionSpec(type="icontains", value="osaka", weight=1),
    ]
    results = await evaluate_assertions(asserts, output_of(), context=AssertionContext())
    assert [(r.passed, r.weight, r.metric) for r in results] == [(True, 3.0, "mentions-city"), (False, 1.0, None)]
    assert not turn_passed(results, None)
    assert turn_passed(results, 0.75)
    assert not turn_passed(results, 0.8)
    assert turn_passed([], None)


@pytest.mark.anyio
async def test_python_file_reference_scores_and_threshold(tmp_path: Path) -> None:
    """`file://x.py:fn` gets (output, context); dicts, numbers and the assertion threshold decide the verdict."""
    (tmp_path / "checks.py").write_text(
        "def verdict(output, context):\n"
        "    return {'pass': context['vars']['city'] in output, 'score': 0.9, 'reason': 'city check'}\n"
        "def share(output, context):\n"
        "    return output.count('o') / 10\n"
        "def broken(output, context):\n"
        "    raise RuntimeError('handler bug')\n"
    )
    context = AssertionContext(vars={"city": "Kyoto"}, base_dir=tmp_path)
    verdict = await judge("python", "file://checks.py:verdict", context=context)
    assert (verdict.passed, verdict.score, verdict.reason) == (True, 0.9, "city check")
    strict = await judge("python", "file://checks.py:verdict", context=context, threshold=0.95)
    assert not strict.passed
    share = await judge("python", "file://checks.py:share", "foo boo", context=context, threshold=0.3)
    assert (share.passed, share.score) == (True, 0.4)
    broken = await judge("python", "file://checks.py:broken", context=context)
    assert not broken.passed and broken.error is not None and "RuntimeError: handler bug" in broken.error
    absent = await judge("python", "file://checks.py:nothing", context=context)
    assert absent.error is not None and "nothing" in absent.error


@pytest.mark.anyio
async def test_json_schema_from_a_file_and_invalid_schemas(tmp_path: Path) -> None:
    """A schema may live in a file beside the flow; an invalid schema is an error, not a failure."""
    (tmp_path / "plan.json").write_text(json.dumps(PERSON_SCHEMA))
    context = AssertionContext(base_dir=tmp_path)
    assert (await judge("json-schema", "file://plan.json", JSON_REPLY, context=context)).passed
    failed = await judge("json-schema", "file://plan.json", '{"city": 1, "days": 2}', context=context)
    assert not failed.passed and failed.error is None and "city" in failed.reason
    invalid = await judge("json-schema", {"type": "no-such-type"}, JSON_REPLY)
    assert invalid.error is not None and "invalid JSON schema" in invalid.error


@pytest.mark.anyio
async def test_schema_files_are_reread_and_equal_schemas_checked_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edited schema file takes effect at its next use; a schema seen before is not checked again."""
    schema_file = tmp_path / "plan.json"
    schema_file.write_text(json.dumps(PERSON_SCHEMA))
    context = AssertionContext(base_dir=tmp_path)
    assert (await judge("json-schema", "file://plan.json", JSON_REPLY, context=context)).passed
    schema_file.write_text(json.dumps({**PERSON_SCHEMA, "required": ["city", "days", "hotel"]}))
    edited = await judge("json-schema", "file://plan.json", JSON_REPLY, context=context)
    assert not edited.passed and "hotel" in edited.reason

    checked: list[object] = []
    original = jsonschema.validators.Draft202012Validator.check_schema
    monkeypatch.setattr(
        jsonschema.validators.Draft202012Validator,
        "check_schema",
        classmethod(lambda cls, schema: (checked.append(schema), original(schema))[1]),
    )
    unseen = {**PERSON_SCHEMA, "title": "checked once"}
    for _ in range(3):
        assert (await judge("json-schema", dict(unseen), JSON_REPLY)).passed
    assert checked == [unseen]


@pytest.mark.anyio
async def test_latency_cost_and_tool_called() -> None:
    """Latency and cost compare measured figures to limits; tool-called matches names and argument subsets."""
    measured = output_of(metrics=TurnMetrics(first_delta_ms=80.0, total_ms=450.0), cost=0.002, tool_calls=[WEATHER])
    context = AssertionContext()

    async def one(**spec: Any) -> AssertionResult:
        return (await evaluate_assertions([AssertionSpec(**spec)], measured, context=context))[0]

    assert (await one(type="latency", value=500)).passed
    assert not (await one(type="latency", value=400)).passed
    assert (await one(type="latency", value=100, config={"metric": "first_delta"})).passed
    no_audio = await one(type="latency", value=100, config={"metric": "first_audio"})
    assert no_audio.error == "the turn has no first_audio measurement: its answer had no audio"
    assert (await one(type="cost", value=0.01)).passed
    assert not (await one(type="cost", value=0.001)).passed
    assert (await one(type="tool-called", value="get_weather")).passed
    assert not (await one(type="tool-called", value="book_hotel")).passed
    assert (await one(type="tool-called", value={"name": "get_weather", "arguments": {"city": "Kyoto"}})).passed
    wrong_city = await one(type="tool-called", value={"name": "get_weather", "arguments": {"city": "Osaka"}})
    assert not wrong_city.passed and "never with" in wrong_city.reason
    assert (await one(type="not-tool-called", value="book_hotel")).passed
    unpriced = await evaluate_assertions([AssertionSpec(type="cost", value=1)], output_of(), context=context)
    assert unpriced[0].error is not None and not unpriced[0].passed


@pytest.mark.anyio
async def test_broken_assertions_fail_with_an_error_even_when_negated() -> None:
    """A bad regex or unknown type is an error result (never a pass, even under `not-`), naming the problem."""
    bad_regex = await judge("not-regex", "([unclosed")
    assert (bad_regex.passed, bad_regex.score) == (False, 0.0)
    assert bad_regex.error is not None and "invalid regular expression" in bad_regex.error
    unknown = await evaluate_assertions(
        [
            AssertionSpec.model_construct(
                type="sounds-nice", value=None, weight=1.0, metric=None, threshold=None, provider=None, config={}
            )
        ],
        output_of(),
        context=AssertionContext(),
    )
    assert unknown[0].error is not None
    assert "sounds-nice" in unknown[0].error and "icontains" in unknown[0].error


def test_known_types_and_early_check() -> None:
    """KNOWN_ASSERTION_TYPES lists every kind with its `not-` form; check_assertion_type names unknown ones."""
    for kind in ("equals", "llm-rubric", "not-llm-rubric", "tool-called", "is-valid-json-schema", "latency"):
        assert kind in KNOWN_ASSERTION_TYPES
        check_assertion_type(kind)
    with pytest.raises(FlowError, match=r"'smells-right'.*contains-any"):
        check_assertion_type("smells-right")


@pytest.mark.anyio
async def test_llm_rubric_without_a_grader_or_with_a_failing_one() -> None:
    """No grader, a grader that raises, or one that replies with prose: each is an assertion error, not a crash."""
    missing = await judge("llm-rubric", "Mentions Kyoto")
    assert missing.error is not None and "grader" in missing.error

    async def failing(messages: list[Message]) -> str:
        raise ConnectionResetError("grader connection dropped")

    failed = await judge("llm-rubric", "Mentions Kyoto", context=AssertionContext(grade=failing))
    assert not failed.passed
    assert failed.error == "grader failed: ConnectionResetError: grader connection dropped"

    async def chatty(messages: list[Message]) -> str:
        return "Sure! The output looks great to me."

    garbage = await judge("llm-rubric", "Mentions Kyoto", context=AssertionContext(grade=chatty))
    assert not garbage.passed and garbage.error is not None and "not JSON" in garbage.error


@pytest.mark.anyio
async def test_llm_rubric_reads_verdicts_wrapped_in_prose_and_applies_threshold() -> None:
    """The first JSON object of the reply is the verdict; the assertion threshold applies to its score."""
    seen: list[list[Message]] = []

    async def grader(messages: list[Message]) -> str:
        seen.append(messages)
        return 'Verdict: {"reason": "mostly right", "pass": true, "score": 0.6} -- done'

    context = AssertionContext(grade=grader, vars={"topic": "Kyoto"})
    lenient = await judge("llm-rubric", "Talks about {{ topic }}", context=context)
    assert (lenient.passed, lenient.score, lenient.reason) == (True, 0.6, "mostly right")
    strict = await judge("llm-rubric", "Talks about {{ topic }}", context=context, threshold=0.8)
    assert not strict.passed
    system, user = seen[0]
    assert system.role == "system" and "{reason: string, pass: boolean, score: number}" in system.text
    assert user.text == f"<Output>\n{REPLY}\n</Output>\n<Rubric>\nTalks about Kyoto\n</Rubric>"


def test_the_evaluators_judge_exactly_the_types_a_flow_may_write() -> None:
    """The flow stage's list of assertion types and the evaluators' tables name the same kinds."""
    from rtflow.flow.assertion_types import BASE_ASSERTION_TYPES
    from rtflow.results.assertions.evaluate import EVALUATED_TYPES

    assert EVALUATED_TYPES == BASE_ASSERTION_TYPES
