"""Simulated callers against the simulator: each stop condition ends the dialogue it was written for, every
agent turn is its own stored record, and the verdict over the whole conversation sits on the last.

The simulator plays the caller by its documented rule (the goal's sentences one per turn, then the stop phrase)
and grades by word overlap, so each dialogue's course is known in advance.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

import rtflow
from rtflow.sim import SimConfig

FLOWS = Path(__file__).resolve().parents[2] / "flows"
AGENT = {
    "id": "openai:realtime:gpt-realtime",
    "label": "agent",
    "config": {
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Get the weather",
                "parameters": {"type": "object", "properties": {"location": {"type": "string"}}},
            }
        ],
        "function_handlers": {"get_weather": f"file://{FLOWS / 'tools.py'}:get_weather"},
    },
}
GOAL = "I want a refund. The kettle does not heat. Please confirm the amount. I also need a receipt."


def _simulate(**options: Any) -> dict[str, Any]:
    return {"caller": "openai:chat:gpt-4.1-mini", "persona": "A customer", "goal": GOAL, **options}


def _run(folder: Path, threads: dict[str, Any], **run: Any) -> rtflow.RunResult:
    document = {
        "providers": [AGENT],
        "prompts": ["{{ caller }}"],
        "grader": "openai:chat:gpt-4.1-mini",
        "threads": threads,
    }
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    return rtflow.run(flow, sim=run.pop("sim", True), store="db" in run, **run)


def _dialogue(result: rtflow.RunResult, thread: str) -> list[Any]:
    return [turn for turn in result.turns if turn.thread_id == thread]


def test_the_stop_phrase_ends_it_after_the_goal_is_said(tmp_path: Path) -> None:
    result = _run(tmp_path, {"t": [{"simulate": _simulate(), "assert": [{"type": "stop-reason", "value": "phrase"}]}]})
    turns = _dialogue(result, "t")
    # Four goal sentences, four agent turns; the fifth caller line is the stop phrase, never sent to the agent.
    assert [turn.dialogue.caller for turn in turns] == [
        "I want a refund.",
        "The kettle does not heat.",
        "Please confirm the amount.",
        "I also need a receipt.",
    ]
    assert [turn.node_id for turn in turns] == [f"agent/t/{n}" for n in range(1, 5)]
    assert turns[-1].dialogue.stop_reason == "phrase" and turns[-1].status == "passed", turns[-1].assertions
    assert all(turn.dialogue.stop_reason is None for turn in turns[:-1])
    assert "user messages: 4" in turns[-1].output.text  # one session: the agent held the whole conversation


def test_a_tool_the_agent_calls_ends_it(tmp_path: Path) -> None:
    goal = "Hello there. What is the weather in Oslo? Thanks a lot."
    simulate = _simulate(goal=goal, stop=[{"tool-called": "get_weather"}])
    result = _run(
        tmp_path, {"t": [{"simulate": simulate, "assert": [{"type": "tool-called", "value": "get_weather"}]}]}
    )
    turns = _dialogue(result, "t")
    assert len(turns) == 2 and turns[-1].dialogue.stop_reason == "tool" and turns[-1].status == "passed"


def test_the_judges_verdict_ends_it(tmp_path: Path) -> None:
    simulate = _simulate(stop=[{"judge": "the caller says the kettle does not heat"}])
    result = _run(tmp_path, {"t": [{"simulate": simulate}]})
    turns = _dialogue(result, "t")
    assert len(turns) == 2 and turns[-1].dialogue.stop_reason == "judge"


def test_max_turns_ends_it_as_a_failure_unless_the_flow_accepts_it(tmp_path: Path) -> None:
    result = _run(
        tmp_path,
        {
            "strict": [{"simulate": _simulate(max_turns=2)}],
            "lenient": [{"simulate": _simulate(max_turns=2, limit_passes=True)}],
        },
    )
    strict, lenient = _dialogue(result, "strict"), _dialogue(result, "lenient")
    assert len(strict) == len(lenient) == 2
    assert strict[-1].dialogue.stop_reason == "max_turns" and strict[-1].status == "failed"
    assert "reached its limit (2 agent turns)" in strict[-1].assertions[0].reason
    assert lenient[-1].status == "passed"


def test_max_duration_ends_it(tmp_path: Path) -> None:
    config = SimConfig(latency={"first_delta_ms": 150})
    result = _run(tmp_path, {"t": [{"simulate": _simulate(max_duration="250ms")}]}, sim=config)
    turns = _dialogue(result, "t")
    assert 1 <= len(turns) < 4 and turns[-1].dialogue.stop_reason == "max_duration" and turns[-1].status == "failed"


def test_twenty_dialogues_at_once_each_end_as_written(tmp_path: Path) -> None:
    stops = [{"phrase": "###STOP###"}]
    threads = {
        f"c{index}": [{"simulate": _simulate(stop=stops, max_turns=3 + index % 3, limit_passes=True)}]
        for index in range(20)
    }
    result = _run(tmp_path, threads, concurrency=20)
    for index in range(20):
        turns = _dialogue(result, f"c{index}")
        expected = min(4, 3 + index % 3)
        assert len(turns) == expected, (index, [t.dialogue for t in turns])
        assert turns[-1].dialogue.stop_reason == ("phrase" if expected == 4 and index % 3 == 2 else "max_turns")


def test_conversation_assertions_judge_the_whole_dialogue(tmp_path: Path) -> None:
    asserts = [
        {"type": "turns", "value": {"max": 3}},
        {"type": "goal-met"},
        {"type": "each-turn", "value": [{"type": "icontains", "value": "you said"}]},
        {"type": "not-icontains", "value": "kettle"},
    ]
    result = _run(tmp_path, {"t": [{"simulate": _simulate(), "assert": asserts}]})
    verdicts = {a.type: a for a in _dialogue(result, "t")[-1].assertions}
    assert not verdicts["turns"].passed and "took 4 agent turns (not <= 3)" in verdicts["turns"].reason
    assert verdicts["goal-met"].passed and verdicts["each-turn"].passed
    assert not verdicts["not-icontains"].passed  # the transcript as a whole says kettle


def test_a_scripted_opening_is_part_of_the_dialogue(tmp_path: Path) -> None:
    threads = {"t": [{"caller": "Hello, I have a question."}, {"simulate": _simulate(max_turns=1, limit_passes=True)}]}
    result = _run(tmp_path, threads)
    first, generated = _dialogue(result, "t")
    assert first.dialogue is None and generated.dialogue is not None
    # The caller heard the opening too: its own line counts, so it goes on with the goal's second sentence.
    assert generated.dialogue.caller == "The kettle does not heat."
    assert "user messages: 2" in generated.output.text


@pytest.mark.parametrize(
    ("threads", "says"),
    [
        ({"t": [{"simulate": _simulate()}, {"caller": "late"}]}, "a `simulate:` entry must be the last of its thread"),
        ({"t": [{"simulate": {**_simulate(), "caller": "nosuch:thing"}}]}, "unknown provider kind"),
        ({"t": [{"simulate": {**_simulate(), "goal": ""}}]}, "goal"),
        ({"t": [{"simulate": _simulate(stop=[{"phrase": "x", "judge": "y"}])}]}, "exactly one of phrase"),
    ],
)
def test_a_bad_simulate_entry_is_a_load_error_naming_it(tmp_path: Path, threads: dict[str, Any], says: str) -> None:
    document = {"providers": [AGENT], "prompts": ["{{ caller }}"], "threads": threads}
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    with pytest.raises(rtflow.FlowLoadError) as caught:
        rtflow.load(flow)
    assert says in caught.value.message and "flow.yaml:" in caught.value.message, caught.value.message


def test_the_graph_draws_a_dialogue_as_one_node_with_its_bound(tmp_path: Path) -> None:
    document = {"providers": [AGENT], "prompts": ["{{ caller }}"], "threads": {"t": [{"simulate": _simulate()}]}}
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    plan = rtflow.compile(rtflow.load(flow))
    assert dict(plan.graph.nodes(data="kind")) == {"agent/t/dialogue": "dialogue"}
    from rtflow.plan.export import to_dot, to_json

    assert "dialogue: agent" in to_dot(plan) and "(at most 10)" in to_dot(plan)
    assert json.loads(to_json(plan))["nodes"][0]["kind"] == "dialogue"
    assert plan.conversations["agent/t"].turn_budget == 10


def test_a_caller_that_answers_as_the_agent_is_a_caller_error_and_is_regenerated(tmp_path: Path) -> None:
    """The caller model (made to misbehave by a simulator rule) answers as the agent: the conversation is a caller
    error, not the agent's failure, after the regenerations it was allowed; the simulator saw every try."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump([{"match": "You said", "reply": "Agent: How can I help you today?"}]))
    log = tmp_path / "sim.jsonl"
    simulate = _simulate(regenerate=2, max_turns=4)
    result = _run(tmp_path, {"t": [{"simulate": simulate}]}, sim=SimConfig(script=rules, log_path=log))
    turns = _dialogue(result, "t")
    assert [turn.status for turn in turns] == ["passed", "error"]
    assert turns[-1].error.kind == "caller"
    assert "caller-error: turn 2: the caller spoke as the agent" in turns[-1].error.message
    assert "(and in 2 regenerated dialogues)" in turns[-1].error.message
    events = [json.loads(line) for line in log.read_text().splitlines()]
    items = [e for e in events if e["dir"] == "in" and e["type"] == "conversation.item.create"]
    first_lines = [e for e in items if "I want a refund" in str(e)]
    assert len(first_lines) == 3  # the dialogue was held three times: once, then regenerated twice


