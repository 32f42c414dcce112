"""Client events of the Realtime protocol, in the GA shape (default) or the beta shape.

Everything the Realtime provider sends is built here, so the two dialects differ in one place and the exact
frames can be pinned by tests against the official `openai` event types. Every event carries an `event_id`
(`rtflow-<n>`, counted per connection) so an `error` event can be tied to what caused it.

System messages become `system` conversation items (not session instructions): config `instructions` is the
only session-level text, so both reach the model, a replayed history reproduces the same state, and the
held/requested comparison of messages needs no special case for the first message.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any, Literal

from pydantic import AliasChoices, Field, field_validator

from rtflow.durations import Duration
from rtflow.messages import AUDIO_PART_TYPES, TEXT_PART_TYPES, ContentPart, Message
from rtflow.providers.config import CommonConfig
from rtflow.providers.realtime_mcp import APPROVE, DENY
from rtflow.providers.tools import native_tools

__all__ = ["Dialect", "EventBuilder", "RealtimeConfig", "idle_timeout_sent"]

Dialect = Literal["ga", "beta"]
AudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]

_GA_FORMATS: dict[str, dict[str, Any]] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}


class RealtimeConfig(CommonConfig):
    """Config keys of `openai:realtime:MODEL`."""

    dialect: Dialect = "ga"
    """`ga` (the current protocol) or `beta` (`OpenAI-Beta: realtime=v1`, older gateways)."""
    modalities: list[Literal["text", "audio"]] = Field(default_factory=lambda: list[Literal["text", "audio"]](["text"]))
    """Output modalities. GA takes exactly one; `[text, audio]` means audio (which carries a transcript)."""
    instructions: str | None = None
    """Session instructions (the system prompt); system messages of the prompt are sent as items as well."""
    voice: str | dict[str, Any] | None = None
    """Output voice (`alloy`, `marin`, ...), or a custom voice `{id: voice_...}` (GA sessions)."""
    speed: float | None = Field(default=None, ge=0.25, le=1.5)
    """How fast the answer is spoken (GA `audio.output.speed`)."""
    noise_reduction: dict[str, Any] | None = None
    """Input noise reduction, `{type: near_field}` or `{type: far_field}` (GA `audio.input.noise_reduction`)."""
    truncation: str | dict[str, Any] | None = None
    """How the server trims a long conversation: `auto`, `disabled`, or `{type: retention_ratio, ...}` (GA)."""
    prompt: dict[str, Any] | None = None
    """A stored prompt: `{id, version, variables}` (GA); its instructions and tools come from the platform."""
    include: list[str] | None = None
    """Extra fields the server adds to its events, e.g. `item.input_audio_transcription.logprobs` (GA)."""
    input_audio_format: AudioFormat | None = None
    """Format of input audio (`pcm16` by default)."""
    output_audio_format: AudioFormat | None = None
    """Format of output audio (`pcm16` by default)."""
    input_audio_transcription: dict[str, Any] | None = None
    """Transcription of input audio, e.g. `{model: whisper-1}`."""
    turn_detection: dict[str, Any] | None = None
    """Server VAD settings; by default none, so rtflow commits audio and asks for each response itself."""
    idle_timeout_ms: int | None = Field(default=None, ge=1)
    """With `server_vad` turn detection (GA): how long the caller may stay silent after an answer before the server
    prompts them to go on (sent as `audio.input.turn_detection.idle_timeout_ms`). A turn during which it fires is
    marked `idle_timeout` on its `input_audio_buffer.timeout_triggered` event, and the prompt is kept out of the
    answer."""
    audio_chunk_ms: int = Field(default=1000, ge=10, le=60_000)
    """Milliseconds of input audio per `input_audio_buffer.append` event."""
    realtime_pacing: bool = False
    """Send input audio no faster than it plays, chunk by chunk, like a live microphone."""
    max_output_tokens: int | Literal["inf"] | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "max_output_tokens", "maxOutputTokens", "max_response_output_tokens", "maxResponseOutputTokens"
        ),
    )
    """Cap on tokens per response (an integer or `inf`)."""
    playback: Literal["realtime", "unpaced"] = "realtime"
    """How the caller hears spoken answers: `realtime` plays them at their rate from the first delta (what was
    heard at a barge-in, time to first audible audio, and the caller waits for the agent to finish before the
    next turn); `unpaced` counts audio as heard once it arrives, for runs where time does not matter."""
    maintain_context: bool = True
    """promptfoo's `maintainContext`: false answers every turn on a fresh session with only the turn's own prompt
    messages (a prompt that carries the history itself, from `_conversation`, still gets it)."""
    parallel_tool_calls: bool | None = None
    """Whether the model may call several tools in one response (GA sessions)."""
    reasoning: dict[str, Any] | None = None
    """Reasoning settings of reasoning models, e.g. `{effort: low}` (GA sessions)."""
    websocket_timeout: Duration = 60.0
    """Longest wait for the next server event before the turn fails (duration; promptfoo's websocketTimeout)."""
    connect_timeout: Duration = 15.0
    """Longest wait for the handshake and `session.created` (duration)."""
    azure: bool | None = None
    """Force Azure authentication (`api-key` header); by default detected from the host name."""
    api_version: str | None = None
    """Azure preview API version; selects the `/openai/realtime?api-version=&deployment=` URL form."""
    deployment: str | None = None
    """Azure deployment name (defaults to the model)."""
    mcp_approval: str = APPROVE
    """Who answers the server's approval requests for MCP tools (`require_approval`): `approve` (the default, so
    the tools a flow offers run), `deny`, or a function `file://handlers.py:decide` that gets `{server_label, name,
    arguments}` and returns true to approve. Each decision is the `approved` of the call's tool-call record."""

    @field_validator("mcp_approval")
    @classmethod
    def _approval_policy(cls, value: str) -> str:
        if value in (APPROVE, DENY) or value.startswith("file://"):
            return value
        raise ValueError(f"expected {APPROVE}, {DENY} or a handler file://handlers.py:decide, not {value[:40]!r}")


def idle_timeout_sent(config: RealtimeConfig) -> bool:
    """Whether the session carries the flow's `idle_timeout_ms`: only a GA session's server VAD can take it."""
    detection = config.turn_detection or {}
    return config.idle_timeout_ms is not None and config.dialect == "ga" and detection.get("type") == "server_vad"


def _ga_turn_detection(config: RealtimeConfig) -> dict[str, Any] | None:
    """The GA session's turn detection: the flow's, with `idle_timeout_ms` in it when server VAD can take it."""
    detection = config.turn_detection
    if not detection or not idle_timeout_sent(config):
        return detection
    return {**detection, "idle_timeout_ms": config.idle_timeout_ms}


class EventBuilder:
    """Builds one connection's client events in one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._ids = itertools.count(1)
        self._approvals = itertools.count(1)

    def _event(self, event_type: str, **body: Any) -> dict[str, Any]:
        return {"type": event_type, "event_id": f"rtflow-{next(self._ids)}", **body}

    def session_update(self, config: RealtimeConfig) -> dict[str, Any]:
        """`session.update` carrying the flow's session settings."""
        session = self._ga_session(config) if self.dialect == "ga" else self._beta_session(config)
        return self._event("session.update", session=session)

    def _ga_session(self, config: RealtimeConfig) -> dict[str, Any]:
        session: dict[str, Any] = {
            "type": "realtime",
            "output_modalities": ["audio"] if "audio" in config.modalities else ["text"],
        }
        if config.instructions is not None:
            session["instructions"] = config.instructions
        audio_input: dict[str, Any] = {"turn_detection": _ga_turn_detection(config)}
        if config.input_audio_format:
            audio_input["format"] = _GA_FORMATS[config.input_audio_format]
        if config.input_audio_transcription is not None:
            audio_input["transcription"] = config.input_audio_transcription
        if config.noise_reduction is not None:
            audio_input["noise_reduction"] = config.noise_reduction
        audio_output: dict[str, Any] = {}
        if config.output_audio_format:
            audio_output["format"] = _GA_FORMATS[config.output_audio_format]
        if config.voice:
            audio_output["voice"] = config.voice
        if config.speed is not None:
            audio_output["speed"] = config.speed
        session["audio"] = {"input": audio_input, **({"output": audio_output} if audio_output else {})}
        if config.tools:
            session["tools"] = native_tools(config.tools)
        if config.tool_choice is not None:
            session["tool_choice"] = _ga_tool_choice(config.tool_choice)
        if config.max_output_tokens is not None:
            session["max_output_tokens"] = config.max_output_tokens
        if config.parallel_tool_calls is not None:
            session["parallel_tool_calls"] = config.parallel_tool_calls
        if config.reasoning is not None:
            session["reasoning"] = config.reasoning
        for key in ("truncation", "prompt", "include"):
            value = getattr(config, key)
            if value is not None:
                session[key] = value
        return session

    def _beta_session(self, config: RealtimeConfig) -> dict[str, Any]:
        modalities = ["text", "audio"] if "audio" in config.modalities else ["text"]
        session: dict[str, Any] = {"modalities": modalities, "turn_detection": config.turn_detection}
        if config.instructions is not None:
            session["instructions"] = config.instructions
        if isinstance(config.voice, str) and config.voice:  # a custom voice ({id}) is GA only: warned at load
            session["voice"] = config.voice
        if config.input_audio_format:
            session["input_audio_format"] = config.input_audio_format
        if config.output_audio_format:
            session["output_audio_format"] = config.output_audio_format
        if config.input_audio_transcription is not None:
            session["input_audio_transcription"] = config.input_audio_transcription
        if config.tools:
            session["tools"] = native_tools(config.tools)
        if config.tool_choice is not None:
            choice = config.tool_choice
            # Beta takes a bare string: a mode, or the name of the one function to call.
            named = _ga_tool_choice(choice)
            session["tool_choice"] = named if isinstance(named, str) else str(named.get("name"))
        if config.temperature is not None:
            session["temperature"] = config.temperature
        if config.max_output_tokens is not None:
            session["max_response_output_tokens"] = config.max_output_tokens
        return session

    def message_items(self, message: Message) -> list[dict[str, Any]]:
        """`conversation.item.create` events for a message's text and images (audio parts are streamed by
        `realtime_voice`). Images must be data URLs by now (`image_input.inline_images`); only GA takes them."""
        role = "system" if message.role in ("system", "developer") else message.role
        assistant_part = "output_text" if self.dialect == "ga" else "text"
        text_type = assistant_part if role == "assistant" else "input_text"
        if isinstance(message.content, str):
            content = [{"type": text_type, "text": message.content}]
        else:
            content = [_wire_part(part, text_type) for part in message.content if part.type in _SENT_PART_TYPES]
            content += [
                {"type": text_type, "text": part.transcript}
                for part in message.content
                if part.type in AUDIO_PART_TYPES and part.transcript and role == "assistant"
            ]
        if not content:
            return []
        return [self._event("conversation.item.create", item={"type": "message", "role": role, "content": content})]

    def audio_append(self, piece: bytes) -> dict[str, Any]:
        """One chunk of input audio, in the session's input format."""
        return self._event("input_audio_buffer.append", audio=base64.b64encode(piece).decode("ascii"))

    def audio_commit(self) -> dict[str, Any]:
        """Make the appended audio a user message (when the server's turn detection does not)."""
        return self._event("input_audio_buffer.commit")

    def audio_clear(self) -> dict[str, Any]:
        """Drop audio appended but not committed (left over after a server VAD commit)."""
        return self._event("input_audio_buffer.clear")

    def audio_events(self, chunks: list[bytes]) -> list[dict[str, Any]]:
        """`input_audio_buffer.append` per chunk, then one `input_audio_buffer.commit`."""
        return [*(self.audio_append(piece) for piece in chunks), self.audio_commit()]

    def mcp_approval(self, request_id: str, approve: bool) -> dict[str, Any]:
        """The client's answer to an MCP approval request (the item needs an id of the client's making)."""
        item = {
            "type": "mcp_approval_response",
            "id": f"mcpr_rtflow_{next(self._approvals)}",
            "approval_request_id": request_id,
            "approve": approve,
        }
        return self._event("conversation.item.create", item=item)

    def function_output(self, call_id: str, output: str) -> dict[str, Any]:
        """A tool's result for the model."""
        return self._event(
            "conversation.item.create", item={"type": "function_call_output", "call_id": call_id, "output": output}
        )

    def response_create(self) -> dict[str, Any]:
        """Ask for a response with the session's settings."""
        return self._event("response.create")

    def response_cancel(self) -> dict[str, Any]:
        """Stop the response in progress (the caller barged in)."""
        return self._event("response.cancel")

    def item_truncate(self, item_id: str, audio_end_ms: int) -> dict[str, Any]:
        """Cut an assistant item's audio (and the server's transcript of it) at what the caller heard."""
        return self._event("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=audio_end_ms)


_SENT_PART_TYPES = TEXT_PART_TYPES | {"input_image"}
"""Parts that go into a message item (audio parts are streamed into the input buffer instead)."""


def _wire_part(part: ContentPart, text_type: str) -> dict[str, Any]:
    """A text part as `text_type`, or an image as GA's `input_image` part."""
    if part.type != "input_image":
        return {"type": text_type, "text": part.text or ""}
    image: dict[str, Any] = {"type": "input_image", "image_url": part.image_url}
    if part.detail is not None:
        image["detail"] = part.detail
    return image


def _ga_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, str):
        return choice
    function = choice.get("function")
    if isinstance(function, dict):  # chat form {type: function, function: {name}}
        return {"type": "function", "name": function.get("name")}
    return choice
