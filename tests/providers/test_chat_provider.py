"""The Chat Completions provider against scripted HTTP responses (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ServerError,
    ToolError,
)
from rtflow.messages import Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.chat_wire import retry_after_seconds
from rtflow.providers.openai_chat import ChatProvider

SECRET = "sk-test-chat-SECRET-0123456789"
Handler = Callable[[httpx.Request], httpx.Response]


def _provider(handler: Handler, base_dir: Path | None = None, **config: Any) -> ChatProvider:
    info = ProviderInfo(
        id="openai:chat:gpt-4.1-mini",
        label="chat",
        config={"api_key": SECRET, "api_base_url": "http://127.0.0.1:9/v1", **config},
        base_dir=base_dir or Path.cwd(),
    )
    return ChatProvider(info, transport=httpx.MockTransport(handler))


def _request(*texts: str) -> TurnRequest:
    return TurnRequest(conversation_id="c1", turn_index=0, messages=[Message.of("user", text) for text in texts])


def _completion(content: str | None, tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-1",
        "model": "gpt-4.1-mini-2025-04-14",
        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


def _sse(*chunks: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(chunk).encode() + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


@pytest.mark.anyio
async def test_non_streaming_reply_usage_and_cost() -> None:
    """With stream off, the body's message, usage and a priced cost come back, and auth is a bearer header."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=_completion("Kyoto is lovely."))

    provider = _provider(handler, stream=False)
    output = await provider.session("c1").send(_request("Where to go?"))
    await provider.aclose()
    assert output.text == "Kyoto is lovely."
    assert output.usage.input_tokens == 10 and output.usage.output_tokens == 5
    assert output.cost == pytest.approx((10 * 0.40 + 5 * 1.60) / 1e6)
    assert seen[0].headers["authorization"] == f"Bearer {SECRET}"
    assert seen[0].headers["user-agent"].startswith("rtflow/")
    body = json.loads(seen[0].content)
    assert body["messages"] == [{"role": "user", "content": "Where to go?"}] and "stream" not in body


@pytest.mark.anyio
async def test_streaming_collects_deltas_usage_and_first_token_time() -> None:
    """A streamed reply is assembled from deltas; usage comes from the last chunk; time to first token is set."""

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
        stream = _sse(
            {"model": "gpt-4.1-mini", "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}}]},
            {"choices": [{"index": 0, "delta": {"content": "lo"}}]},
            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}},
        )
        return httpx.Response(200, content=stream, headers={"content-type": "text/event-stream"})

    provider = _provider(handler)
    output = await provider.session("c1").send(_request("Hi"))
    await provider.aclose()
    assert output.text == "Hello"
    assert output.usage.total_tokens == 5
    assert output.metrics.first_delta_ms is not None and output.metrics.total_ms is not None
    assert output.metrics.first_delta_ms <= output.metrics.total_ms


@pytest.mark.anyio
async def test_429_carries_retry_after_then_200_succeeds() -> None:
    """A 429 becomes a retryable RateLimitError with Retry-After; the same provider then answers normally."""
    responses = iter(
        [
            httpx.Response(429, headers={"Retry-After": "3"}, json={"error": {"message": "slow down"}}),
            httpx.Response(200, json=_completion("ok")),
        ]
    )
    provider = _provider(lambda request: next(responses), stream=False)
    session = provider.session("c1")
    with pytest.raises(RateLimitError) as caught:
        await session.send(_request("Hi"))
    assert caught.value.retryable and caught.value.retry_after == 3.0 and caught.value.status == 429
    assert "slow down" in str(caught.value)
    assert (await session.send(_request("Hi"))).text == "ok"
    await provider.aclose()


@pytest.mark.anyio
async def test_429_without_retry_after_uses_ratelimit_reset_headers() -> None:
    """Without Retry-After, the reset time of the exhausted x-ratelimit limit becomes retry_after."""
    headers = {
        "x-ratelimit-remaining-requests": "10",
        "x-ratelimit-reset-requests": "1s",
        "x-ratelimit-remaining-tokens": "0",
        "x-ratelimit-reset-tokens": "1m30s",
    }
    provider = _provider(lambda request: httpx.Response(429, headers=headers), stream=False)
    with pytest.raises(RateLimitError) as caught:
        await provider.session("c1").send(_request("Hi"))
    assert caught.value.retry_after == pytest.approx(90.0)
    assert provider.rate_limits["x-ratelimit-remaining-tokens"] == "0"
    await provider.aclose()


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "9s"}, 3.0),
        ({"Retry-After": "soon", "x-ratelimit-remaining-tokens": "0", "x-ratelimit-reset-tokens": "9s"}, 9.0),
        ({"x-ratelimit-reset-requests": "2s", "x-ratelimit-reset-tokens": "250ms"}, 2.0),
        ({"x-ratelimit-remaining-requests": "5", "x-ratelimit-reset-requests": "2s"}, None),
        ({}, None),
    ],
)
def test_429_wait_from_headers(headers: dict[str, str], expected: float | None) -> None:
    """Retry-After (in seconds) wins; else the longest reset of a budget whose remaining count is 0 or not sent."""
    assert retry_after_seconds(httpx.Response(429, headers=headers)) == expected


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
        (500, ServerError, True),
        (503, ServerError, True),
        (401, AuthenticationError, False),
        (403, AuthenticationError, False),
        (400, InvalidRequestError, False),
    ],
)
async def test_error_statuses_are_classified(status: int, error_type: type[ProviderError], retryable: bool) -> None:
    """HTTP error statuses map to the rtflow error of their kind, with the right retryability, streaming or not."""
    for stream in (True, False):
        provider = _provider(lambda request: httpx.Response(status, json={"error": {"message": "nope"}}), stream=stream)
        with pytest.raises(error_type) as caught:
            await provider.session("c1").send(_request("Hi"))
        assert caught.value.retryable is retryable and caught.value.status == status
        await provider.aclose()


