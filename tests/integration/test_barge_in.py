"""Time inside the conversation, against the simulator with real-time audio: barge-in at a chosen moment, what
the caller heard, yield latency, and time to first audible audio.

The simulator is the witness: its event log has when it sent each audio delta and when the client's
`conversation.item.truncate` arrived (so how much audio a speaker had played), and what the next response was
answered from (`response.context`). Its word timeline is rebuilt here from the simulator's own word synthesis.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from audio_support import tone_wav

import rtflow
from rtflow.audio.formats import BYTES_PER_SECOND
from rtflow.sim import SimConfig
from rtflow.sim.audio import synthesize_word

QUESTION = "Tell me about the long and glorious history of the ancient city of Rome please"


def _flow(folder: Path, cuts: list[float]) -> Path:
    threads = {
        f"cut_{int(cut)}": [
            {"q": QUESTION},
            {"interrupt": {"after_ms": cut}},
            {"q": "Just the short version", "assert": [{"type": "equals", "value": "Sure."}]},
        ]
        for cut in cuts
    }
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "config": {"modalities": ["audio"]}}],
        "prompts": ["{{ q }}"],
        "threads": threads,
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _run(folder: Path, cuts: list[float], **voice: Any) -> tuple[rtflow.RunResult, list[dict[str, Any]]]:
    log = folder / "sim.jsonl"
    script = folder / "rules.yaml"  # a short answer after the barge-in: the tests need not hear it all
    script.write_text(yaml.safe_dump([{"match": "short version", "reply": "Sure."}]))
    config = SimConfig(log_path=log, script=script, voice={"realtime_audio": True, **voice})
    result = rtflow.run(_flow(folder, cuts), sim=config, store=False)
    return result, [json.loads(line) for line in log.read_text().splitlines()]


def _word_starts_ms(text: str, leading_silence_ms: float = 0.0) -> list[tuple[float, str]]:
    """Where each word of a simulator answer starts in its audio (pcm16), from the simulator's own synthesis."""
    starts: list[tuple[float, str]] = []
    at = leading_silence_ms
    for word in text.split(" "):
        starts.append((at, word))
        at += len(synthesize_word(word, "pcm16")) * 3 // 4 / BYTES_PER_SECOND["pcm16"] * 1000
    return starts


def _first_turns(result: rtflow.RunResult) -> dict[str, Any]:
    return {turn.thread_id: turn for turn in result.turns if turn.turn_index == 0}


@pytest.mark.parametrize("cuts", [[300.0, 600.0, 900.0]])
def test_barge_in_cuts_at_the_playback_clock_and_keeps_what_was_heard(tmp_path: Path, cuts: list[float]) -> None:
    result, log = _run(tmp_path, cuts)
    assert all(turn.status == "passed" for turn in result.turns), [(t.thread_id, t.error) for t in result.turns]
    first = _first_turns(result)
    for cut in cuts:
        turn = first[f"cut_{int(cut)}"]
        cut_item = turn.output.interruption
        assert cut_item is not None and cut_item.reason == "client_cancelled", turn.output.interruption
        # The simulator's view of the speaker: audio plays from its first delta; the truncate says where it was.
        truncate = next(
            e for e in log if e["dir"] == "in" and e["type"] == "conversation.item.truncate"
            and e["payload"]["item_id"] == cut_item.item_id
        )  # fmt: skip
        conn = truncate["conn"]
        first_audio = next(
            e for e in log if e["conn"] == conn and e["dir"] == "out" and e["type"] == "response.output_audio.delta"
        )
        played_ms = (truncate["ts"] - first_audio["ts"]) * 1000
        assert abs(truncate["payload"]["audio_end_ms"] - played_ms) <= 20, (truncate["payload"], played_ms)
        assert abs(cut_item.audio_end_ms - cut) <= 20
        # Heard: the words whose audio had started before the cut.
        full = next(
            e["payload"]["transcript"] for e in log
            if e["conn"] == conn and e["type"] == "response.output_audio_transcript.done"
        )  # fmt: skip
        heard = " ".join(word for start, word in _word_starts_ms(full) if start < cut_item.audio_end_ms)
        assert turn.output.heard_text == heard and heard and turn.output.text.startswith(heard)
        # The next answer was made from a history that holds the truncated item, as the live service keeps it.
        contexts = [e["payload"] for e in log if e["conn"] == conn and e["type"] == "response.context"]
        assert len(contexts) == 2
        assistant = [item for item in contexts[1]["items"] if item["role"] == "assistant"]
        assert [item["text"] for item in assistant] == [heard]


