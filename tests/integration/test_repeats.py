"""`--repeat N` with statistics: a seeded simulator fault makes some tests flaky, and the run marks exactly those
flaky, with intervals that contain the pass probability the fault leaves them."""

from __future__ import annotations

from pathlib import Path

import yaml

import rtflow
from rtflow.results.summary import RunSummary
from rtflow.sim import SimConfig
from rtflow.sim.config import parse_fault

FAIL_PROBABILITY = 0.3


def test_a_seeded_fault_makes_exactly_its_tests_flaky(tmp_path: Path) -> None:
    document = {
        "providers": ["openai:chat:gpt-4.1-mini"],
        "prompts": ["{{ q }}"],
        "execution": {"retries": 0},  # a retry would hide the fault the test injects
        "tests": [
            {"vars": {"q": f"{kind} question {index}"}, "assert": [{"type": "icontains", "value": kind}]}
            for index, kind in enumerate(["steady", "flaky", "steady", "flaky"])
        ],
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document))
    fault = parse_fault(f"server_error@chat~{FAIL_PROBABILITY};match=flaky")
    result = rtflow.run(flow, sim=SimConfig(faults=[fault], seed=11), repeat=20, store=False)
    summary = RunSummary.of(result.run, result.turns)
    conversations = {figure.key: figure for figure in summary.repeats if figure.kind == "conversation"}
    assert len(conversations) == 4 and all(figure.runs == 20 for figure in conversations.values())
    flaky = {key for key, figure in conversations.items() if figure.flaky}
    assert flaky == {"openai:chat:gpt-4.1-mini/test-2", "openai:chat:gpt-4.1-mini/test-4"}
    for key in flaky:
        figure = conversations[key]
        assert figure.low <= 1 - FAIL_PROBABILITY <= figure.high, figure
        assert figure.pass_hat_k[5] < figure.pass_rate < figure.pass_at_k[5]
    steady = conversations["openai:chat:gpt-4.1-mini/test-1"]
    assert (steady.passed, steady.pass_hat_k[20], steady.low) == (20, 1.0, steady.low) and steady.low > 0.8
    for figure in conversations.values():  # latency and cost spread over the 20 copies, with bootstrap intervals
        assert figure.latency_ms is not None and figure.latency_ms.count == figure.passed  # errors took no time
        assert figure.latency_ms.p50_low <= figure.latency_ms.p50 <= figure.latency_ms.p50_high
        assert figure.latency_ms.p50 <= figure.latency_ms.p95 <= figure.latency_ms.p95_high
        assert figure.cost is not None and figure.cost.p50 > 0
