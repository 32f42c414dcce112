"""Image parts: both APIs' spellings read as one `input_image` part, `file://` images become data URLs when sent,
and each provider puts them on the wire in its own shape (GA `input_image`, Chat `image_url`)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from realtime_oracle import validate_client_event

from rtflow.errors import InvalidRequestError, PromptError
from rtflow.flow.prompts import messages_from
from rtflow.messages import ContentPart, Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.image_input import image_data_url, inline_images
from rtflow.providers.openai_chat import ChatProvider
from rtflow.providers.openai_realtime import RealtimeProvider
from rtflow.providers.realtime_events import EventBuilder
from rtflow.sim import SimConfig, SimServer

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + bytes(24)
"""A PNG signature and some bytes: what the file reader and the simulator look at."""
PNG_URL = "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()
JPEG_BYTES = b"\xff\xd8\xff\xe0" + bytes(24)


def user_message(*parts: dict[str, Any]) -> Message:
    return Message.model_validate({"role": "user", "content": [{"type": "input_text", "text": "what is this"}, *parts]})


# -- reading the two spellings -------------------------------------------------------------------------------


def test_chat_spelling_reads_as_the_realtime_part() -> None:
    """Chat's `{type: image_url, image_url: {url, detail}}` is the same part as `{type: input_image, ...}`."""
    chat = user_message({"type": "image_url", "image_url": {"url": PNG_URL, "detail": "low"}})
    realtime = user_message({"type": "input_image", "image_url": PNG_URL, "detail": "low"})
    assert chat == realtime
    assert chat.images == [ContentPart(type="input_image", image_url=PNG_URL, detail="low")]
    assert chat.text == "what is this"  # an image adds nothing to the message's text


def test_chat_spelling_with_a_bare_url() -> None:
    """A Chat part whose `image_url` is the URL itself (no object) is read too, without a detail."""
    message = user_message({"type": "image_url", "image_url": "https://example.com/cat.png"})
    assert message.images == [ContentPart(type="input_image", image_url="https://example.com/cat.png")]


@pytest.mark.parametrize(
    ("part", "problem"),
    [
        ({"type": "input_image"}, "needs image_url"),
        ({"type": "input_image", "image_url": "cat.png"}, "is not a data: URL, a file:// path"),
        ({"type": "input_image", "image_url": PNG_URL, "detail": "max"}, "expected 'auto', 'low' or 'high'"),
        ({"type": "image_url", "image_url": {"url": PNG_URL, "size": 3}}, "unknown key `image_url.size`"),
        ({"type": "input_text", "text": "x", "detail": "low"}, "belong to input_image parts; this part is input_text"),
    ],
)
def test_a_malformed_image_part_is_named_in_the_prompt_error(part: dict[str, Any], problem: str) -> None:
    """A bad image part fails the prompt with the validator's own words, not pydantic's union noise."""
    with pytest.raises(PromptError) as caught:
        messages_from([{"role": "user", "content": [part]}], "prompt file p.json")
    assert problem in caught.value.message
    assert "function-after" not in caught.value.message and "valid string" not in caught.value.message


def test_only_user_messages_hold_images() -> None:
    """An image in an assistant or system message is refused: both APIs take images as input only."""
    for role in ("assistant", "system"):
        with pytest.raises(ValidationError, match=f"belong to user messages; this message is {role}"):
            Message.model_validate({"role": role, "content": [{"type": "input_image", "image_url": PNG_URL}]})


# -- file:// images ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "media_type"), [(PNG_BYTES, "image/png"), (JPEG_BYTES, "image/jpeg")])
def test_a_file_image_becomes_a_data_url(tmp_path: Path, data: bytes, media_type: str) -> None:
    """A relative file:// path is read against the base folder; its first bytes decide PNG or JPEG."""
    (tmp_path / "pics").mkdir()
    (tmp_path / "pics" / "picture.bin").write_bytes(data)
    url = image_data_url("file://pics/picture.bin", tmp_path, "chat")
    assert url == f"data:{media_type};base64,{base64.b64encode(data).decode()}"


