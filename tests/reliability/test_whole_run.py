"""Whole `rtflow run` processes against the hostile server: the run goes on, exits with its code, in time.

The per-item tests beside this file drive one provider turn; these run the CLI as a user would (a subprocess,
the key in the environment) against a server that misbehaves on some turns, and check what the user sees: the
exit code, no traceback, the other turns answered, the bad turn's status and error kind in the run's export,
what `rtflow show` prints, and the key nowhere.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from websockets.exceptions import ConnectionClosed

from .conftest import CANARY, Peer, answer, error_event, response_created, response_done, running

pytestmark = pytest.mark.anyio

CLIPS = Path(__file__).resolve().parents[2] / "flows" / "clips"
PROCESS_DEADLINE = 60.0
"""Seconds within which the whole process must end; the flows' own timeouts are a few seconds."""

Misbehaviour = Callable[[Peer], Awaitable[None]]


async def _serve_turns(peer: Peer, bad: Misbehaviour) -> None:
    """Answer each turn "fine"; a turn whose user text holds BAD, or any voice turn, gets `bad` instead."""
    await peer.send({"type": "session.created", "event_id": "event_s1", "session": {"id": "sess_1"}})
    said = ""
    turn = 0
    while True:
        event = json.loads(await peer.connection.recv())
        kind = event.get("type")
        if kind == "conversation.item.create":
            content = event["item"].get("content") or [{}]
            said = str(content[0].get("text", ""))
        elif kind == "input_audio_buffer.append" and said != "<voice>":
            said = "<voice>"
            await bad(peer)
        elif kind == "response.create":
            turn += 1
            if "BAD" in said:
                await bad(peer)
            else:
                await peer.send(*answer(f"resp_{turn}", "fine"))


async def _run_cli(flow: Path, tmp_path: Path, *extra: str) -> tuple[int, str, str, float]:
    env = {**os.environ, "OPENAI_API_KEY": CANARY, "NO_COLOR": "1"}
    env.pop("OPENAI_BASE_URL", None)
    command = [sys.executable, "-m", "rtflow", "run", str(flow), "--db", str(tmp_path / "runs.db"), *extra]
    started = time.monotonic()
    with anyio.fail_after(PROCESS_DEADLINE):
        done = await anyio.run_process(command, cwd=tmp_path, env=env, check=False)
    return done.returncode, done.stdout.decode(), done.stderr.decode(), time.monotonic() - started


def _flow(tmp_path: Path, base_url: str, *, voice: bool = False) -> Path:
    config: dict[str, Any] = {"api_base_url": base_url, "websocket_timeout": "2s", "connect_timeout": "2s"}
    tests: list[dict[str, Any]] = [
        {
            "vars": {"question": "hello"},
            "metadata": {"conversationId": "good"},
            "assert": [{"type": "equals", "value": "fine"}],
        },
    ]
    if voice:
        config |= {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}, "audio_chunk_ms": 100}
        tests.append(
            {
                "vars": {"question": "spoken", "audio": f"file://{CLIPS / 'q1.wav'}"},
                "metadata": {"conversationId": "bad"},
            }
        )
    else:
        tests.append({"vars": {"question": "BAD one"}, "metadata": {"conversationId": "bad"}})
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "hostile", "config": config}],
        "prompts": ["{{ question }}"],
        "tests": tests,
        "execution": {"retries": 1, "timeout": "5s", "backoff_base": "0ms", "backoff_max": "0ms"},
    }
    path = tmp_path / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


async def _listen(peer: Peer) -> None:
    with anyio.move_on_after(10):
        try:
            while True:
                await peer.connection.recv()
        except ConnectionClosed:
            pass


async def _wrong_types(peer: Peer) -> None:
    *streamed, done = answer("resp_x", "odd but readable")
    done["response"]["usage"] = {"input_tokens": "12", "output_tokens": 3, "input_token_details": "x"}
    await peer.send(*streamed, done)


async def _vad_response_fails(peer: Peer) -> None:
    details = {"type": "failed", "error": {"type": "server_error", "message": "the model broke"}}
    await peer.send(response_created("resp_v"), response_done("resp_v", status="failed", status_details=details))
    await _listen(peer)


async def _echo_the_key(peer: Peer) -> None:
    await peer.send(error_event(f"Incorrect API key provided: {CANARY}.", code="invalid_api_key"))
    await peer.close(3000, f"invalid_api_key {CANARY}")


def _turns(tmp_path: Path) -> dict[str, dict[str, Any]]:
    exported = json.loads((tmp_path / "out.json").read_text())
    return {turn["thread_id"]: turn for turn in exported["turns"]}


def _everything_written(tmp_path: Path, stdout: str, stderr: str) -> str:
    stored = b"".join(path.read_bytes() for path in tmp_path.rglob("*") if path.is_file())
    return stdout + stderr + stored.decode("utf-8", "replace")


@pytest.mark.parametrize(
    ("name", "misbehaviour", "voice", "status", "kind"),
    [
        ("item 1: fields of the wrong type", _wrong_types, False, "passed", None),
        ("item 4: a server-VAD response that fails", _vad_response_fails, True, "error", "response_failed"),
        ("item 5/6: a key echoed in an error and a close", _echo_the_key, False, "error", "authentication"),
    ],
)
async def test_a_run_against_a_hostile_server_ends_with_every_turn_stored(
    name: str, misbehaviour: Misbehaviour, voice: bool, status: str, kind: str | None, tmp_path: Path
) -> None:
    async with running(lambda peer: _serve_turns(peer, misbehaviour)) as server:
        flow = _flow(tmp_path, server.base_url, voice=voice)
        code, stdout, stderr, seconds = await _run_cli(flow, tmp_path, "-o", "out.json")
    assert "Traceback" not in stderr, stderr
    assert seconds < PROCESS_DEADLINE
    assert code == (0 if status == "passed" else 1), (code, stdout, stderr)
    turns = _turns(tmp_path)
    assert turns["good"]["status"] == "passed", turns["good"]
    bad = turns["bad"]
    assert bad["status"] == status, bad
    if kind is None:
        assert any("usage" in warning for warning in bad["output"]["protocol_warnings"]), bad["output"]
    else:
        assert bad["error"]["kind"] == kind, bad["error"]
        retryable = bad["error"]["retryable"]
        assert bad["attempts"] == (2 if retryable else 1), bad
    assert CANARY not in _everything_written(tmp_path, stdout, stderr)


async def test_show_prints_the_protocol_warnings_of_a_turn(tmp_path: Path) -> None:
    async with running(lambda peer: _serve_turns(peer, _wrong_types)) as server:
        flow = _flow(tmp_path, server.base_url)
        await _run_cli(flow, tmp_path)
    shown = await anyio.run_process(
        [sys.executable, "-m", "rtflow", "show", "latest", "--db", str(tmp_path / "runs.db")], check=False
    )
    text = shown.stdout.decode()
    assert shown.returncode == 0, shown.stderr.decode()
    assert "protocol warning:" in text and "usage" in text, text