@pytest.mark.anyio
async def test_malformed_json_is_a_protocol_error() -> None:
    """A 200 whose body is not JSON, or a stream chunk that is not, becomes a ProtocolError."""
    provider = _provider(lambda request: httpx.Response(200, content=b"<html>oops"), stream=False)
    with pytest.raises(ProtocolError):
        await provider.session("c1").send(_request("Hi"))
    await provider.aclose()
    streamed = _provider(lambda request: httpx.Response(200, content=b"data: {not json\n\n"))
    with pytest.raises(ProtocolError):
        await streamed.session("c1").send(_request("Hi"))
    await streamed.aclose()


@pytest.mark.anyio
async def test_transport_failure_is_a_connection_error() -> None:
    """A refused connection surfaces as a retryable ProviderConnectionError, never an httpx exception."""

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    provider = _provider(handler)
    with pytest.raises(ProviderConnectionError) as caught:
        await provider.session("c1").send(_request("Hi"))
    assert caught.value.retryable
    await provider.aclose()


def _tool_call(call_id: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}}


@pytest.mark.anyio
async def test_tool_loop_runs_handlers_and_sends_results(tools_dir: Path) -> None:
    """Tool calls run their handlers (sync, async, raising, missing) and the results go back as tool messages."""
    bodies: list[dict[str, Any]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        if len(bodies) == 1:
            calls = [
                _tool_call("c1", "get_weather", {"city": "Kyoto"}),
                _tool_call("c2", "async_lookup", {"query": "temples"}),
                _tool_call("c3", "explode", {}),
                _tool_call("c4", "unknown_tool", {}),
            ]
            return httpx.Response(200, json=_completion("Checking.", calls))
        return httpx.Response(200, json=_completion("It is 21 C in Kyoto."))

    handlers = {name: f"file://tools.py:{name}" for name in ("get_weather", "async_lookup", "explode")}
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    provider = _provider(handler, tools_dir, stream=False, function_handlers=handlers, tools=tools)
    output = await provider.session("c1").send(_request("Weather?"))
    await provider.aclose()
    assert output.text == "Checking.\nIt is 21 C in Kyoto."
    by_id = {call.call_id: call for call in output.tool_calls}
    assert json.loads(by_id["c1"].output or "") == {"city": "Kyoto", "temp_c": 21}
    assert by_id["c2"].output == "found temples"
    assert by_id["c3"].error is not None and "ValueError: the weather service is down" in by_id["c3"].error
    assert "Traceback" in by_id["c3"].error
    assert "no handler" in (by_id["c4"].error or "")
    assert output.usage.total_tokens == 30 and len(output.metrics.tool_rounds_ms) == 1
    follow_up = bodies[1]["messages"]
    assert follow_up[1]["tool_calls"][0]["id"] == "c1"
    assert [m["tool_call_id"] for m in follow_up[2:]] == ["c1", "c2", "c3", "c4"]
    assert bodies[0]["tools"] == [
        {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}
    ]


@pytest.mark.anyio
async def test_streamed_tool_call_arguments_are_assembled(tools_dir: Path) -> None:
    """Streamed tool-call fragments are joined by index and dispatched through function_call_handler."""
    calls = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal calls
        calls += 1
        if calls == 1:
            stream = _sse(
                {
                    "choices": [
                        {
                            "index": 0,
                            "delta": {
                                "tool_calls": [
                                    {"index": 0, "id": "t1", "function": {"name": "get_weather", "arguments": '{"ci'}}
                                ]
                            },
                        }
                    ]
                },
                {
                    "choices": [
                        {"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": 'ty": "Oslo"}'}}]}}
                    ]
                },
            )
        else:
            stream = _sse({"choices": [{"index": 0, "delta": {"content": "done"}}]})
        return httpx.Response(200, content=stream)

    provider = _provider(handler, tools_dir, function_call_handler="file://tools.py:dispatch")
    output = await provider.session("c1").send(_request("Weather?"))
    await provider.aclose()
    assert output.text == "done"
    assert json.loads(output.tool_calls[0].output or "") == {"dispatched": "get_weather", "args": {"city": "Oslo"}}


@pytest.mark.anyio
async def test_tool_iteration_cap_raises_tool_error(tools_dir: Path) -> None:
    """A model that never stops calling tools fails the turn with ToolError after max_tool_iterations rounds."""
    requests = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal requests
        requests += 1
        return httpx.Response(200, json=_completion(None, [_tool_call(f"c{requests}", "loop_forever", {})]))

    provider = _provider(
        handler,
        tools_dir,
        stream=False,
        max_tool_iterations=3,
        function_handlers={"loop_forever": "file://tools.py:loop_forever"},
    )
    with pytest.raises(ToolError, match="3 rounds"):
        await provider.session("c1").send(_request("Go"))
    assert requests == 4
    await provider.aclose()