@pytest.mark.parametrize(
    ("name", "problem"),
    [("missing.png", "no such image file"), ("notes.png", "is not a PNG or JPEG image"), ("pics", "not a regular")],
)
def test_an_unusable_image_file_is_named(tmp_path: Path, name: str, problem: str) -> None:
    """A missing file, a file that is no PNG or JPEG, or a folder: an InvalidRequestError naming it."""
    (tmp_path / "notes.png").write_text("not a picture")
    (tmp_path / "pics").mkdir()
    with pytest.raises(InvalidRequestError) as caught:
        image_data_url(f"file://{name}", tmp_path, "chat")
    assert problem in caught.value.message and str(tmp_path / name) in caught.value.message
    assert caught.value.provider == "chat" and not caught.value.retryable


def test_inlining_leaves_other_parts_alone(tmp_path: Path) -> None:
    """Only file:// images are read; data URLs, web addresses and text stay as they were."""
    (tmp_path / "cat.png").write_bytes(PNG_BYTES)
    untouched = user_message({"type": "input_image", "image_url": PNG_URL})
    assert inline_images(untouched, tmp_path, "x") is untouched
    message = user_message(
        {"type": "input_image", "image_url": "file://cat.png", "detail": "high"},
        {"type": "input_image", "image_url": "https://example.com/dog.png"},
    )
    inlined = inline_images(message, tmp_path, "x")
    assert [(part.image_url, part.detail) for part in inlined.images] == [
        (PNG_URL, "high"),
        ("https://example.com/dog.png", None),
    ]
    assert message.images[0].image_url == "file://cat.png"  # the prompt's message keeps its path


# -- wire shapes ---------------------------------------------------------------------------------------------


def test_ga_item_carries_input_image_parts_in_order() -> None:
    """A GA user item holds the text and each image as written, `detail` only when given; the official types
    accept it."""
    message = user_message(
        {"type": "input_image", "image_url": PNG_URL, "detail": "low"}, {"type": "image_url", "image_url": PNG_URL}
    )
    (event,) = EventBuilder("ga").message_items(message)
    assert event["item"] == {
        "type": "message",
        "role": "user",
        "content": [
            {"type": "input_text", "text": "what is this"},
            {"type": "input_image", "image_url": PNG_URL, "detail": "low"},
            {"type": "input_image", "image_url": PNG_URL},
        ],
    }
    validate_client_event(event, "ga")


def _chat_provider(base_dir: Path, seen: list[dict[str, Any]]) -> ChatProvider:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        body = {
            "model": "gpt-4.1-mini",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "a cat"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 90, "completion_tokens": 2, "total_tokens": 92},
        }
        return httpx.Response(200, json=body)

    info = ProviderInfo(
        id="openai:chat:gpt-4.1-mini",
        label="chat",
        config={"api_key": "sk-test", "api_base_url": "http://127.0.0.1:9/v1", "stream": False},
        base_dir=base_dir,
    )
    return ChatProvider(info, transport=httpx.MockTransport(handler))


@pytest.mark.anyio
async def test_chat_sends_image_url_parts(tmp_path: Path) -> None:
    """Chat gets a user message with images as `text` and `image_url` parts (file read, detail kept); other
    messages stay plain strings."""
    (tmp_path / "cat.png").write_bytes(PNG_BYTES)
    seen: list[dict[str, Any]] = []
    provider = _chat_provider(tmp_path, seen)
    messages = [
        Message.of("system", "Describe pictures."),
        user_message({"type": "input_image", "image_url": "file://cat.png", "detail": "high"}),
    ]
    output = await provider.session("c").send(TurnRequest(conversation_id="c", turn_index=0, messages=messages))
    await provider.aclose()
    assert output.text == "a cat"
    assert seen[0]["messages"] == [
        {"role": "system", "content": "Describe pictures."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this"},
                {"type": "image_url", "image_url": {"url": PNG_URL, "detail": "high"}},
            ],
        },
    ]


@pytest.mark.anyio
async def test_chat_names_a_missing_image_file(tmp_path: Path) -> None:
    """A file:// image that is not there fails the turn before any request, naming the file."""
    seen: list[dict[str, Any]] = []
    provider = _chat_provider(tmp_path, seen)
    request = TurnRequest(
        conversation_id="c", turn_index=0, messages=[user_message({"type": "input_image", "image_url": "file://x.png"})]
    )
    with pytest.raises(InvalidRequestError, match="no such image file"):
        await provider.session("c").send(request)
    await provider.aclose()
    assert seen == []


