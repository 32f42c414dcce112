"""The example flows load cleanly, say what they promise, and pass end to end against the simulator."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import rtflow
from rtflow.flow.loader import load
from rtflow.plan.compiler import compile_flow

FLOWS = Path(__file__).parents[2] / "flows"
EXAMPLES = sorted(FLOWS.glob("*.yaml"))
SIM_OPTIONS = {"barge-in.yaml": {"voice": {"cancel_delay_ms": 50}}}
"""How an example's header says to run it on the simulator, when plain `--sim` is not it (the barge-in flow's
real-time audio comes by itself: its cuts go by what the caller heard)."""


@pytest.mark.parametrize("flow_file", EXAMPLES, ids=lambda path: path.name)
def test_example_flow_loads_without_warnings_and_compiles(flow_file: Path) -> None:
    """Each example loads with no warning and compiles into a plan with a node per turn and provider."""
    flow = load(flow_file)
    assert flow.warnings == []
    plan = compile_flow(flow)
    turns = sum(len(thread.turns) for thread in flow.thread_specs())
    calls = sum(len(provider.chain()) for provider in flow.providers) * len(flow.prompts) * turns
    call_nodes = [node for node, kind in plan.graph.nodes(data="kind") if kind in ("call", "dialogue")]
    assert len(call_nodes) == calls


def test_conversation_flow_shape() -> None:
    """conversation.yaml: two three-turn threads on Realtime with a Chat fallback, a Python prompt, a grader."""
    flow = load(FLOWS / "conversation.yaml")
    assert [(thread.id, len(thread.turns)) for thread in flow.thread_specs()] == [
        ("japan_travel", 3),
        ("realtime_ai", 3),
    ]
    (provider,) = flow.providers
    assert (provider.id, provider.display_label) == ("openai:realtime:gpt-realtime", "realtime")
    assert [(spec.id, spec.display_label) for spec in provider.fallback] == [("openai:chat:gpt-4.1-mini", "chat")]
    assert [prompt.kind for prompt in flow.prompts] == ["python"]
    assert flow.grader is not None and flow.grader.id == "openai:chat:gpt-4.1-mini"
    for thread in flow.thread_specs():
        for turn in thread.turns:
            assert turn.vars["system_message"].startswith("You are a helpful")
            assert {"llm-rubric", "not-icontains"} <= {assertion.type for assertion in turn.asserts}


@pytest.mark.anyio
@pytest.mark.parametrize("flow_file", EXAMPLES, ids=lambda path: path.name)
async def test_example_flow_passes_on_the_simulator(flow_file: Path) -> None:
    """Run on the embedded simulator (loopback only), every turn of every example passes."""
    from rtflow.sim import SimConfig

    options = SIM_OPTIONS.get(flow_file.name)
    result = await rtflow.arun(flow_file, sim=SimConfig(**options) if options else True, store=False)
    failures = {
        turn.node_id: (turn.status, turn.error, [a.reason for a in turn.assertions if not a.passed])
        for turn in result.turns
        if turn.status != "passed"
    }
    assert failures == {}
    assert result.passed


@pytest.mark.anyio
async def test_conversation_history_reaches_the_model() -> None:
    """Turn n of a conversation.yaml thread is answered with n user messages in view, one system message."""
    result = await rtflow.arun(FLOWS / "conversation.yaml", sim=True, store=False)
    fingerprints = set()
    for turn in result.turns:
        assert turn.output is not None
        match = re.search(r"\(user messages: (\d+), instructions: (\w+)\)", turn.output.text)
        assert match is not None, turn.output.text
        assert int(match.group(1)) == turn.turn_index + 1
        fingerprints.add(match.group(2))
    assert len(result.turns) == 6
    assert len(fingerprints) == 1 and "none" not in fingerprints


def test_the_barge_in_flow_passes_with_plain_sim_and_an_explicit_setting_is_kept(tmp_path: Path) -> None:
    """Its cuts go by what the caller heard, so `--sim` alone makes the simulator speak in real time and every cut
    lands while the agent speaks; a `SimConfig` that says `realtime_audio: false` is kept, and then each answer
    is whole before its cut (no `response.cancel` to send)."""
    import subprocess
    import sys

    from rtflow.sim import SimConfig

    command = [sys.executable, "-m", "rtflow", "run", str(FLOWS / "barge-in.yaml"), "--sim", "--no-progress"]
    done = subprocess.run([*command, "--db", str(tmp_path / "r.db")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 answers cut short by the caller" in done.stdout and "6 passed" in done.stdout

    kept = rtflow.run(FLOWS / "barge-in.yaml", sim=SimConfig(voice={"realtime_audio": False}), store=False)
    reasons = [reason for turn in kept.turns for reason in [a.reason for a in turn.assertions if not a.passed]]
    assert kept.exit_code == 1 and any("response.cancel never came" in reason for reason in reasons)
