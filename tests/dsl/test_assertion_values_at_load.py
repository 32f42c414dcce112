"""An assertion whose value its check cannot read is a load error (`rtflow validate` names it by file, line and
key) instead of a run that fails every turn with it; the check reads values with the same rule, so the message
is the one a turn would have recorded. A value that holds a template is read when its turn renders it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from rtflow.errors import FlowLoadError
from rtflow.flow.loader import load

BAD_VALUES = [
    ("latency", {"metric": "ttfa", "max_ms": "soon"}, "latency max_ms needs a number (milliseconds) as its value"),
    ("latency", {"metric": "nosuch", "max_ms": 100}, "latency metric 'nosuch' is unknown; use one of total"),
    ("latency", {"max_ms": 100, "p": 120}, "latency p must be above 0 and at most 100"),
    ("events", [{"type": "response.done", "within_ms": "fast"}], "events within_ms needs a number"),
    ("events", [], "events needs at least one event type"),
    ("absent", [{"type": "error", "source": "nobody"}], "absent: source must be server or client"),
    ("tool-called", 42, "tool-called needs a tool name, {name, arguments} or a list of them"),
    ("not-regex", "(unclosed", "invalid regular expression '(unclosed'"),
    ("cost", "cheap", "cost needs a number (US dollars) as its value"),
    ("audio-duration", {"longest": 3}, "audio-duration needs {min: seconds, max: seconds}"),
]


def _flow(tmp_path: Path, assertion: dict[str, Any]) -> Path:
    document = {
        "providers": ["openai:realtime:gpt-realtime"],
        "prompts": ["{{ q }}"],
        "tests": [{"vars": {"q": "hi", "budget": 900}, "assert": [{"type": "icontains", "value": "hi"}, assertion]}],
    }
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.mark.parametrize(
    ("kind", "value", "expected"), BAD_VALUES, ids=[f"{k}-{i}" for i, (k, _, _) in enumerate(BAD_VALUES)]
)
def test_a_value_its_check_cannot_read_is_a_load_error_at_its_line(
    tmp_path: Path, kind: str, value: Any, expected: str
) -> None:
    flow = _flow(tmp_path, {"type": kind, "value": value})
    with pytest.raises(FlowLoadError) as caught:
        load(flow)
    message = str(caught.value)
    assert expected in message
    value_lines = [n for n, line in enumerate(flow.read_text().splitlines(), 1) if line.strip().startswith("value:")]
    assert f"{flow}:{value_lines[1]}:" in message and "tests.0.assert.1.value" in message  # the second assertion's


@pytest.mark.anyio
@pytest.mark.parametrize(("kind", "value", "expected"), BAD_VALUES[:4], ids=lambda item: str(item)[:20])
async def test_the_check_says_what_the_load_said(kind: str, value: Any, expected: str) -> None:
    """A value given in code (bypassing the loader) fails its turn with the message the loader gives."""
    from rtflow.flow.spec import AssertionSpec
    from rtflow.messages import TurnOutput
    from rtflow.results.assertions import AssertionContext, evaluate_assertions

    spec = AssertionSpec(type=kind, value=value)
    (result,) = await evaluate_assertions([spec], TurnOutput(text="hi"), context=AssertionContext())
    assert not result.passed and expected in (result.error or "")


def test_a_templated_value_is_read_when_its_turn_renders_it(tmp_path: Path) -> None:
    flow = load(_flow(tmp_path, {"type": "latency", "value": {"metric": "ttfa", "max_ms": "{{ budget }}"}}))
    assert flow.tests[0].assert_[1].value == {"metric": "ttfa", "max_ms": "{{ budget }}"}


def test_promptfoos_threshold_is_the_bound_of_latency_and_cost(tmp_path: Path) -> None:
    """promptfoo writes `- type: latency` / `threshold: 5000` (and a CSV's `latency(5000)`): the bound, taken as
    the value, so the suite loads and its turns are judged against it."""
    import rtflow

    (tmp_path / "tests.csv").write_text("q,__expected\nhello,latency(5000)\n")
    flow = tmp_path / "flow.yaml"
    flow.write_text(
        yaml.safe_dump(
            {
                "providers": ["openai:chat:gpt-4.1-mini"],
                "prompts": ["{{ q }}"],
                "tests": [
                    {"vars": {"q": "hi"}, "assert": [{"type": "latency", "threshold": 5000},
                                                      {"type": "cost", "threshold": 0.01},
                                                      {"type": "latency", "threshold": 0.001}]},
                    "file://tests.csv",
                ],
            }
        )
    )  # fmt: skip
    loaded = load(flow)
    assert [a.value for a in loaded.tests[0].assert_] == [5000, 0.01, 0.001]
    assert loaded.tests[1].assert_[0].value == 5000
    result = rtflow.run(flow, sim=True, store=False)
    verdicts = [[a.passed for a in turn.assertions] for turn in result.turns]
    assert verdicts == [[True, True, False], [True]]  # no answer comes within a microsecond


def test_a_test_files_bare_latency_or_cost_has_no_bound_to_give(tmp_path: Path) -> None:
    """A CSV cell `latency` (no number) is a load error at its row, as the same assertion written in YAML is; it
    used to take the 0.75 default of a scored kind, judging every turn against 0.75 ms (and cost against $0.75)."""
    for cell in ("latency", "cost"):
        (tmp_path / "tests.csv").write_text(f"q,__expected\nhello,{cell}\n")
        flow = tmp_path / "flow.yaml"
        flow.write_text(
            yaml.safe_dump(
                {"providers": ["openai:chat:gpt-4.1-mini"], "prompts": ["{{ q }}"], "tests": "file://tests.csv"}
            )
        )
        with pytest.raises(FlowLoadError, match=rf"tests.csv.*{cell}"):
            load(flow)