# -- the Realtime provider against the simulator -------------------------------------------------------------


def _realtime(sim: SimServer, base_dir: Path, dialect: str = "ga") -> RealtimeProvider:
    info = ProviderInfo(
        id="openai:realtime:gpt-realtime",
        label="voice-agent",
        config={"api_base_url": sim.http_base_url, "api_key": "sk-sim", "dialect": dialect},
        base_dir=base_dir,
    )
    return RealtimeProvider(info)


@pytest.mark.anyio
async def test_realtime_sends_a_file_image_and_the_model_sees_it(tmp_path: Path) -> None:
    """A file:// image reaches the GA session as a data URL: the answer says an image was sent, and the input
    tokens hold its image tokens (765 at auto detail, beyond the same question without it)."""
    (tmp_path / "cat.png").write_bytes(PNG_BYTES)
    async with SimServer(SimConfig()) as sim:
        provider = _realtime(sim, tmp_path)
        with_image = user_message({"type": "input_image", "image_url": "file://cat.png"})
        outputs = []
        for index, message in enumerate([with_image, Message.of("user", "what is this")]):
            session = provider.session(f"c{index}")
            outputs.append(await session.send(TurnRequest(conversation_id="c", turn_index=0, messages=[message])))
            await session.aclose()
    seen, plain = outputs
    assert seen.text.endswith("and sent 1 image") and "image" not in plain.text
    assert seen.usage.input_tokens - plain.usage.input_tokens == 765


@pytest.mark.anyio
async def test_realtime_history_with_another_image_is_replayed(tmp_path: Path) -> None:
    """The held history is matched by its images too: the same image goes on the same socket, a different one
    (or another detail) in the earlier message opens a fresh session and replays the conversation."""
    (tmp_path / "a.png").write_bytes(PNG_BYTES)
    (tmp_path / "b.png").write_bytes(PNG_BYTES + b"b")
    first = user_message({"type": "input_image", "image_url": "file://a.png"})

    async def second_turn_connects(provider: RealtimeProvider, earlier: Message) -> bool:
        session = provider.session("c")
        answer = await session.send(TurnRequest(conversation_id="c", turn_index=0, messages=[first]))
        history = [earlier, Message.of("assistant", answer.text), Message.of("user", "and now?")]
        output = await session.send(TurnRequest(conversation_id="c", turn_index=1, messages=history))
        await session.aclose()
        return output.metrics.connect_ms is not None

    async with SimServer(SimConfig()) as sim:
        provider = _realtime(sim, tmp_path)
        same = await second_turn_connects(provider, first)
        other_image = await second_turn_connects(
            provider, user_message({"type": "input_image", "image_url": "file://b.png"})
        )
        other_detail = await second_turn_connects(
            provider, user_message({"type": "input_image", "image_url": "file://a.png", "detail": "low"})
        )
    assert not same  # the session held the conversation: only the new message was sent
    assert other_image and other_detail


@pytest.mark.anyio
async def test_beta_dialect_refuses_images_naming_the_provider(tmp_path: Path) -> None:
    """The beta shape has no image part: the turn fails with an InvalidRequestError naming the provider."""
    async with SimServer(SimConfig()) as sim:
        session = _realtime(sim, tmp_path, dialect="beta").session("c")
        request = TurnRequest(
            conversation_id="c", turn_index=0, messages=[user_message({"type": "input_image", "image_url": PNG_URL})]
        )
        with pytest.raises(InvalidRequestError) as caught:
            await session.send(request)
        await session.aclose()
    assert "'voice-agent' cannot send images" in caught.value.message and "dialect: ga" in caught.value.message
    assert caught.value.code == "image_not_supported"


@pytest.mark.anyio
async def test_realtime_refuses_a_web_address(tmp_path: Path) -> None:
    """The Realtime API takes data URLs only: an https image fails the turn, saying what to give instead."""
    async with SimServer(SimConfig()) as sim:
        session = _realtime(sim, tmp_path).session("c")
        message = user_message({"type": "input_image", "image_url": "https://example.com/cat.png"})
        with pytest.raises(InvalidRequestError, match="takes images as data URLs only"):
            await session.send(TurnRequest(conversation_id="c", turn_index=0, messages=[message]))
        await session.aclose()
