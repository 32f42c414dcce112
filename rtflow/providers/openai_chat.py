"""`openai:chat:MODEL`: Chat Completions over one pooled `httpx.AsyncClient` per provider.

Chat is stateless: every turn sends the whole conversation. Realtime-style content parts are converted to
chat messages (text parts joined); a user message with images is sent as Chat content parts (`text` and
`image_url`), a `file://` image read into a data URL (see `image_input`). Chat takes no audio: an audio part
is sent as its transcript, and a voice turn (`vars.audio`, or an `input_audio` part) as `vars.transcript` or
the transcription a failed Realtime attempt received; with neither the turn fails with an InvalidRequestError
naming the audio file. Tools use the same handlers as the Realtime provider. Streaming (on by default) measures
the time to the first token; usage comes from the final chunk (`stream_options.include_usage`).

Every httpx exception is translated into `rtflow.errors` by `endpoints.translated_http_errors`; HTTP error
statuses are classified in `chat_wire.status_error` (429 with `Retry-After` or the `x-ratelimit-reset-*`
headers, 401/403, 5xx). Redirects are followed only within the endpoint's origin (scheme, host and port): one to
another origin is refused before the request, and its auth header, reach it. Waits a server asks for are capped by
`max_retry_after`; fields of the wrong type in a reply are skipped and kept as the turn's protocol warnings
(`ChatSession.protocol_warnings`, logged as `chat.protocol_warning`).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import Field

from rtflow.audio.files import vars_audio_path
from rtflow.durations import Duration
from rtflow.errors import InvalidRequestError
from rtflow.messages import (
    AUDIO_PART_TYPES,
    TEXT_PART_TYPES,
    ContentPart,
    Message,
    ToolCall,
    TurnMetrics,
    TurnOutput,
    TurnRequest,
)
from rtflow.providers.base import Provider, ProviderInfo
from rtflow.providers.chat_wire import (
    ChatReply,
    StreamedReply,
    parse_json,
    read_to_the_end,
    reply_from_body,
    sse_events,
    status_error,
)
from rtflow.providers.config import CommonConfig, validate_config
from rtflow.providers.endpoints import (
    SecretKey,
    auth_headers,
    is_azure,
    pooled_http_client,
    resolve_base_url,
    resolve_key,
    server_text,
    translated_http_errors,
)
from rtflow.providers.image_input import inline_images
from rtflow.providers.pricing import cost_of
from rtflow.providers.protocol_notes import ProtocolNotes
from rtflow.providers.ratelimits import capped_wait, pause_from_headers
from rtflow.providers.tool_rounds import run_tool_rounds
from rtflow.providers.tools import ToolRunner, chat_tools

if TYPE_CHECKING:  # httpx itself is imported when the first request is made: validating a flow never needs it
    import httpx

__all__ = ["ChatConfig", "ChatProvider", "ChatSession"]


class ChatConfig(CommonConfig):
    """Config keys of `openai:chat:MODEL`."""

    stream: bool = True
    """Stream the reply (measures time to first token). `false` waits for the whole body."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Cap on the reply's tokens (older models)."""
    max_completion_tokens: int | None = Field(default=None, ge=1)
    """Cap on the reply's tokens, reasoning included (newer models)."""
    top_p: float | None = None
    """Nucleus sampling."""
    frequency_penalty: float | None = None
    """Penalty on repeated tokens."""
    presence_penalty: float | None = None
    """Penalty on tokens already present."""
    seed: int | None = None
    """Best-effort determinism."""
    stop: str | list[str] | None = None
    """Stop sequences."""
    response_format: dict[str, Any] | None = None
    """`{type: json_object}` or a JSON schema."""
    request_timeout: Duration = 60.0
    """Longest wait for one HTTP request (duration; a bare number is milliseconds)."""
    azure: bool | None = None
    """Force Azure authentication (`api-key` header); by default detected from the host name."""
    api_version: str | None = None
    """Azure API version; selects the `/openai/deployments/D/chat/completions?api-version=V` URL form."""
    deployment: str | None = None
    """Azure deployment name (defaults to the model)."""


_OPTIONAL_BODY_KEYS = (
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "top_p",
    "frequency_penalty",
    "presence_penalty",
    "seed",
    "stop",
    "response_format",
)