@pytest.mark.parametrize("delay_ms", [50.0, 300.0])
def test_yield_latency_is_the_servers_cancel_delay(tmp_path: Path, delay_ms: float) -> None:
    result, _ = _run(tmp_path, [600.0], cancel_delay_ms=delay_ms)
    (turn,) = _first_turns(result).values()
    metrics = turn.output.metrics
    assert metrics.yield_done_ms is not None and abs(metrics.yield_done_ms - delay_ms) <= 10, metrics
    # Audio keeps coming while the server has not stopped, never after: the last of it within one chunk.
    assert metrics.yield_ms is not None and metrics.yield_ms <= delay_ms + 10


@pytest.mark.parametrize("silence_ms", [0.0, 200.0, 500.0])
def test_time_to_first_audible_audio_counts_leading_silence(tmp_path: Path, silence_ms: float) -> None:
    result, _ = _run(tmp_path, [900.0], leading_silence_ms=silence_ms)
    (turn,) = _first_turns(result).values()
    metrics = turn.output.metrics
    assert metrics.ttfa_ms is not None and metrics.ttfb_ms is not None
    assert abs((metrics.ttfa_ms - metrics.ttfb_ms) - silence_ms) <= 10, metrics


def _steps_run(folder: Path, then: list[dict[str, Any]]) -> Any:
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "config": {"modalities": ["audio"]}}],
        "prompts": ["{{ q }}"],
        "threads": {"t": [{"q": "Hello there", "then": then}]},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    (turn,) = rtflow.run(path, sim=True, store=False).turns
    return turn


def test_silence_and_wait_for_steps_play_after_the_answer(tmp_path: Path) -> None:
    turn = _steps_run(tmp_path, [{"wait_for": "rate_limits.updated"}, {"silence": "300ms"}])
    assert turn.status == "passed", turn.assertions
    marks = [(mark.type, mark.source) for mark in turn.output.events]
    done = marks.index(("response.done", "server"))
    after = marks[done:]
    assert after.index(("rate_limits.updated", "server")) < after.index(("input_audio_buffer.append", "client"))
    assert after[-1] == ("input_audio_buffer.clear", "client")  # no VAD: the silence is no turn of its own


def test_a_wait_for_that_times_out_fails_the_turn_saying_so(tmp_path: Path) -> None:
    turn = _steps_run(tmp_path, [{"wait_for": {"event": "response.created", "timeout": "300ms"}}])
    assert turn.status == "failed"
    (step,) = [result for result in turn.assertions if result.type == "step"]
    assert "wait_for response.created: it did not come within 0.3 s" in step.reason


def test_server_vad_barge_in_the_caller_speaks_over_the_answer(tmp_path: Path) -> None:
    """Under server VAD the caller's clip is streamed over the answer: the server stops it (`turn_detected`),
    the item is cut where the caller stopped hearing it, and the next answer replies to the new audio."""
    clip = tone_wav(tmp_path / "stop.wav", 1.0, hz=440)
    document = {
        "providers": [
            {
                "id": "openai:realtime:gpt-realtime",
                "config": {
                    "modalities": ["audio"],
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
                    "input_audio_transcription": {"model": "whisper-1"},
                },
            }
        ],
        "prompts": ["{{ q }}"],
        "threads": {
            "vad": [
                {"q": QUESTION},
                {"interrupt": {"after_ms": 600}},
                {"q": "(the caller's clip)", "audio": str(clip)},
            ]
        },
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    log = tmp_path / "sim.jsonl"
    result = rtflow.run(flow, sim=SimConfig(log_path=log, voice={"realtime_audio": True}), store=False)
    first, second = sorted(result.turns, key=lambda turn: turn.turn_index)
    assert first.status == "passed" and second.status == "passed", (first.error, second.error)
    cut = first.output.interruption
    assert cut is not None and cut.reason == "turn_detected", cut
    # The caller stopped hearing the agent when the server heard the caller: a little after the cut.
    assert cut.audio_end_ms is not None and 600 <= cut.audio_end_ms <= 700, cut
    assert first.output.heard_text and first.output.text.startswith(first.output.heard_text)
    assert first.output.metrics.overlap_ms is not None and first.output.metrics.overlap_ms < 100
    events = [json.loads(line) for line in log.read_text().splitlines()]
    done = [e["payload"]["response"] for e in events if e["type"] == "response.done" and e["dir"] == "out"]
    assert [(r["status"], (r.get("status_details") or {}).get("reason")) for r in done][:1] == [
        ("cancelled", "turn_detected")
    ]
    assert "audio of" in second.output.text  # the simulator's reply to the clip it heard
    assert second.output.input_transcript and second.output.metrics.ttfa_ms is not None