def test_a_caller_in_role_passes_the_check(tmp_path: Path) -> None:
    result = _run(tmp_path, {"t": [{"simulate": _simulate(regenerate=2)}]})
    turns = _dialogue(result, "t")
    assert len(turns) == 4 and turns[-1].status == "passed" and turns[-1].error is None


def test_five_voice_dialogues_the_agent_hears_a_spoken_caller(tmp_path: Path) -> None:
    """`voice:` speaks each caller line (text to speech on the simulator's /v1/audio/speech) into the agent's
    Realtime session as the user's audio: the agent answers what it heard, and each turn keeps the clip."""
    import soundfile

    voice = {"provider": "openai:tts:gpt-4o-mini-tts", "voice": "marin", "speed": 1.5}
    threads = {
        f"v{index}": [{"simulate": _simulate(voice=voice, max_turns=2, limit_passes=True)}] for index in range(5)
    }
    log = tmp_path / "sim.jsonl"
    result = _run(tmp_path, threads, sim=SimConfig(log_path=log), db=tmp_path / "runs.db")
    events = [json.loads(line) for line in log.read_text().splitlines()]
    speech = [e["payload"] for e in events if e["dir"] == "in" and e["type"] == "audio.speech.request"]
    assert len(speech) == 10 and {request["voice"] for request in speech} == {"marin"}
    for index in range(5):
        turns = _dialogue(result, f"v{index}")
        assert len(turns) == 2 and turns[-1].status == "passed", [t.error for t in turns]
        for turn in turns:
            clip = Path(turn.dialogue.caller_audio)
            assert clip.is_file() and soundfile.info(str(clip)).samplerate == 24_000
            assert "audio of" in turn.output.text  # the simulator's agent heard audio, not text
            assert turn.output.metrics.input_audio_s and turn.output.metrics.input_audio_s > 0


