"""Whole runs with voice turns: flows/audio.yaml passes, and the Chat fallback gets words, never audio."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

import rtflow
from rtflow.sim import SimConfig
from rtflow.sim.config import parse_fault

ROOT = Path(__file__).resolve().parents[2]
CLIPS = ROOT / "flows" / "clips"


def test_audio_flow_passes_on_the_simulator(tmp_path: Path) -> None:
    """flows/audio.yaml: every turn passes on both providers, with reply audio and a transcript recorded."""
    result = rtflow.run(ROOT / "flows" / "audio.yaml", sim=True, db=tmp_path / "rtflow.db")
    assert result.passed and len(result.turns) == 6
    formats = {turn.provider: turn.output.audio.format for turn in result.turns if turn.output and turn.output.audio}
    assert formats == {"voice-pcm16": "wav", "phone-pcmu": "pcmu"}
    for turn in result.turns:
        assert turn.output is not None and turn.output.audio is not None
        assert turn.output.input_transcript is not None and turn.output.input_transcript in turn.output.text
        assert Path(turn.output.audio.playable_file).is_file()


def _write_flow(folder: Path, vars_extra: dict[str, Any], realtime_config: dict[str, Any]) -> Path:
    shutil.copy(CLIPS / "q1.wav", folder / "q1.wav")
    document = {
        "providers": [
            {
                "id": "openai:realtime:gpt-realtime",
                "label": "voice",
                "config": {"modalities": ["audio"], **realtime_config},
                "fallback": {"id": "openai:chat:gpt-4.1-mini", "label": "chat"},
            }
        ],
        "prompts": ["{{ question }}"],
        "tests": [{"vars": {"question": "What is the capital of France?", "audio": "file://q1.wav", **vars_extra}}],
        "execution": {"retries": 0},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _chat_requests(log: Path) -> list[dict[str, Any]]:
    entries = [json.loads(line) for line in log.read_text().splitlines()]
    return [entry["payload"] for entry in entries if entry["type"] == "chat.completions.request"]


@pytest.mark.parametrize(
    ("vars_extra", "realtime_config", "expected"),
    [
        ({}, {"input_audio_transcription": {"model": "whisper-1"}}, "audio of 1.50 seconds"),
        ({"transcript": "What is the capital of France, please?"}, {}, "What is the capital of France, please?"),
    ],
    ids=["heard-by-realtime", "from-vars"],
)
def test_chat_fallback_receives_the_transcript(
    tmp_path: Path, vars_extra: dict[str, Any], realtime_config: dict[str, Any], expected: str
) -> None:
    """When Realtime fails on a voice turn, Chat gets the transcript (heard, or vars.transcript) as the user's text."""
    log = tmp_path / "sim.jsonl"
    sim = SimConfig(faults=[parse_fault("server_error@realtime")], log_path=log)
    result = rtflow.run(_write_flow(tmp_path, vars_extra, realtime_config), sim=sim, db=tmp_path / "rtflow.db")
    (turn,) = result.turns
    assert turn.status == "passed" and turn.is_fallback and turn.provider == "chat"
    (request,) = _chat_requests(log)
    assert request["messages"][-1] == {"role": "user", "content": expected}
    assert turn.output is not None and f'"{expected}"' in turn.output.text


def test_chat_fallback_without_a_transcript_fails_naming_the_file(tmp_path: Path) -> None:
    """No transcript anywhere: the turn errors with the Chat provider's InvalidRequestError naming the clip."""
    log = tmp_path / "sim.jsonl"
    sim = SimConfig(faults=[parse_fault("server_error@realtime")], log_path=log)
    result = rtflow.run(_write_flow(tmp_path, {}, {}), sim=sim, db=tmp_path / "rtflow.db")
    (turn,) = result.turns
    assert turn.status == "error" and turn.error is not None
    assert turn.error.kind == "invalid_request" and turn.error.code == "audio_not_supported"
    assert "cannot take audio" in turn.error.message and "q1.wav" in turn.error.message
    assert _chat_requests(log) == []  # nothing was sent to Chat
