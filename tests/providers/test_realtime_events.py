"""The exact client events rtflow sends, pinned for both dialects and checked against the official types."""

from __future__ import annotations

from typing import Any

import pytest
from realtime_oracle import validate_client_event

from rtflow.messages import ContentPart, Message
from rtflow.providers.realtime_events import EventBuilder, RealtimeConfig

WEATHER_TOOL_CHAT_STYLE: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}

FULL_CONFIG = RealtimeConfig.model_validate(
    {
        "modalities": ["text", "audio"],
        "instructions": "Be brief.",
        "voice": "alloy",
        "input_audio_format": "pcm16",
        "output_audio_format": "g711_ulaw",
        "inputAudioTranscription": {"model": "whisper-1"},
        "tools": [WEATHER_TOOL_CHAT_STYLE],
        "tool_choice": "auto",
        "max_response_output_tokens": "inf",
        "temperature": 0.7,
    }
)


def _conversation_events(dialect: str) -> list[dict[str, Any]]:
    builder = EventBuilder(dialect)  # type: ignore[arg-type]
    events = [builder.session_update(RealtimeConfig.model_validate({"instructions": "Be brief."}))]
    events += builder.message_items(Message.of("system", "You are a travel agent."))
    events += builder.message_items(Message.of("user", "Hi"))
    events += builder.message_items(Message.of("assistant", "Hello!"))
    events.append(builder.response_create())
    events.append(builder.function_output("call_1", '{"temp": 21}'))
    return events


def test_ga_text_conversation_golden() -> None:
    """A GA text session sends exactly these events, in this order, each with a fresh event_id."""
    assert _conversation_events("ga") == [
        {
            "type": "session.update",
            "event_id": "rtflow-1",
            "session": {
                "type": "realtime",
                "output_modalities": ["text"],
                "instructions": "Be brief.",
                "audio": {"input": {"turn_detection": None}},
            },
        },
        {
            "type": "conversation.item.create",
            "event_id": "rtflow-2",
            "item": {
                "type": "message",
                "role": "system",
                "content": [{"type": "input_text", "text": "You are a travel agent."}],
            },
        },
        {
            "type": "conversation.item.create",
            "event_id": "rtflow-3",
            "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Hi"}]},
        },
        {
            "type": "conversation.item.create",
            "event_id": "rtflow-4",
            "item": {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Hello!"}]},
        },
        {"type": "response.create", "event_id": "rtflow-5"},
        {
            "type": "conversation.item.create",
            "event_id": "rtflow-6",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": '{"temp": 21}'},
        },
    ]


def test_beta_text_conversation_golden() -> None:
    """A beta text session uses flat session keys and `text` assistant parts."""
    events = _conversation_events("beta")
    assert events[0] == {
        "type": "session.update",
        "event_id": "rtflow-1",
        "session": {"modalities": ["text"], "turn_detection": None, "instructions": "Be brief."},
    }
    assert events[3]["item"]["content"] == [{"type": "text", "text": "Hello!"}]
    assert [event["type"] for event in events] == [
        "session.update",
        "conversation.item.create",
        "conversation.item.create",
        "conversation.item.create",
        "response.create",
        "conversation.item.create",
    ]


def test_ga_full_session_update_golden() -> None:
    """Every GA session setting lands under its GA name; temperature is not sent."""
    event = EventBuilder("ga").session_update(FULL_CONFIG)
    assert event["session"] == {
        "type": "realtime",
        "output_modalities": ["audio"],
        "instructions": "Be brief.",
        "audio": {
            "input": {
                "turn_detection": None,
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": {"model": "whisper-1"},
            },
            "output": {"format": {"type": "audio/pcmu"}, "voice": "alloy"},
        },
        "tools": [
            {
                "type": "function",
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            }
        ],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
    }


def test_beta_full_session_update_golden() -> None:
    """Every beta session setting lands under its beta name, temperature included."""
    event = EventBuilder("beta").session_update(FULL_CONFIG)
    session = event["session"]
    assert session["modalities"] == ["text", "audio"]
    assert session["voice"] == "alloy"
    assert session["input_audio_format"] == "pcm16"
    assert session["output_audio_format"] == "g711_ulaw"
    assert session["input_audio_transcription"] == {"model": "whisper-1"}
    assert session["temperature"] == 0.7
    assert session["max_response_output_tokens"] == "inf"
    assert session["tools"][0]["name"] == "get_weather"
    assert "type" not in session


@pytest.mark.parametrize("dialect", ["ga", "beta"])
def test_every_event_validates_against_the_official_types(dialect: str) -> None:
    """Each built event is a valid client event of its dialect, with no key the official types lack."""
    builder = EventBuilder(dialect)  # type: ignore[arg-type]
    events = [builder.session_update(FULL_CONFIG)]
    for message in (Message.of("developer", "Rules."), Message.of("user", "Hi"), Message.of("assistant", "Hey")):
        events += builder.message_items(message)
    events.append(builder.response_create())
    audio_message = Message(role="user", content=[ContentPart(type="input_text", text="listen")])
    events += builder.message_items(audio_message)
    events += builder.audio_events([b"\x00\x01" * 100, b"\x02\x03" * 10])
    events.append(builder.function_output("call_9", "ok"))
    for event in events:
        validate_client_event(event, dialect)  # type: ignore[arg-type]
    assert len({event["event_id"] for event in events}) == len(events)


def test_dialect_oracle_rejects_the_other_shape() -> None:
    """The oracle is a dialect check: a GA session.update is not a valid beta one and vice versa."""
    ga_event = EventBuilder("ga").session_update(FULL_CONFIG)
    beta_event = EventBuilder("beta").session_update(FULL_CONFIG)
    with pytest.raises(AssertionError):
        validate_client_event(ga_event, "beta")
    with pytest.raises((AssertionError, ValueError)):
        validate_client_event(beta_event, "ga")


def test_audio_events_append_then_commit() -> None:
    """Audio goes out as base64 appends followed by exactly one commit."""
    events = EventBuilder("ga").audio_events([b"ab", b"cd"])
    assert [event["type"] for event in events] == [
        "input_audio_buffer.append",
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
    ]
    assert events[0]["audio"] == "YWI="
