"""A mixed suite for the report's tests: two providers, several threads, failures by design, an error, a
fallback and a spoken turn, run against the simulator; and a second version of it whose verdicts differ.

The simulator echoes the question (`You said: "..."`), so an assertion that looks for a word the question
does not hold fails by design. Faults matched on words of a question make the rest: `BREAK` fails on every
provider (an `error` turn, then a `skipped` one); `DETOUR` fails on the Realtime provider only, so its Chat
fallback answers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

import rtflow
from rtflow import RunResult
from rtflow.sim import SimConfig, parse_fault

ROOT = Path(__file__).resolve().parents[2]
CLIP = ROOT / "flows" / "clips" / "q1.wav"
FAULTS = ("server_error@any;match=BREAK", "server_error@realtime;match=DETOUR")


def _turn(question: str, thread: str, *checks: str, **vars: str) -> dict[str, object]:
    return {
        "vars": {"question": question, **vars},
        "metadata": {"conversationId": thread},
        "assert": [{"type": "icontains", "value": check} for check in checks],
    }


def mixed_flow(fruit_check: str = "zanzibar", geography_check: str = "capital") -> dict[str, object]:
    """The suite; `fruit_check` and `geography_check` are the words its fruit and first geography turns must
    contain (the defaults: the fruit turn fails by design, the geography turn passes)."""
    return {
        "description": "Mixed suite for the report",
        "providers": [
            {
                "id": "openai:realtime:gpt-realtime",
                "label": "realtime",
                "config": {"modalities": ["text", "audio"], "instructions": "You are a helpful assistant."},
                "fallback": {"id": "openai:chat:gpt-4.1-mini", "label": "chat-fallback"},
            },
            {"id": "openai:chat:gpt-4.1-mini", "label": "chat"},
        ],
        "prompts": ["{{ question }}"],
        "tests": [
            _turn("What is the capital of France?", "geography", geography_check),
            _turn("And how many people live there?", "geography", "user messages: 2"),
            _turn("Name a purple fruit", "fruit", fruit_check),
            _turn("Spoken question", "voice", "audio of", audio="file://q1.wav", transcript="A spoken question"),
            _turn("Please BREAK now", "broken", "break"),
            _turn("After the break", "broken", "break"),
            _turn("Take the DETOUR please", "detour", "detour"),
            {
                **_turn("Describe a long river " + "in many words " * 40, "long", "river"),
                "assert": [{"type": "icontains", "value": "river"}, {"type": "not-icontains", "value": "as an ai"}],
            },
        ],
        "execution": {"retries": 0},
    }


def run_mixed(folder: Path, store: Path, name: str, **checks: str) -> RunResult:
    """Write the suite (with its clip) into `folder` as `name` and run it against the simulator."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(CLIP, folder / "q1.wav")
    flow = folder / name
    flow.write_text(yaml.safe_dump(mixed_flow(**checks), sort_keys=False), encoding="utf-8")
    config = SimConfig(faults=[parse_fault(spec) for spec in FAULTS])
    return rtflow.run(flow, sim=config, db=store)
