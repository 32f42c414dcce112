"""The simulator against recordings of live Realtime traffic: one test per difference that was found.

The exact cancel order (GA and beta) is
`test_voice.py::test_cancel_streams_for_the_delay_then_closes_in_the_live_order`; the error codes are
`test_protocol.py::test_invalid_events_keep_the_session`. Every event here is also validated against the official
types by the `simulator` fixture, live-only keys allowed only where `oracle.py` lists them.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rtflow.sim import SimServer

from .conftest import HEADERS, events_until, simulator

pytestmark = pytest.mark.anyio

BETA = {"OpenAI-Beta": "realtime=v1"}
ID = re.compile(r"^(?P<prefix>[a-z]+)_(?P<rest>[A-Za-z0-9]+)$")


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    script = tmp_path / "rules.yaml"
    script.write_text("- match: weather\n  call: {name: get_weather, arguments: {city: Oslo}}\n", encoding="utf-8")
    return script


@asynccontextmanager
async def opened(
    sim: SimServer, beta: bool = False, model: str = "gpt-realtime", **session: Any
) -> AsyncIterator[tuple[ClientConnection, list[dict[str, Any]]]]:
    """A session updated with `session` (text output unless given); yields the socket and the events so far."""
    headers = {**HEADERS, **(BETA if beta else {})}
    async with connect(f"{sim.ws_base_url}/realtime?model={model}", additional_headers=headers) as ws:
        seen = [json.loads(await ws.recv())]
        base = {"modalities": ["text"]} if beta else {"type": "realtime", "output_modalities": ["text"]}
        await ws.send(json.dumps({"type": "session.update", "session": {**base, **session}}))
        seen += await events_until(ws, "session.updated")
        yield ws, seen


async def turn(ws: ClientConnection, text: str) -> list[dict[str, Any]]:
    """A user message and a response, up to `rate_limits.updated`."""
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
    await ws.send(json.dumps({"type": "response.create"}))
    return await events_until(ws, "rate_limits.updated")


async def spoken_commit(ws: ClientConnection) -> list[dict[str, Any]]:
    """Half a second of audio committed by hand, up to its transcription's `completed`."""
    audio = base64.b64encode(b"\x10\x00" * 12000).decode()
    await ws.send(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
    await ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    return await events_until(ws, "conversation.item.input_audio_transcription.completed")


def transcription_session(beta: bool, model: str) -> dict[str, Any]:
    if beta:
        return {"input_audio_transcription": {"model": model}, "turn_detection": None}
    return {"audio": {"input": {"transcription": {"model": model}, "turn_detection": None}}}


# ---- 2. transcription usage by model ----------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [False, True])
@pytest.mark.parametrize("model", ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"])
async def test_transcription_usage_follows_the_transcription_model(beta: bool, model: str) -> None:
    """Token-billed models report `tokens` usage with input details; whisper-1 reports `duration` seconds."""
    async with simulator() as sim, opened(sim, beta, **transcription_session(beta, model)) as (ws, _):
        completed = (await spoken_commit(ws))[-1]
    usage = completed["usage"]
    if model == "whisper-1":
        assert usage == {"type": "duration", "seconds": 0.5}
        return
    assert usage["type"] == "tokens"
    assert set(usage) == {"type", "input_tokens", "output_tokens", "total_tokens", "input_token_details"}
    assert set(usage["input_token_details"]) == {"text_tokens", "audio_tokens"}
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert usage["input_token_details"]["audio_tokens"] > 0


# ---- 3. keys the live service sends -----------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [False, True])
async def test_obfuscation_on_ga_text_argument_and_transcription_deltas(rules: Path, beta: bool) -> None:
    """GA text, function-argument and input-transcription deltas carry a short random `obfuscation`; beta none."""
    async with (
        simulator(script=rules) as sim,
        opened(sim, beta, **transcription_session(beta, "whisper-1")) as (ws, _),
    ):
        events = await turn(ws, "hello there")
        events += await turn(ws, "weather in Oslo")
        events += await spoken_commit(ws)
    deltas = [e for e in events if e["type"].endswith(".delta")]
    kinds = {e["type"] for e in deltas}
    assert {"response.function_call_arguments.delta", "conversation.item.input_audio_transcription.delta"} <= kinds
    for delta in deltas:
        if beta:
            assert "obfuscation" not in delta
        else:
            assert re.fullmatch(r"[A-Za-z0-9]{1,16}", delta["obfuscation"]), delta


async def test_obfuscation_on_ga_transcript_deltas_not_audio() -> None:
    """A spoken GA answer: transcript deltas carry `obfuscation`, the audio deltas do not."""
    async with simulator() as sim, opened(sim, output_modalities=["audio"]) as (ws, _):
        events = await turn(ws, "say something")
    transcripts = [e for e in events if e["type"] == "response.output_audio_transcript.delta"]
    audio = [e for e in events if e["type"] == "response.output_audio.delta"]
    assert transcripts and audio
    assert all(e["obfuscation"] for e in transcripts)
    assert not any("obfuscation" in e for e in audio)


@pytest.mark.parametrize("model", ["gpt-realtime", "gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"])
async def test_phase_final_answer_only_on_newer_models(model: str) -> None:
    """gpt-realtime-2 and later mark the assistant message `phase: final_answer`; earlier models have no phase."""
    async with simulator() as sim, opened(sim, model=model) as (ws, _):
        events = await turn(ws, "hello")
    items = [e["item"] for e in events if "item" in e and e["item"].get("role") == "assistant"]
    items += [e["response"]["output"][0] for e in events if e["type"] == "response.done"]
    assert items
    expected = None if model == "gpt-realtime" else "final_answer"
    assert {item.get("phase") for item in items} == {expected}


async def test_reasoning_session_sends_commentary_then_final_answer(rules: Path) -> None:
    """A phased model with `reasoning: {effort}` streams a short commentary message, then the final answer (or
    call); reasoning tokens count in the usage. Without reasoning, or with a non-phased model, no commentary."""
    async with (
        simulator(script=rules) as sim,
        opened(sim, model="gpt-realtime-2", reasoning={"effort": "low"}) as (ws, seen),
    ):
        assert seen[-1]["session"]["reasoning"] == {"effort": "low"}
        events = await turn(ws, "hello")
        call_turn = await turn(ws, "weather please")
    added = [e["item"] for e in events if e["type"] == "response.output_item.added"]
    assert [(item["phase"], item["status"]) for item in added] == [
        ("commentary", "in_progress"),
        ("final_answer", "in_progress"),
    ]
    texts = [e["text"] for e in events if e["type"] == "response.output_text.done"]
    assert texts[0] == "Let me think about that." and texts[1].startswith('You said: "hello"')
    usage = next(e for e in events if e["type"] == "response.done")["response"]["usage"]
    assert usage["output_token_details"]["reasoning_tokens"] > 0
    call_items = [e["item"] for e in call_turn if e["type"] == "response.output_item.done"]
    assert [(item["type"], item.get("phase")) for item in call_items] == [
        ("message", "commentary"),
        ("function_call", None),
    ]


async def test_reasoning_tokens_in_ga_usage_and_cached_details_in_both() -> None:
    """GA usage has `output_token_details.reasoning_tokens`; both dialects have `image_tokens` and
    `cached_tokens_details` in `input_token_details`."""
    for beta in (False, True):
        async with simulator() as sim, opened(sim, beta) as (ws, _):
            events = await turn(ws, "hello")
        usage = next(e for e in events if e["type"] == "response.done")["response"]["usage"]
        details = usage["input_token_details"]
        assert details["image_tokens"] == 0
        assert details["cached_tokens_details"] == {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}
        assert ("reasoning_tokens" in usage["output_token_details"]) is not beta


async def test_ga_session_carries_the_live_keys() -> None:
    """GA `session.created`/`updated` carry `expires_at`, `include`, `prompt`, `truncation` and, under server_vad,
    `idle_timeout_ms`; values a client sets are echoed back."""
    prompt = {"id": "pmpt_123", "version": "2"}
    detection = {"type": "server_vad", "idle_timeout_ms": 6000}
    async with (
        simulator() as sim,
        opened(sim, prompt=prompt, truncation="disabled", audio={"input": {"turn_detection": detection}}) as (_, seen),
    ):
        created, updated = seen[0]["session"], seen[-1]["session"]
    for session in (created, updated):
        assert {"id", "object", "expires_at", "include", "prompt", "truncation"} <= set(session)
        assert session["expires_at"] > 1_700_000_000
    assert (created["include"], created["prompt"], created["truncation"]) == (None, None, "auto")
    assert created["audio"]["input"]["turn_detection"]["idle_timeout_ms"] is None
    assert (updated["prompt"], updated["truncation"]) == (prompt, "disabled")
    assert updated["audio"]["input"]["turn_detection"]["idle_timeout_ms"] == 6000


@pytest.mark.parametrize("beta", [False, True])
async def test_arguments_done_has_a_name_and_items_have_object_only_in_beta(rules: Path, beta: bool) -> None:
    """`response.function_call_arguments.done` names the function in both dialects; `object: realtime.item` is on
    beta items only (live GA items never have it)."""
    async with simulator(script=rules) as sim, opened(sim, beta) as (ws, _):
        events = await turn(ws, "weather in Oslo")
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert done["name"] == "get_weather"
    items = [e["item"] for e in events if "item" in e]
    items += next(e for e in events if e["type"] == "response.done")["response"]["output"]
    assert {item.get("object") for item in items} == ({"realtime.item"} if beta else {None})


# ---- 4. rate limits ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [False, True])
async def test_rate_limits_ga_tokens_only_beta_both(beta: bool) -> None:
    """GA `rate_limits.updated` has only the `tokens` entry; beta has `requests` and `tokens`."""
    async with simulator() as sim, opened(sim, beta) as (ws, _):
        limits = (await turn(ws, "hi"))[-1]["rate_limits"]
    assert [entry["name"] for entry in limits] == (["requests", "tokens"] if beta else ["tokens"])


# ---- 5. ids -----------------------------------------------------------------------------------------------------


async def test_ids_have_the_live_shape_and_repeat_with_the_seed(rules: Path) -> None:
    """Ids are a prefix and 21 base-62 characters (16 for `call_`), all distinct; the same seed repeats them."""

    async def run() -> list[dict[str, Any]]:
        async with simulator(script=rules) as sim, opened(sim) as (ws, seen):
            return seen + await turn(ws, "hello") + await turn(ws, "weather")

    first, second = await run(), await run()
    ids = []
    for event in first:
        ids.append(event["event_id"])
        for key in ("response_id", "item_id", "call_id"):
            if key in event:
                ids.append(event[key])
    ids.append(first[0]["session"]["id"])
    ids.append(next(e for e in first if e["type"] == "response.done")["response"]["conversation_id"])
    prefixes = set()
    for value in ids:
        found = ID.match(value)
        assert found is not None, value
        prefixes.add(found["prefix"])
        assert len(found["rest"]) == (16 if found["prefix"] == "call" else 21), value
    assert prefixes == {"event", "resp", "item", "call", "sess", "conv"}
    assert len({e["event_id"] for e in first}) == len(first)
    assert [e["event_id"] for e in first] == [e["event_id"] for e in second]


# ---- 6. refusals after the upgrade ------------------------------------------------------------------------------


async def refused(sim: SimServer, query: str, headers: dict[str, str]) -> tuple[dict[str, Any], int]:
    """The one event a refused socket gets, and its close code."""
    async with connect(f"{sim.ws_base_url}/realtime{query}", additional_headers=headers) as ws:
        event = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    return event, closed.value.rcvd.code


async def test_bad_key_and_missing_or_unknown_model_get_an_error_then_close_3000() -> None:
    """The upgrade succeeds, an `invalid_request_error` event follows (`invalid_api_key` / `model_not_found`),
    then close 3000; nothing else is sent."""
    async with simulator(require_key="sk-right", models=["gpt-realtime"]) as sim:
        cases = [
            ("?model=gpt-realtime", {"Authorization": "Bearer sk-wrong"}, "invalid_api_key"),
            ("?model=gpt-realtime", {}, "invalid_api_key"),
            ("", {"Authorization": "Bearer sk-right"}, "model_not_found"),
            ("?model=gpt-nope", {"Authorization": "Bearer sk-right"}, "model_not_found"),
        ]
        for query, headers, code in cases:
            event, close_code = await refused(sim, query, headers)
            assert event["type"] == "error" and close_code == 3000
            assert (event["error"]["type"], event["error"]["code"]) == ("invalid_request_error", code)
            assert "sk-wrong" not in event["error"]["message"]
        event, close_code = await refused(sim, "?model=gpt-nope", {"Authorization": "Bearer sk-right"})
        assert "`gpt-nope` does not exist" in event["error"]["message"]


async def test_refuse_beta_closes_4000_and_beta_still_works_by_default() -> None:
    """With `refuse_beta` a beta-shape socket gets `beta_api_shape_disabled` and close 4000; GA still works; by
    default beta works."""
    async with simulator(refuse_beta=True) as sim:
        event, close_code = await refused(sim, "?model=gpt-realtime", {**HEADERS, **BETA})
        assert (event["error"]["code"], close_code) == ("beta_api_shape_disabled", 4000)
        async with opened(sim) as (ws, _):
            assert (await turn(ws, "hi"))[-2]["response"]["status"] == "completed"
    async with simulator() as sim, opened(sim, beta=True) as (ws, _):
        assert (await turn(ws, "hi"))[-2]["response"]["status"] == "completed"
