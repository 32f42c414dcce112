"""promptfoo's simulated user, as its documentation shows it, runs unchanged with `--sim`: the provider on a test
or on `defaultTest`, `maxTurns`, the persona in `vars.instructions` (or the config's `instructions`), the prompt
as the agent's instructions."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import rtflow

DEFAULT_TEST_FORM = """\
description: Airline agent with a simulated traveller
prompts:
  - You are a helpful airline customer service agent. Help the traveller change their flight.
providers:
  - openai:chat:gpt-4.1-mini
defaultTest:
  provider:
    id: promptfoo:simulated-user
    config:
      maxTurns: 3
tests:
  - vars:
      instructions: You are Mia. You want to fly from New York to Seattle on May 20. You prefer a direct flight.
    assert:
      - type: llm-rubric
        value: fly to Seattle
"""

TEST_FORM = """\
prompts:
  - You are a helpful airline customer service agent.
providers:
  - openai:chat:gpt-4.1-mini
tests:
  - provider:
      id: promptfoo:simulated-user
      config:
        maxTurns: 10
        instructions: You want to fly from New York to Seattle on May 20. You have 3 bags.
"""


def test_the_default_test_form_runs_unchanged(tmp_path: Path) -> None:
    flow = tmp_path / "promptfooconfig.yaml"
    flow.write_text(DEFAULT_TEST_FORM)
    loaded = rtflow.load(flow)
    assert loaded.warnings == []  # nothing of it ignored
    result = rtflow.run(flow, sim=True, store=False)
    turns = result.turns
    # maxTurns 3 with a three-sentence persona: the third line is the last; the limit is no failure in promptfoo.
    assert [turn.dialogue.caller for turn in turns] == [
        "You are Mia.",
        "You want to fly from New York to Seattle on May 20.",
        "You prefer a direct flight.",
    ]
    assert turns[-1].dialogue.stop_reason == "max_turns" and turns[-1].status == "passed", turns[-1].assertions
    # The prompt is the agent's instructions: a system message ahead of the conversation, each turn.
    request = turns[-1].request_messages
    assert request[0].role == "system" and "airline customer service agent" in request[0].text
    assert [message.role for message in request[1:]] == ["user", "assistant", "user", "assistant", "user"]


def test_the_per_test_form_runs_unchanged_from_the_command_line(tmp_path: Path) -> None:
    flow = tmp_path / "promptfooconfig.yaml"
    flow.write_text(TEST_FORM)
    done = subprocess.run(
        [sys.executable, "-m", "rtflow", "run", str(flow), "--sim", "--no-progress", "--db", str(tmp_path / "db")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout  # two sentences, then the simulator's caller says ###STOP###