def test_validate_and_the_summary_count_dialogues_for_what_they_are(tmp_path: Path) -> None:
    """`rtflow validate` says how many turns the dialogues may take; the run's summary counts caller errors
    apart from the agent's."""
    import subprocess
    import sys

    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump([{"match": "You said", "reply": "Agent: How can I help you today?"}]))
    document = {
        "providers": [AGENT],
        "prompts": ["{{ caller }}"],
        "threads": {"t": [{"caller": "Hello."}, {"simulate": _simulate(max_turns=6)}]},
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    validated = subprocess.run(
        [sys.executable, "-m", "rtflow", "validate", str(flow)], capture_output=True, text=True, timeout=60
    )
    assert "turns           2 written; with simulated dialogues up to 7" in validated.stdout, validated.stdout
    assert "up to 7 turns" in validated.stdout
    from rtflow.results.summary import RunSummary

    result = _run(tmp_path, document["threads"], sim=SimConfig(script=rules))
    summary = RunSummary.of(result.run, result.turns)
    assert summary.error == 1 and summary.caller_errors == 1
    from rtflow.results.report import write_export

    report = tmp_path / "report.html"
    write_export(result.run, result.turns, report)
    assert '<span data-figure="caller_errors">1</span>' in report.read_text()


def _flow_with_chat_fallback(folder: Path, prompt: str) -> Path:
    """One dialogue, thread `t`, whose Realtime agent falls back to Chat (`agent-chat`), with no retries."""
    agent = {**AGENT, "fallback": {"id": "openai:chat:gpt-4.1-mini", "label": "agent-chat"}}
    document = {
        "providers": [agent],
        "prompts": [prompt],
        "execution": {"retries": 0},
        "threads": {"t": [{"simulate": _simulate(), "assert": [{"type": "stop-reason", "value": "phrase"}]}]},
    }
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    return flow


def test_a_turn_the_primary_cannot_answer_falls_back_with_the_same_history(tmp_path: Path) -> None:
    """The Realtime agent fails the second caller line (a server error, no retries): that turn goes down the chain
    to the Chat fallback with the conversation so far, and the next turn is the primary's again, its history
    holding the fallback's answer. The dialogue ends as written."""
    from rtflow.sim.config import parse_fault

    flow = _flow_with_chat_fallback(tmp_path, "{{ caller }}")
    sim = SimConfig(faults=[parse_fault("server_error@realtime;match=kettle")])
    turns = _dialogue(rtflow.run(flow, sim=sim, store=False), "t")
    assert [(turn.provider, turn.is_fallback) for turn in turns] == [
        ("agent", False), ("agent-chat", True), ("agent", False), ("agent", False)
    ]  # fmt: skip
    assert [turn.node_id for turn in turns] == [f"agent/t/{n}" for n in range(1, 5)]
    assert 'You said: "The kettle does not heat." (user messages: 2' in turns[1].output.text
    assert "user messages: 3" in turns[2].output.text  # the primary heard the fallback's turn
    assert [call.error is not None for call in turns[1].calls] == [True, False]  # the failed try, then the answer
    assert turns[-1].dialogue.stop_reason == "phrase" and turns[-1].status == "passed", turns[-1].assertions


def test_a_prompt_that_fails_for_the_primary_goes_down_the_chain_as_a_written_turn_does(tmp_path: Path) -> None:
    """A prompt function that raises for the Realtime agent on the second caller line (it raises for no other
    provider): that turn is answered by the Chat fallback, as a written turn would be, and the dialogue goes on
    (it used to end the whole dialogue as a prompt error)."""
    (tmp_path / "prompt.py").write_text(
        "def build(context):\n"
        "    if 'kettle' in context['vars']['caller'] and context['provider']['label'] == 'agent':\n"
        "        raise ValueError('this prompt has no Realtime form for kettles')\n"
        "    return context['vars']['caller']\n"
    )
    flow = _flow_with_chat_fallback(tmp_path, "file://prompt.py:build")
    turns = _dialogue(rtflow.run(flow, sim=True, store=False), "t")
    assert [(turn.provider, turn.is_fallback) for turn in turns] == [
        ("agent", False), ("agent-chat", True), ("agent", False), ("agent", False)
    ]  # fmt: skip
    assert turns[-1].dialogue.stop_reason == "phrase" and turns[-1].status == "passed", turns[-1].assertions