class ChatProvider(Provider):
    """OpenAI Chat Completions (or any endpoint that speaks it)."""

    kind = "openai:chat"

    def __init__(self, info: ProviderInfo, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(info)
        self.config = validate_config(ChatConfig, info.config, info.label)
        self.base_url = resolve_base_url(self.config.api_base_url, self.config.api_host)
        self.azure = is_azure(self.base_url, self.config.azure)
        self.tools = ToolRunner(
            self.config.function_handlers, self.config.function_call_handler, info.base_dir, self.config.tool_timeout
        )
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._key: SecretKey | None = None
        self.rate_limits: dict[str, str] = {}
        """The last `x-ratelimit-*` headers the server sent."""

    @property
    def url(self) -> str:
        """The chat completions endpoint."""
        if self.azure and self.config.api_version:
            root = self.base_url.removesuffix("/v1").removesuffix("/openai")
            deployment = self.config.deployment or self.info.model
            return f"{root}/openai/deployments/{deployment}/chat/completions?api-version={self.config.api_version}"
        return f"{self.base_url}/chat/completions"

    def check_ready(self) -> None:
        resolve_key(self.config.api_key, self.config.api_key_env, self.info.label)

    @property
    def endpoint(self) -> str:
        return self.base_url

    @property
    def concurrency_key(self) -> str:
        """Requests to the same endpoint and model share limits."""
        return self.config.concurrency_key or f"{self.url}#{self.info.model}"

    @property
    def max_concurrency(self) -> int | None:
        """The most requests in flight at once for this key."""
        return self.config.max_concurrency

    @property
    def per_minute_limits(self) -> tuple[float | None, float | None]:
        return self.config.rpm, self.config.tpm

    def session(self, conversation_id: str) -> ChatSession:
        """A stateless session: every turn sends the whole conversation."""
        return ChatSession(self)

    async def aclose(self) -> None:
        """Close the connection pool."""
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._key = resolve_key(self.config.api_key, self.config.api_key_env, self.info.label)
            headers = auth_headers(self._key, azure=self.azure, extra=self.config.headers)
            self._client = pooled_http_client(self.url, headers, self.config.request_timeout, self._transport)
        return self._client

    async def complete(self, request: TurnRequest, notes: ProtocolNotes | None = None) -> TurnOutput:
        """Answer one turn, running tool rounds until the model stops calling tools."""
        if notes is None:
            notes = ProtocolNotes(self.info.label, log_event="chat.protocol_warning")
        timeout = self.config.request_timeout
        with translated_http_errors(self.info.label, "the request", timeout, "request_timeout", lambda: self._key):
            return await self._complete(request, notes)

    async def _complete(self, request: TurnRequest, notes: ProtocolNotes) -> TurnOutput:
        started = time.perf_counter()
        metrics = TurnMetrics()
        messages = _chat_messages(request, self.info.base_dir, self.info.label)
        replies: list[ChatReply] = []

        async def ask() -> ChatReply:
            reply = await self._request(messages, metrics, notes)
            replies.append(reply)
            return reply

        async def answer(reply: ChatReply, outcomes: list[ToolCall]) -> ChatReply:
            messages.append(_assistant_calls(reply))
            messages.extend(
                {"role": "tool", "tool_call_id": outcome.call_id, "content": outcome.output or ""}
                for outcome in outcomes
            )
            return await ask()

        rounds = await run_tool_rounds(
            ask, answer, self.tools, max_rounds=self.config.max_tool_iterations, provider_label=self.info.label
        )
        # Reading a stream's end after its `[DONE]` is not the answer's time: round k's reply is replies[k + 1].
        metrics.tool_rounds_ms.extend(
            ms - reply.after_done_s * 1000 for ms, reply in zip(rounds.round_ms, replies[1:], strict=True)
        )
        metrics.total_ms = (time.perf_counter() - started - sum(reply.after_done_s for reply in replies)) * 1000
        served_by = next((reply.model for reply in replies if reply.model), None)
        output = TurnOutput(
            text=rounds.text,
            tool_calls=rounds.tool_calls,
            usage=rounds.usage,
            cost=cost_of(self.info.model, rounds.usage),
            metrics=metrics,
            model=server_text(served_by, self._key, limit=100) if served_by else self.info.model,
            rate_limit_pause_s=self._rate_limit_pause(notes),
        )
        output.protocol_warnings = notes.kept()  # last: the pause above may add one
        return output

    def _rate_limit_pause(self, notes: ProtocolNotes) -> float | None:
        """The pause the `x-ratelimit-*` headers ask for, capped by `max_retry_after` (and noted if cut)."""
        asked = pause_from_headers(self.rate_limits)
        cap = self.config.max_retry_after
        pause, capped = capped_wait(asked, cap)
        if capped:
            notes(f"x-ratelimit-reset asked to hold requests for {asked:g} s; held for {cap:g} s (max_retry_after)")
        return pause

    def _body(self, messages: list[dict[str, Any]]) -> dict[str, Any]:
        config = self.config
        body: dict[str, Any] = {"model": config.deployment or self.info.model, "messages": messages}
        for name in _OPTIONAL_BODY_KEYS:
            value = getattr(config, name)
            if value is not None:
                body[name] = value
        if config.tools:
            body["tools"] = chat_tools(config.tools)
        if config.tool_choice is not None:
            body["tool_choice"] = _chat_tool_choice(config.tool_choice)
        if config.stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        return body

    async def _request(self, messages: list[dict[str, Any]], metrics: TurnMetrics, notes: ProtocolNotes) -> ChatReply:
        body = self._body(messages)
        client = self._http()
        notes.key = self._key
        label = self.info.label
        cap = self.config.max_retry_after
        requested = time.perf_counter()
        if not self.config.stream:
            response = await client.post(self.url, json=body)
            self._note_rate_limits(response)
            if response.status_code >= 300:  # a redirect left here was not followed
                raise status_error(response, label, self._key, max_retry_after=cap)
            return reply_from_body(parse_json(response.content, label), label, notes)
        async with client.stream("POST", self.url, json=body) as response:
            self._note_rate_limits(response)
            if response.status_code >= 300:
                await response.aread()
                raise status_error(response, label, self._key, max_retry_after=cap)
            reply = StreamedReply(notes)
            lines = response.aiter_lines()
            async for chunk in sse_events(lines, label, self._key):
                if reply.absorb(chunk) and metrics.first_delta_ms is None:
                    # A text answer's first delta is both: the first of any kind (ttfb) and the first text.
                    metrics.first_delta_ms = metrics.ttfb_ms = (time.perf_counter() - requested) * 1000
            answered = reply.finish()
            answered.after_done_s = await read_to_the_end(response, lines)
            return answered

    def _note_rate_limits(self, response: httpx.Response) -> None:
        found = {name: value for name, value in response.headers.items() if name.startswith("x-ratelimit-")}
        if found:
            self.rate_limits = found


class ChatSession:
    """A conversation on the Chat provider; holds nothing between turns."""

    def __init__(self, provider: ChatProvider) -> None:
        self._provider = provider
        self.protocol_warnings: list[str] = []
        """What the server sent during the last turn that was skipped, and why (see `ProtocolNotes`)."""

    async def send(self, request: TurnRequest) -> TurnOutput:
        """Send the whole conversation."""
        notes = ProtocolNotes(self._provider.info.label, log_event="chat.protocol_warning")
        self.protocol_warnings = notes.warnings
        return await self._provider.complete(request, notes)

    async def aclose(self) -> None:
        """Nothing to release: the connection pool belongs to the provider."""


def _chat_messages(request: TurnRequest, base_dir: Path, label: str) -> list[dict[str, Any]]:
    """The conversation in chat form; this turn's voice input becomes its transcript (or the turn fails)."""
    messages = list(request.messages)
    transcript = request.vars.get("transcript")
    transcript = str(transcript) if transcript else None
    audio_path = vars_audio_path(request.vars, base_dir)
    last_user = max((index for index, message in enumerate(messages) if message.role == "user"), default=-1)
    converted: list[dict[str, Any]] = []
    for index, message in enumerate(messages):
        this_turn = index == last_user
        if this_turn and audio_path is not None:
            if transcript is None:
                raise _cannot_take_audio(str(audio_path), label)
            converted.append({"role": "user", "content": transcript})
        elif message.images:
            parts = _chat_parts(inline_images(message, base_dir, label), transcript if this_turn else None, label)
            converted.append({"role": message.role, "content": parts})
        else:
            converted.append(_chat_message(message, transcript if this_turn else None, label))
    return converted


def _chat_message(message: Message, transcript: str | None, label: str) -> dict[str, Any]:
    if isinstance(message.content, str):
        return {"role": message.role, "content": message.content}
    if message.role != "user" or not message.has_audio:
        return {"role": message.role, "content": message.text}
    pieces: list[str] = []
    for part in message.content:
        if part.type in TEXT_PART_TYPES and part.text is not None:
            pieces.append(part.text)
        elif part.type in AUDIO_PART_TYPES:
            pieces.append(_spoken_text(part, transcript, label))
    return {"role": message.role, "content": "\n".join(pieces)}


def _chat_parts(message: Message, transcript: str | None, label: str) -> list[dict[str, Any]]:
    """A user message holding images as Chat content parts, in order: text, `image_url`, audio as its words."""
    assert not isinstance(message.content, str)  # a message with images holds parts
    parts: list[dict[str, Any]] = []
    for part in message.content:
        if part.type == "input_image":
            image: dict[str, Any] = {"url": part.image_url}
            if part.detail is not None:
                image["detail"] = part.detail
            parts.append({"type": "image_url", "image_url": image})
        elif part.type in TEXT_PART_TYPES and part.text is not None:
            parts.append({"type": "text", "text": part.text})
        elif part.type in AUDIO_PART_TYPES:
            parts.append({"type": "text", "text": _spoken_text(part, transcript, label)})
    return parts


def _spoken_text(part: ContentPart, transcript: str | None, label: str) -> str:
    """What an audio part says, for an API that takes no audio (the turn fails when nobody knows)."""
    heard = part.transcript or transcript
    if heard is None:
        raise _cannot_take_audio(part.file or "inline audio", label)
    return heard


def _cannot_take_audio(source: str, label: str) -> InvalidRequestError:
    return InvalidRequestError(
        f"{label} cannot take audio and no transcript of the turn's input audio {source} is known: give the turn"
        " vars.transcript, or enable input_audio_transcription on the Realtime provider it falls back from",
        provider=label,
        code="audio_not_supported",
    )


def _assistant_calls(reply: ChatReply) -> dict[str, Any]:
    """The assistant message that asked for `reply`'s calls; the tool results that follow refer to it."""
    return {
        "role": "assistant",
        "content": reply.text or None,
        "tool_calls": [
            {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            for call_id, name, arguments in reply.calls
        ],
    }


def _chat_tool_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    if isinstance(choice, dict) and "name" in choice and "function" not in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    return choice
