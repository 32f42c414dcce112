"""The API key never reaches an error message or a log line, whatever fails."""

from __future__ import annotations

import logging

import httpx
import pytest

from rtflow.errors import ProviderError
from rtflow.log import capture_events
from rtflow.messages import Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_chat import ChatProvider
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.sim import Fault, SimConfig, SimServer

CANARY = "sk-CANARY-7f3a9c1e5b2d4f60"


def _request(text: str) -> TurnRequest:
    return TurnRequest(conversation_id="secret", turn_index=0, messages=[Message.of("user", text)])


@pytest.mark.anyio
async def test_key_absent_from_errors_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    """Successful turns, refused handshakes, failed responses and HTTP errors never show the key."""
    caplog.set_level(logging.DEBUG)  # websockets logs handshake headers at debug level
    faults = [
        Fault(kind="status", endpoint="realtime", status=403, match=None, times=1),
        Fault(kind="server_error", endpoint="realtime", match="fail", times=1),
        Fault(kind="status", endpoint="chat", status=401, times=1),
        Fault(kind="status", endpoint="chat", status=429, times=1),
    ]
    messages: list[str] = []
    with capture_events() as structured:
        async with SimServer(SimConfig(faults=faults)) as sim:
            for dialect in ("ga", "beta"):
                info = ProviderInfo(
                    id="openai:realtime:gpt-realtime",
                    label="realtime",
                    config={"api_base_url": sim.http_base_url, "api_key": CANARY, "dialect": dialect},
                )
                provider = RealtimeProvider(info)
                for text in ("hello", "fail now", "hello again"):
                    session = provider.session(text)
                    try:
                        await session.send(_request(text))
                    except ProviderError as exc:
                        messages.append(str(exc))
                    finally:
                        await session.aclose()
            chat = ChatProvider(
                ProviderInfo(
                    id="openai:chat:gpt-4.1-mini",
                    label="chat",
                    config={"api_base_url": sim.http_base_url, "api_key": CANARY},
                )
            )
            for text in ("one", "two", "three"):
                try:
                    await chat.session("c").send(_request(text))
                except ProviderError as exc:
                    messages.append(str(exc))
            await chat.aclose()
    assert len(messages) >= 3, messages  # 403, server_error, 401, 429 were all exercised
    assert any("Authorization" in record.getMessage() for record in caplog.records)  # headers were logged
    assert any(event["event"] == "realtime.connect" for event in structured)
    for text in [*messages, caplog.text, *(str(event) for event in structured)]:
        assert CANARY not in text


@pytest.mark.anyio
async def test_echoed_key_in_a_body_is_redacted() -> None:
    """A server that echoes the key in its error body does not get it into the error message."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": {"message": f"Incorrect API key provided: {CANARY}"}})

    chat = ChatProvider(
        ProviderInfo(id="openai:chat:gpt-4.1", label="chat", config={"api_key": CANARY, "stream": False}),
        transport=httpx.MockTransport(handler),
    )
    with pytest.raises(ProviderError) as caught:
        await chat.session("c").send(_request("hi"))
    await chat.aclose()
    assert CANARY not in str(caught.value) and "Incorrect API key provided: ***" in str(caught.value)
