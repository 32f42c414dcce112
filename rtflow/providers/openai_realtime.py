"""`openai:realtime:MODEL`: the OpenAI Realtime API over one WebSocket per conversation.

A session connects on its first turn and keeps its socket open across the conversation's turns. It remembers
what the server session holds (the messages it sent plus the assistant replies it received). Each turn's
request carries the whole conversation; when what the session holds is a prefix of it, only the rest is sent.
When it is not (the history diverged), or on a fresh session (first turn, reconnect after a dropped socket or
a failed attempt), a new socket is opened and the whole history is replayed as conversation items.

System messages: config `instructions` goes into `session.update` as the session instructions; system (and
developer) messages of the rendered prompt are sent as `system` conversation items. Both therefore reach the
model, and a replay rebuilds exactly the same server state.

Voice turns (see `realtime_voice`): when a turn's vars hold `audio` (`vars.audio: file://clips/q1.wav`), the
prompt renders as usual and the turn's last user message is sent as that audio instead of its text; an
`input_audio` content part with a `file` is sent the same way. The file (any WAV) is converted to the session's
input format, appended in `audio_chunk_ms` chunks (paced in real time with `realtime_pacing`), then committed
and answered (`turn_detection` off), or left to `server_vad` to commit and answer. The server's transcription
(`input_audio_transcription`) becomes `TurnOutput.input_transcript`, and rides on a failure's ProviderError so a
fallback can use it. Output audio is written per turn to `TurnRequest.artifact_dir` (WAV, or raw G.711 plus a
WAV copy); its transcript is the turn's text.

Images: a user message's `input_image` parts go into its `conversation.item.create` as GA `input_image` parts, a
`file://` image read into a data URL only then; a beta session, and an image given as a web address, are refused
(see `image_input.realtime_images`). A message's images are part of what the held history is matched by.

What the server sends is trusted for nothing. Every frame is read by `realtime_wire.read_event` into typed
values; what cannot be used is skipped and kept as the turn's protocol warnings (`protocol_warnings`, also
logged as `realtime.protocol_warning`). Events are matched to the turn's response (`ResponseMatcher`); `error`
events to the client event they name (every client event carries an `event_id`), so an error about another
event does not fail the turn. Every wait is bounded: the handshake by `connect_timeout`, silence and an unread
send by `websocket_timeout`, and a wait the server asks for by `max_retry_after`. Every websockets exception is
translated in `realtime_socket.translate_errors`, the one place where the library's failures enter rtflow; the
API key is never part of a message or a log line, and never sent to another origin.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

from rtflow.audio.files import BYTES_PER_SECOND, audio_seconds, chunk, silence, write_output_audio
from rtflow.errors import (
    InvalidRequestError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    ResponseFailedError,
    ToolError,
    first_error_in,
)
from rtflow.log import get_logger
from rtflow.messages import (
    AUDIO_PART_TYPES,
    ContentPart,
    Interruption,
    InterruptPlan,
    Message,
    ToolCall,
    TurnMetrics,
    TurnOutput,
    TurnRequest,
)
from rtflow.providers.base import Provider, ProviderInfo
from rtflow.providers.config import validate_config
from rtflow.providers.endpoints import (
    SecretKey,
    auth_headers,
    is_azure,
    is_loopback,
    realtime_url,
    redact,
    resolve_base_url,
    resolve_key,
    server_text,
)
from rtflow.providers.image_input import realtime_images
from rtflow.providers.pricing import cost_of
from rtflow.providers.protocol_notes import ProtocolNotes
from rtflow.providers.ratelimits import capped_wait, pause_from_realtime_limits
from rtflow.providers.realtime_events import EventBuilder, RealtimeConfig, idle_timeout_sent
from rtflow.providers.realtime_mcp import (
    McpApprovalRequest,
    McpApprover,
    McpCallItem,
    McpRecords,
    approval_detail,
    register_mcp_secrets,
)
from rtflow.providers.realtime_outcomes import (
    ResponseMatcher,
    ResponseResult,
    error_from_body,
    finish_response,
    idle_timeout_detail,
    idle_timeout_entry,
)
from rtflow.providers.realtime_socket import arrived_at, open_socket
from rtflow.providers.realtime_socket import translate_errors as _translate_errors
from rtflow.providers.realtime_timing import TurnTimeline
from rtflow.providers.realtime_voice import (
    InputAudio,
    TurnDetection,
    chunk_bytes,
    load_input_audio,
    outgoing_messages,
    stream_audio,
)
from rtflow.providers.realtime_wire import (
    AudioCommitted,
    AudioDelta,
    ErrorEvent,
    IdleTimeout,
    OtherEvent,
    OutputItemAdded,
    RateLimit,
    RateLimitsUpdated,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SessionCreated,
    SpeechStopped,
    TextDelta,
    Transcription,
    read_event,
    read_frame,
)
from rtflow.providers.tool_rounds import ToolRounds, run_tool_rounds
from rtflow.providers.tools import ToolRunner

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["RealtimeProvider", "RealtimeSession"]


# One encoder for every client event: `json.dumps` with separators builds a new encoder per call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode
_FINISHED_KEPT = 64
"""How many finished response ids a session remembers, so late events of theirs are known as strays."""
_SUPERSEDED_MAX = 20
"""Responses a server may cancel for more speech (`turn_detected`) in one turn before the turn fails."""
_TRANSCRIPT_DELTAS = frozenset({"response.output_audio_transcript.delta", "response.audio_transcript.delta"})


class RealtimeProvider(Provider):
    """The OpenAI Realtime API (GA by default, `dialect: beta` for the beta shape; Azure endpoints too)."""

    kind = "openai:realtime"
    holds_sessions = True
    # No `dtmf`: the Realtime WebSocket API has no client event for keypad tones (only SIP calls carry them).
    script_steps = frozenset({"interrupt", "silence", "wait_for"})

    def __init__(self, info: ProviderInfo) -> None:
        super().__init__(info)
        self.config = validate_config(RealtimeConfig, info.config, info.label)
        self.base_url = resolve_base_url(self.config.api_base_url, self.config.api_host)
        self.azure = is_azure(self.base_url, self.config.azure)
        self.url = realtime_url(
            self.base_url,
            info.model,
            azure=self.azure,
            api_version=self.config.api_version,
            deployment=self.config.deployment,
        )
        self.tools = ToolRunner(
            self.config.function_handlers,
            self.config.function_call_handler,
            info.base_dir,
            self.config.tool_timeout,
        )
        register_mcp_secrets(self.config.tools)
        self.mcp_approver = McpApprover(self.config.mcp_approval, info.base_dir, self.config.tool_timeout)

    @property
    def endpoint(self) -> str:
        return self.base_url

    @property
    def keeps_history(self) -> bool:
        return self.config.maintain_context

    @property
    def instructions(self) -> str | None:
        return self.config.instructions

    @property
    def concurrency_key(self) -> str:
        """Sessions to the same endpoint and model share limits."""
        return self.config.concurrency_key or self.url

    @property
    def max_concurrency(self) -> int | None:
        """The most sessions open at once for this key."""
        return self.config.max_concurrency

    @property
    def per_minute_limits(self) -> tuple[float | None, float | None]:
        return self.config.rpm, self.config.tpm

    def warnings(self) -> list[str]:
        """Settings the chosen dialect cannot honour."""
        found: list[str] = []
        if self.config.dialect == "ga" and self.config.temperature is not None:
            found.append(
                f"provider {self.info.label!r}: temperature is not supported by the GA Realtime API and is not"
                " sent (use dialect: beta for endpoints that still take it)"
            )
        if self.config.idle_timeout_ms is not None and not idle_timeout_sent(self.config):
            found.append(
                f"provider {self.info.label!r}: idle_timeout_ms needs turn_detection of type server_vad"
                " (GA sessions) and is not sent"
            )
        if self.config.dialect == "beta":
            if any(tool.get("type") == "mcp" for tool in self.config.tools):
                found.append(f"provider {self.info.label!r}: MCP tools are a GA feature; a beta server may refuse them")
            if isinstance(self.config.voice, dict):
                found.append(
                    f"provider {self.info.label!r}: a custom voice ({{id: ...}}) is a GA setting; dialect beta sends"
                    " no voice"
                )
            for key in (
                "parallel_tool_calls",
                "reasoning",
                "speed",
                "noise_reduction",
                "truncation",
                "prompt",
                "include",
            ):
                if getattr(self.config, key) is not None:
                    found.append(
                        f"provider {self.info.label!r}: {key} is a GA session setting and is not sent (dialect: beta)"
                    )
        return found

    def session(self, conversation_id: str) -> RealtimeSession:
        """A session that connects on its first turn."""
        return RealtimeSession(self, conversation_id)

    def check_ready(self) -> None:
        self.resolve_key()

    def resolve_key(self) -> SecretKey:
        """The API key (resolved per connection, so `validate` works without one)."""
        return resolve_key(self.config.api_key, self.config.api_key_env, self.info.label)

    def connect_headers(self, key: SecretKey) -> dict[str, str]:
        """Handshake headers: auth, the beta opt-in when needed, and the user's extra headers."""
        headers = auth_headers(key, azure=self.azure, extra=self.config.headers)
        headers.pop("User-Agent", None)  # sent by websockets' own user_agent_header
        if self.config.dialect == "beta":
            headers.setdefault("OpenAI-Beta", "realtime=v1")
        return headers


MessageKey = tuple[str, str, tuple[str, ...], tuple[str, ...]]
"""Role, text, audio sources and images of a message: what the held-history comparison matches on."""


def _message_key(message: Message) -> MessageKey:
    """What identifies a message for the held-history comparison: role, text, any audio sources and images."""
    role = "system" if message.role == "developer" else message.role
    audio: tuple[str, ...] = ()
    if not isinstance(message.content, str):
        audio = tuple(part.file or part.audio or "" for part in message.content if part.type in AUDIO_PART_TYPES)
    # A different picture, or the same one at another detail, is another message: the server holds what it saw.
    images = tuple(f"{part.detail or ''}:{part.image_url}" for part in message.images)
    return (role, message.text, audio, images)


@dataclass
class _TurnState:
    """Accumulates a turn's results across its responses."""

    started: float
    timeline: TurnTimeline
    plan: InterruptPlan | None = None
    """Where the caller barges in on the answer (the flow's `interrupt`)."""
    interruption: Interruption | None = None
    """How the answer was cut, once it was."""
    heard_text: str | None = None
    truncate_confirmed: bool = False
    spoken_ahead: bool = False
    """This turn's clip was said over the last answer (a server-VAD barge-in): its response is read, not asked."""
    speaking_over_from: float | None = None
    """When the caller began to speak over the answer (a server-VAD barge-in)."""
    commentary: list[str] = field(default_factory=list)
    """What the model said in `commentary` messages (a reasoning model's working notes), apart from the answer."""
    later_pieces: list[str] = field(default_factory=list)
    """What the agent said during the script steps after the answer (it may speak up in a silence)."""
    idle_timeouts: list[IdleTimeout] = field(default_factory=list)
    """Each time the server's idle timeout fired during this turn (the caller stayed silent after an answer), in
    the order of the turn's `timeout_triggered` marks, which say when."""
    prompting: bool = False
    """The idle timeout fired and the server's prompt to go on is being read: it is not the turn's answer."""
    prompt_id: str | None = None
    """The response of the prompt being read, once it has started."""
    prompt_pieces: list[str] = field(default_factory=list)
    """The text of the prompt being read."""
    idle_prompts: list[str] = field(default_factory=list)
    """What the agent said each time the idle timeout fired."""

    def prompt_done(self, text: str) -> None:
        """The server's prompt after an idle timeout has ended."""
        self.prompting = False
        self.prompt_id = None
        self.prompt_pieces = []
        self.idle_prompts.append(text)

    step_failures: list[str] = field(default_factory=list)
    mcp: McpRecords = field(default_factory=McpRecords)
    """The calls the server made on MCP servers during the turn, and the approvals it asked for."""
    metrics: TurnMetrics = field(default_factory=TurnMetrics)
    audio: bytearray = field(default_factory=bytearray)
    first_request_at: float | None = None
    """When the first response was asked for: `response.create`, or the server VAD's end of speech."""
    last_audio_at: float | None = None
    audio_items: list[str] = field(default_factory=list)
    """Ids of the user items this turn's input audio became (its transcriptions are matched by them)."""
    transcripts: dict[str, str] = field(default_factory=dict)
    vad_audio: InputAudio | None = None
    """Input audio left for the server VAD to end, streamed while the response is read."""

    @property
    def input_transcript(self) -> str | None:
        """The server's transcription of this turn's input audio, in order, when it sent any."""
        heard = [self.transcripts[item] for item in self.audio_items if item in self.transcripts]
        return " ".join(heard) if heard else None


class _Speaker:
    """The caller's barge-in clip, said over the answer from the moment of the cut, in the read's task group."""

    def __init__(
        self, tasks: anyio.abc.TaskGroup, audio: InputAudio, say: Callable[[InputAudio], Awaitable[None]]
    ) -> None:
        self.tasks = tasks
        self.audio = audio
        self._say = say
        self.started = False
        self.done = anyio.Event()

    def start(self) -> None:
        self.started = True
        self.tasks.start_soon(self._run)

    async def _run(self) -> None:
        try:
            await self._say(self.audio)
        finally:
            self.done.set()


class RealtimeSession:
    """One conversation's WebSocket, kept open across turns."""

    def __init__(self, provider: RealtimeProvider, conversation_id: str) -> None:
        self._provider = provider
        self._label = provider.info.label
        self._conversation_id = conversation_id
        self._socket: ClientConnection | None = None
        self._events = EventBuilder(provider.config.dialect)
        self._held: list[MessageKey] = []
        self._key: SecretKey | None = None
        self._server_model: str | None = None
        self._detection = TurnDetection.of(provider.config)
        self._turn: _TurnState | None = None
        self._notes = ProtocolNotes(self._label, log_event="realtime.protocol_warning")
        self._sent_this_turn: set[str] = set()
        """`event_id`s of the client events sent during this turn: the errors that may fail it name one."""
        self._finished: dict[str, None] = {}
        """Ids of responses read to their end (oldest first), whose late events are strays."""
        self.rate_limits: list[RateLimit] = []
        """The last `rate_limits.updated` figures the server sent."""
        self.protocol_warnings: list[str] = self._notes.warnings
        """What the server sent during the last turn that was skipped, and why (see `ProtocolNotes`)."""
        self._playing_until: float | None = None
        """When the caller will have heard the last answer to its end: the next turn waits for it."""
        self._ahead: collections.deque[tuple[str | bytes, float]] = collections.deque()
        """Frames read (with their arrival times) while a barge-in clip was still being said: the next turn's."""
        self._spoken_ahead: str | None = None
        """The clip a server-VAD barge-in already said: the next turn, whose audio it is, does not send it."""

    async def send(self, request: TurnRequest) -> TurnOutput:
        """Answer one turn, sending only what the server session does not hold yet."""
        self._notes = ProtocolNotes(self._label, log_event="realtime.protocol_warning", key=self._key)
        self.protocol_warnings = self._notes.warnings
        self._sent_this_turn = set()
        playing_until, self._playing_until = self._playing_until, None
        if playing_until is not None and playing_until > time.perf_counter():
            await anyio.sleep(playing_until - time.perf_counter())  # a caller speaks once the agent has finished
        config = self._provider.config
        started = time.perf_counter()
        timeline = TurnTimeline(started, config.output_audio_format or "pcm16", paced=config.playback == "realtime")
        state = self._turn = _TurnState(started=started, timeline=timeline, plan=request.interrupt)
        cap = self._provider.config.max_retry_after
        try:
            with _translate_errors(self._label, lambda: self._key, max_retry_after=cap):
                rounds = await self._exchange(request, state)
                if request.after_answer:
                    await self._play_steps(request, state, rounds)
        except ProviderError as exc:
            # What the server heard is worth keeping: a fallback that cannot take audio gets the words.
            if exc.input_transcript is None:
                exc.input_transcript = self._redacted(state.input_transcript)
            if isinstance(exc, ProtocolError | ProviderTimeoutError) and len(self._notes):
                exc.message += self._notes.summary()
                exc.args = (exc.message,)
            self._abort()
            raise
        except BaseException:
            # Whatever failed (error, timeout, cancellation), the server state is unknown now: the next
            # attempt starts on a fresh socket and replays the history.
            self._abort()
            raise
        # Outside the translation: a local failure (an unwritable artifact folder) is not the server's.
        return self._output(request, state, rounds)

    async def aclose(self) -> None:
        """Close the socket; safe to call twice and after a failure."""
        socket, self._socket = self._socket, None
        self._held = []
        self._ahead.clear()
        self._spoken_ahead = None
        if socket is not None:
            with anyio.move_on_after(2, shield=True), contextlib.suppress(Exception):
                await socket.close()

    def _abort(self) -> None:
        socket, self._socket = self._socket, None
        self._held = []
        self._ahead.clear()
        self._spoken_ahead = None
        if socket is not None:
            socket.transport.abort()

    def _redacted(self, text: str | None) -> str | None:
        """Server text that goes into the turn's record as it is (answer, transcript), with the key removed."""
        return redact(text, self._key) if text else text

    async def _exchange(self, request: TurnRequest, state: _TurnState) -> ToolRounds:
        # `wanted` keys the messages as the conversation holds them (a vars.audio turn as its rendered text), so
        # the next turn's history matches what this session holds; `outgoing` is what goes on the wire.
        wanted = [_message_key(message) for message in request.messages]
        outgoing = outgoing_messages(request, self._provider.info.base_dir)
        held = len(self._held)
        if (
            self._socket is not None and self._socket.state.name != "OPEN"
        ):  # websockets' State, by name: not imported here
            # Dropped between turns (expired session, idle timeout): reconnect and replay rather than fail.
            get_logger().debug("realtime.socket_lost", conversation_id=self._conversation_id)
            self._abort()
        if self._socket is not None and wanted[:held] == self._held:
            new_messages = outgoing[held:]
        else:
            await self.aclose()
            connect_started = time.perf_counter()
            await self._connect()
            state.metrics.connect_ms = (time.perf_counter() - connect_started) * 1000
            new_messages = outgoing
        for position, message in enumerate(new_messages):
            await self._send_message(message, state, last=position == len(new_messages) - 1)
        rounds = await run_tool_rounds(
            lambda: self._first_response(state),
            lambda _reply, outcomes: self._answer_calls(state, outcomes),
            self._provider.tools,
            max_rounds=self._provider.config.max_tool_iterations,
            provider_label=self._label,
        )
        rounds.text = self._redacted(rounds.text) or ""
        if state.interruption is not None:
            state.heard_text = self._redacted(state.heard_text) or ""
        heard = rounds.text if state.heard_text is None else state.heard_text
        self._held = [*wanted, _message_key(Message.of("assistant", heard))]
        return rounds

    def _output(self, request: TurnRequest, state: _TurnState, rounds: ToolRounds) -> TurnOutput:
        state.metrics.tool_rounds_ms.extend(rounds.round_ms)
        state.metrics.total_ms = (time.perf_counter() - state.started) * 1000
        timeline = state.timeline
        cut = state.interruption
        timeline.fill(state.metrics, state.first_request_at, cut.audio_end_ms if cut is not None else None)
        if state.metrics.input_audio_s:
            state.metrics.caller_speaking_ms = state.metrics.input_audio_s * 1000
        if cut is None and timeline.clock.paced:
            self._playing_until = timeline.clock.ends_at()
        output_format = self._provider.config.output_audio_format or "pcm16"
        audio = None
        if state.audio:
            seconds = audio_seconds(len(state.audio), output_format)
            state.metrics.output_audio_s = seconds
            if seconds > 0 and state.first_request_at is not None and state.last_audio_at is not None:
                state.metrics.real_time_factor = (state.last_audio_at - state.first_request_at) / seconds
            if request.artifact_dir:
                stem = f"{_safe_name(request.conversation_id)}-turn{request.turn_index + 1}"
                audio = write_output_audio(bytes(state.audio), Path(request.artifact_dir), stem, output_format)
        output = TurnOutput(
            text=rounds.text,
            tool_calls=[*state.mcp.calls, *rounds.tool_calls],
            usage=rounds.usage,
            cost=cost_of(self._provider.info.model, rounds.usage),
            metrics=state.metrics,
            audio=audio,
            input_transcript=self._redacted(state.input_transcript),
            model=self._server_model or self._provider.info.model,
            rate_limit_pause_s=self._rate_limit_pause(),
        )
        output.heard_text = state.heard_text if cut is not None else None
        output.commentary = self._redacted("".join(state.commentary)) or None
        output.step_failures = state.step_failures
        output.interruption = cut
        output.events = timeline.marks()
        self._mark_idle_timeouts(output, state)
        output.protocol_warnings = self._notes.kept()  # last: the pause above may add one
        return output

    def _mark_idle_timeouts(self, output: TurnOutput, state: _TurnState) -> None:
        """Each idle timeout of the turn, in `idle_timeouts` and on its event mark, with the prompt it drew."""
        idle_marks = [mark for mark in output.events if mark.type == "input_audio_buffer.timeout_triggered"]
        # A prompt still being read when the turn ended has no text yet: that firing is told without one. A
        # `timeout_triggered` frame that could not be read has a mark but no firing: it is left as it is.
        for index, (mark, fired) in enumerate(zip(idle_marks, state.idle_timeouts, strict=False)):
            said = self._redacted(state.idle_prompts[index] if index < len(state.idle_prompts) else None)
            output.idle_timeouts.append(idle_timeout_entry(fired, said, mark.at_ms))
            mark.detail = idle_timeout_detail(fired, said)

    def _rate_limit_pause(self) -> float | None:
        """The pause the last `rate_limits.updated` asks for, capped by `max_retry_after` (and noted if cut)."""
        asked = pause_from_realtime_limits(self.rate_limits)
        cap = self._provider.config.max_retry_after
        pause, capped = capped_wait(asked, cap)
        if capped:
            self._notes(
                f"rate_limits.updated asked to hold requests for {asked:g} s; held for {cap:g} s (max_retry_after)"
            )
        return pause

    async def _connect(self) -> None:
        provider = self._provider
        self._key = self._notes.key = provider.resolve_key()
        self._events = EventBuilder(provider.config.dialect)
        get_logger().debug("realtime.connect", conversation_id=self._conversation_id, url=provider.url)
        try:
            with anyio.fail_after(provider.config.connect_timeout):
                self._socket = await open_socket(
                    provider.url,
                    provider.connect_headers(self._key),
                    self._key,
                    proxy=not is_loopback(provider.url),
                )
                await self._await_session()
        except TimeoutError:
            raise ProviderConnectionError(
                f"no session within {provider.config.connect_timeout:g} s of connecting to {provider.url}",
                provider=self._label,
            ) from None
        await self._post(self._events.session_update(provider.config))

    async def _await_session(self) -> None:
        """Read up to `session.created`, the first event of every connection (others before it are skipped)."""
        socket = self._socket
        assert socket is not None
        while True:
            event = read_event(await socket.recv(), self._notes)
            if isinstance(event, SessionCreated):
                if event.model:
                    self._server_model = server_text(event.model, self._key, limit=100)
                return
            if isinstance(event, ErrorEvent):
                self._raise_if_ours(event)
            elif event is not None:
                self._notes(f"{_event_name(event)} arrived before session.created and was skipped")

    def _raise_if_ours(self, event: ErrorEvent) -> None:
        """Raise the error an `error` event means, unless it is about a client event this turn did not send."""
        event_id = event.error.event_id
        if event_id is not None and event_id not in self._sent_this_turn:
            about = server_text(event.error.message or event.error.code or "", self._key, limit=120)
            self._notes(f"an error about event {event_id!r}, which this turn did not send, was ignored: {about}")
            return
        raise error_from_body(
            event.error, self._label, key=self._key, max_retry_after=self._provider.config.max_retry_after
        )

    async def _recv(self) -> tuple[str | bytes, float]:
        """The next frame and when it arrived: first those read ahead during a barge-in, then the socket's."""
        if self._ahead:
            return self._ahead.popleft()
        socket = self._socket
        assert socket is not None
        frame = await socket.recv()
        return frame, arrived_at(socket)

    async def _post(self, event: dict[str, Any], detail: str | None = None) -> None:
        socket = self._socket
        assert socket is not None
        self._sent_this_turn.add(event["event_id"])
        if self._turn is not None:
            self._turn.timeline.client(event["type"], time.perf_counter(), detail)
        timeout = self._provider.config.websocket_timeout
        # A server that stops reading fills the socket's buffers, and then a send waits: bound it like silence.
        with anyio.move_on_after(timeout) as waiting:
            await socket.send(_compact_json(event))
        if waiting.cancelled_caught:
            raise ProviderTimeoutError(
                f"the server read nothing of what was sent for {timeout:g} s", provider=self._label
            )

    async def _send_message(self, message: Message, state: _TurnState, *, last: bool) -> None:
        if message.images:
            message = realtime_images(message, self._provider.config.dialect, self._provider.info.base_dir, self._label)
        for event in self._events.message_items(message):
            await self._post(event)
        if isinstance(message.content, str) or message.role != "user":
            return
        config = self._provider.config
        for part in message.content:
            audio = load_input_audio(
                part, self._provider.info.base_dir, config.input_audio_format or "pcm16", self._label
            )
            if audio is None:
                continue
            state.metrics.input_audio_s = (state.metrics.input_audio_s or 0.0) + audio.seconds
            if last and self._spoken_ahead is not None and audio.source == self._spoken_ahead:
                self._spoken_ahead = None
                state.spoken_ahead = True  # said over the last answer already; the server answers it
                continue
            if self._detection.server_vad and last:
                state.vad_audio = audio  # the server ends this turn: streamed while its response is read
                continue
            # Earlier audio (a replayed history), or no server VAD: the client commits each piece itself.
            sent_ms = await stream_audio(self._post, self._events, audio, config, TurnDetection.of_client())
            state.metrics.input_send_ms = (state.metrics.input_send_ms or 0.0) + sent_ms
            state.timeline.speech_end_at = time.perf_counter()  # the clip has been said
            await self._post(self._events.audio_commit())
            await self._await_committed(audio, state)

    async def _await_committed(self, audio: InputAudio, state: _TurnState) -> None:
        """Read up to `input_audio_buffer.committed`; a refused commit says which file was too short."""
        socket = self._socket
        assert socket is not None
        timeout = self._provider.config.websocket_timeout
        with anyio.move_on_after(timeout):
            while True:
                frame, now = await self._recv()
                kind, event = read_frame(frame, self._notes)
                if kind is not None:
                    state.timeline.server(kind, now)
                if isinstance(event, AudioCommitted):
                    if event.item_id is not None:
                        state.audio_items.append(event.item_id)
                    return
                if isinstance(event, ErrorEvent):
                    try:
                        self._raise_if_ours(event)
                    except InvalidRequestError as error:
                        if error.code != "input_audio_buffer_commit_empty":
                            raise
                        raise InvalidRequestError(
                            f"input audio {audio.source} is too short: {audio.seconds * 1000:.0f} ms, and the"
                            f" server needs at least 100 ms to commit it ({error.message})",
                            provider=self._label,
                            code=error.code,
                        ) from None
                elif event is not None:
                    self._note(event, state, now)
        raise ProviderTimeoutError(
            f"the server did not commit input audio {audio.source} within {timeout:g} s", provider=self._label
        )

    def _note(self, event: ServerEvent, state: _TurnState, now: float) -> None:
        """Side events that may come at any point of a turn."""
        match event:
            case Transcription(item_id=item_id, transcript=transcript) if item_id is not None:
                state.transcripts[item_id] = transcript
            case AudioCommitted(item_id=item_id) if item_id is not None:
                state.audio_items.append(item_id)
            case SpeechStopped():
                state.timeline.speech_end_at = now
                if state.first_request_at is None:
                    state.first_request_at = now  # voice latency counts from the end of speech
            case RateLimitsUpdated(limits=limits):
                self.rate_limits = list(limits)
            case IdleTimeout():
                state.idle_timeouts.append(event)
                state.prompting = True
            case ResponseCreated(response_id=response_id, out_of_band=False) if (
                state.prompting and state.prompt_id is None
            ):  # the prompt the timeout draws, begun before the turn's reader runs: it must not take it for the turn's
                state.prompt_id = response_id
            case _:
                pass

    async def _stream_vad_audio(self, audio: InputAudio, state: _TurnState) -> None:
        started = time.perf_counter()
        try:
            await stream_audio(self._post, self._events, audio, self._provider.config, self._detection)
        finally:
            state.metrics.input_send_ms = (time.perf_counter() - started) * 1000

    async def _first_response(self, state: _TurnState) -> ResponseResult:
        """The turn's first response: asked for by the client, or started by the server's VAD."""
        audio, state.vad_audio = state.vad_audio, None
        if state.spoken_ahead:
            return await self._read_spoken_response(state)
        if audio is None:
            await self._request_response(state)
            return await self._read_response(state)
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._stream_vad_audio, audio, state)
                if not self._detection.server_responds:
                    await self._await_committed(audio, state)
                    await self._request_response(state)
                result = await self._read_spoken_response(state)
                # The response is complete: stop sending the microphone's trailing silence.
                tasks.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # A task group wraps what failed in a group, which no retry, fallback or status knows: the turn's
            # error is the one inside (the reader's ProviderError first, else the sender's).
            raise (first_error_in(group, ProviderError) or first_error_in(group, BaseException) or group) from None
        return result

    async def _read_spoken_response(self, state: _TurnState) -> ResponseResult:
        """The response to the caller's speech; one the server cancels because the caller spoke on gives way.

        The server's VAD may end the caller's turn at a pause inside the clip and start answering; when the
        speech goes on it cancels that response (reason `turn_detected`) and answers again once the caller is
        done. Only the last response answers the turn. A server that keeps cancelling is cut off after
        `_SUPERSEDED_MAX` responses (and by the attempt's deadline).
        """
        for _ in range(_SUPERSEDED_MAX):
            try:
                return await self._read_response(state)
            except ResponseFailedError as error:
                if error.response_status != "cancelled" or error.reason != "turn_detected":
                    raise
                self._notes(f"{error}: the caller spoke on, so the next response answers the turn")
        raise ProtocolError(
            f"the server cancelled {_SUPERSEDED_MAX} responses in a row for speech it detected", provider=self._label
        )

    async def _request_response(self, state: _TurnState) -> None:
        await self._post(self._events.response_create())
        if state.first_request_at is None:
            state.first_request_at = time.perf_counter()

    async def _answer_calls(self, state: _TurnState, outcomes: list[ToolCall]) -> ResponseResult:
        """Send a tool round's outputs and read the response they lead to."""
        for outcome in outcomes:
            await self._post(self._events.function_output(outcome.call_id, outcome.output or ""))
        state.timeline.tool_call_answered(time.perf_counter())
        await self._request_response(state)
        return await self._read_response(state)

    def _remember_finished(self, response_id: str | None) -> None:
        if response_id is None:
            return
        self._finished[response_id] = None
        while len(self._finished) > _FINISHED_KEPT:
            del self._finished[next(iter(self._finished))]

    async def _read_response(self, state: _TurnState) -> ResponseResult:
        """The next response, with the server's MCP calls recorded and its approval requests answered.

        A response that ends asking approval for MCP calls is answered (`mcp_approval`) and, unless it also asks
        for function calls (whose round sends the one `response.create`), followed by the response the answers
        lead to: the two are read as one reply. More approval rounds than `max_tool_iterations` fail the turn.
        """
        result = await self._read_server_response(state)
        rounds = 0
        while True:
            for item in result.mcp:
                if isinstance(item, McpCallItem):
                    state.mcp.ran(self._redacted_call(item))
            requests = result.approval_requests
            if not requests:
                return result
            if rounds >= self._provider.config.max_tool_iterations:
                raise ToolError(
                    f"the server kept asking MCP approvals after {rounds} rounds (max_tool_iterations)",
                    provider=self._label,
                )
            rounds += 1
            for request in requests:
                await self._answer_approval(request, state)
            if result.calls:
                return result
            await self._request_response(state)
            following = await self._read_server_response(state)
            text = "\n".join(piece for piece in (result.text, following.text) if piece)
            result = ResponseResult(text, following.calls, result.usage + following.usage, following.mcp)

    async def _answer_approval(self, request: McpApprovalRequest, state: _TurnState) -> None:
        approved, failure = await self._provider.mcp_approver.decide(request)
        state.mcp.asked(request, approved, failure)
        await self._post(self._events.mcp_approval(request.request_id, approved), approval_detail(request, approved))

    def _redacted_call(self, call: McpCallItem) -> McpCallItem:
        """An MCP call as the server told it, with the API key taken out of what it returned."""
        return dataclasses.replace(call, output=self._redacted(call.output), error=self._redacted(call.error))

    async def _read_server_response(self, state: _TurnState) -> ResponseResult:
        """Events up to the turn's `response.done`, collected into a `ResponseResult`; with a barge-in planned,
        the answer is cut when the caller has heard enough of it (`_barge_in`).

        Under server VAD, a barge-in with a clip (the next turn's audio) is the caller speaking over the answer:
        the clip is streamed from the moment of the cut while the answer is read, the server stops the answer
        itself (`turn_detected`), and what arrives while the rest of the clip is said is kept, with its times,
        for the next turn (whose answer it is).
        """
        plan = state.plan if state.interruption is None else None
        if plan is None or plan.audio is None or not self._detection.server_vad:
            return await self._read_events(state, None)
        audio = load_input_audio(
            ContentPart(type="input_audio", file=plan.audio),
            self._provider.info.base_dir,
            self._provider.config.input_audio_format or "pcm16",
            self._label,
        )
        assert audio is not None
        async with anyio.create_task_group() as tasks:
            speaker = _Speaker(tasks, audio, functools.partial(self._speak_over, state))
            result = await self._read_events(state, speaker)
            await self._read_ahead(speaker)
        return result

    async def _speak_over(self, state: _TurnState, audio: InputAudio) -> None:
        # Said as a live microphone says it, in short chunks at its real rate, whatever the flow's pacing: a
        # barge-in is speech over speech, and the server must hear it start while the answer still plays.
        config = self._provider.config
        live = config.model_copy(update={"realtime_pacing": True, "audio_chunk_ms": min(config.audio_chunk_ms, 40)})
        await stream_audio(self._post, self._events, audio, live, self._detection)

    async def _read_ahead(self, speaker: _Speaker) -> None:
        """Keep what the server sends while the rest of the barge-in clip is said, for the next turn."""
        socket = self._socket
        assert socket is not None
        if not speaker.started:
            return
        self._spoken_ahead = speaker.audio.source
        while not speaker.done.is_set():
            with anyio.move_on_after(0.02):
                frame = await socket.recv()
                self._ahead.append((frame, arrived_at(socket)))

    async def _read_events(self, state: _TurnState, speaker: _Speaker | None) -> ResponseResult:
        socket = self._socket
        assert socket is not None
        timeout = self._provider.config.websocket_timeout
        timeline = state.timeline
        metrics = state.metrics
        plan = state.plan if state.interruption is None else None
        matcher = ResponseMatcher(self._finished, prompting=state.prompting, prompt_id=state.prompt_id)
        pieces: list[str] = []
        commentary_items: set[str] = set()
        lost_frames = False
        # One cancel scope whose deadline moves with the events: a per-recv fail_after costs more CPU than the
        # rest of the event handling together. Moving it re-arms a timer, so it moves only once it has fallen
        # a tenth of the timeout behind; a silent server is thus caught after 0.9 to 1.0 times the timeout.
        # Whether it has fallen behind is read from time.monotonic (a C call), not anyio.current_time (which
        # looks up the backend on every call): both clocks advance alike, only the re-arm uses anyio's.
        rearm_every = 0.1 * timeout
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + timeout) as waiting:
                rearm_at = time.monotonic() + rearm_every
                while True:
                    if time.monotonic() >= rearm_at:
                        waiting.deadline = anyio.current_time() + timeout
                        rearm_at = time.monotonic() + rearm_every
                    if plan is None:
                        frame, now = await self._recv()
                    else:
                        arrived = await self._recv_until_cut(plan, timeline)
                        if arrived is None:  # the caller barges in now
                            await self._barge_in(state, plan, pieces, answering=True, speaker=speaker)
                            plan = None
                            continue
                        frame, now = arrived
                    kind, event = read_frame(frame, self._notes)
                    match event:
                        case None:
                            lost_frames = True
                        case TextDelta() if event.item_id in commentary_items:
                            state.commentary.append(event.text)  # a reasoning model's working notes
                        case TextDelta() if matcher.prompts(event.response_id, event.item_id):
                            state.prompt_pieces.append(event.text)
                        case AudioDelta() if matcher.prompts(event.response_id, event.item_id):
                            pass  # the prompt's audio is not the answer's
                        case ResponseDone() if matcher.prompts(event.response_id, None):
                            state.prompt_done("".join(state.prompt_pieces))
                            self._remember_finished(event.response_id)
                        case TextDelta() if matcher.owns(event.response_id, event.item_id):
                            if kind in _TRANSCRIPT_DELTAS:
                                timeline.transcript(now, event.text)
                            else:
                                timeline.text(now)
                            if metrics.first_delta_ms is None and state.first_request_at is not None:
                                metrics.first_delta_ms = (now - state.first_request_at) * 1000
                            pieces.append(event.text)
                        case AudioDelta() if matcher.owns(event.response_id, event.item_id):
                            timeline.audio(now, event.audio, event.item_id)
                            state.last_audio_at = now
                            if metrics.first_audio_ms is None and state.first_request_at is not None:
                                metrics.first_audio_ms = (now - state.first_request_at) * 1000
                            state.audio.extend(event.audio)
                        case ResponseCreated():
                            matcher.created(event)
                        case OutputItemAdded():
                            matcher.item_added(event)
                            if event.phase == "commentary" and event.item_id is not None:
                                commentary_items.add(event.item_id)
                        case ResponseDone() if matcher.done(event):
                            timeline.server("response.done", now, f"{event.status}: {event.reason}")
                            self._remember_finished(matcher.response_id or event.response_id)
                            if state.interruption is not None and timeline.cut_response_done_at is None:
                                timeline.cut_response_done_at = now
                                result = self._cut_response(event, pieces, state)
                                await self._await_truncated(state)
                                return result
                            result = finish_response(
                                event,
                                "".join(pieces),
                                self._label,
                                note=self._notes,
                                lost_frames=lost_frames,
                                key=self._key,
                                max_retry_after=self._provider.config.max_retry_after,
                            )
                            if plan is not None and not result.calls:
                                await self._barge_in_after(state, plan, pieces)
                            return result
                        case ErrorEvent():
                            self._raise_if_ours(event)
                        case IdleTimeout():
                            matcher.idle_timeout()
                            self._note(event, state, now)
                        case _:
                            self._note(event, state, now)
                    if kind is not None:
                        timeline.server(kind, now)
                        if kind == "conversation.item.truncated":
                            state.truncate_confirmed = True
                        elif kind == "input_audio_buffer.speech_started" and speaker is not None and speaker.started:
                            await self._heard_until(state, now)  # the server heard the caller: playback stops
                    if plan is not None and kind == plan.after_event:
                        await self._barge_in(state, plan, pieces, answering=True, speaker=speaker)
                        plan = None
        finally:
            if state.prompting:  # the prompt goes on after the turn's response: the next reader knows it
                state.prompt_id = matcher.prompt_id
            matcher.report(self._notes)
        raise ProviderTimeoutError(f"no event from the server for {timeout:g} s", provider=self._label)

    # -- script steps after the answer ---------------------------------------------------------------------

    async def _play_steps(self, request: TurnRequest, state: _TurnState, rounds: ToolRounds) -> None:
        """The thread's steps after this answer, in order; what the agent says meanwhile joins the answer."""
        for step in request.after_answer:
            if "silence" in step:
                await self._silence(float(step["silence"]), state)
            elif "wait_for" in step:
                wanted = step["wait_for"]
                await self._wait_for(str(wanted["event"]), float(wanted["timeout"]), state)
        later = self._redacted("".join(state.later_pieces))
        if later:
            rounds.text = f"{rounds.text}\n{later}" if rounds.text else later
            if state.heard_text is not None:
                state.heard_text = f"{state.heard_text}\n{later}" if state.heard_text else later
            self._held[-1] = _message_key(Message.of("assistant", state.heard_text or rounds.text))

    async def _silence(self, seconds: float, state: _TurnState) -> None:
        """An open microphone: `seconds` of silence streamed at its real rate while the server is listened to."""
        config = self._provider.config
        audio_format = config.input_audio_format or "pcm16"
        data = silence(seconds, audio_format)
        per_second = BYTES_PER_SECOND[audio_format]

        async def speak() -> None:
            started = time.perf_counter()
            sent = 0
            for piece in chunk(data, chunk_bytes(config, audio_format)):
                sent += len(piece)
                await self._post(self._events.audio_append(piece))
                await anyio.sleep(max(0.0, started + sent / per_second - time.perf_counter()))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._listen, state)
            await speak()
            tasks.cancel_scope.cancel()
        if not self._detection.server_vad:
            await self._post(self._events.audio_clear())  # silence is no turn: the next one starts clean

    async def _listen(self, state: _TurnState) -> None:
        while True:
            await self._side_event(state)

    async def _wait_for(self, event_type: str, timeout: float, state: _TurnState) -> None:
        """Read the server's events until `event_type` comes; a step failure when it does not in `timeout`."""
        started = time.perf_counter()
        with anyio.move_on_after(timeout):
            while await self._side_event(state) != event_type:
                pass
            return
        waited = time.perf_counter() - started
        state.step_failures.append(f"wait_for {event_type}: it did not come within {timeout:g} s ({waited:.1f} s)")

    async def _side_event(self, state: _TurnState) -> str | None:
        """One event between answers: marked, its speech kept, an error about what this turn sent raised."""
        frame, now = await self._recv()
        kind, event = read_frame(frame, self._notes)
        if kind is not None:
            state.timeline.server(kind, now)
        match event:
            case TextDelta() if state.prompting:
                state.prompt_pieces.append(event.text)
            case TextDelta():
                state.later_pieces.append(event.text)
            case AudioDelta():
                state.timeline.audio(now, event.audio, event.item_id)
                state.audio.extend(event.audio)
            case ResponseDone():
                self._remember_finished(event.response_id)
                if state.prompting:
                    state.prompt_done("".join(state.prompt_pieces))
            case ErrorEvent():
                self._raise_if_ours(event)
            case None:
                pass
            case _:
                self._note(event, state, now)
        return kind

    # -- barge-in -------------------------------------------------------------------------------------------

    async def _recv_until_cut(self, plan: InterruptPlan, timeline: TurnTimeline) -> tuple[str | bytes, float] | None:
        """The next frame and its arrival, or None when the moment to barge in comes first."""
        cut_at = timeline.cut_time(plan)
        if cut_at is None:
            return await self._recv()
        wait = cut_at - time.perf_counter()
        if wait <= 0:
            return None
        with anyio.move_on_after(wait):
            return await self._recv()
        return None

    async def _barge_in(
        self,
        state: _TurnState,
        plan: InterruptPlan,
        pieces: list[str],
        *,
        answering: bool,
        speaker: _Speaker | None = None,
    ) -> None:
        """The caller speaks over the answer: stop it (when it is still coming) and cut its item at what was
        heard, as OpenAI's guide prescribes: `response.cancel`, then `conversation.item.truncate` with
        `audio_end_ms` = the playback position. Under server VAD with a clip, the caller just starts talking:
        the server stops the answer, and the cut is made when it hears the caller (`_heard_until`)."""
        timeline = state.timeline
        now = time.perf_counter()
        timeline.cut_at = now
        if speaker is not None and answering:
            speaker.start()
            since = state.first_request_at if state.first_request_at is not None else state.started
            state.interruption = Interruption(plan=plan.describe(), at_ms=round((now - since) * 1000, 1))
            state.speaking_over_from = now
            return
        heard_ms = timeline.heard_ms(now)
        if answering:
            await self._post(self._events.response_cancel())
        item_id = timeline.audio_item_id
        if item_id is not None:
            await self._post(self._events.item_truncate(item_id, heard_ms))
            state.heard_text = timeline.words.heard(heard_ms)
        else:  # a text answer: the caller has read what arrived
            state.heard_text = "".join(pieces)
        since = state.first_request_at if state.first_request_at is not None else state.started
        state.interruption = Interruption(
            plan=plan.describe(),
            at_ms=round((now - since) * 1000, 1),
            audio_end_ms=heard_ms if item_id is not None else None,
            item_id=item_id,
            reason="client_cancelled" if answering else "completed",
        )

    async def _barge_in_after(self, state: _TurnState, plan: InterruptPlan, pieces: list[str]) -> None:
        """The whole answer arrived before the moment to barge in (audio comes faster than it plays): wait for
        the moment, then cut what is still playing. Nothing is cut when the answer ends before it."""
        timeline = state.timeline
        cut_at = timeline.cut_time(plan)
        if cut_at is None:
            heard = f"{timeline.clock.received_ms:.0f} ms of audio" if timeline.clock.received_ms else "no audio"
            self._notes(f"the answer ended ({heard}) before the barge-in point ({plan.describe()}): nothing was cut")
            return
        wait = cut_at - time.perf_counter()
        if wait > 0:
            await anyio.sleep(wait)
        await self._barge_in(state, plan, pieces, answering=False)
        if state.interruption is not None:
            state.interruption.reason = "completed"
        await self._await_truncated(state)

    async def _heard_until(self, state: _TurnState, now: float) -> None:
        """The server heard the caller over the answer: playback stops here, and the item is cut at it."""
        cut = state.interruption
        timeline = state.timeline
        if cut is None or cut.audio_end_ms is not None:
            return
        heard_ms = timeline.heard_ms(now)
        item_id = timeline.audio_item_id
        if state.speaking_over_from is not None:
            state.metrics.overlap_ms = max(0.0, now - state.speaking_over_from) * 1000
        if item_id is not None:
            await self._post(self._events.item_truncate(item_id, heard_ms))
            state.heard_text = timeline.words.heard(heard_ms)
            cut.audio_end_ms, cut.item_id = heard_ms, item_id

    def _cut_response(self, event: ResponseDone, pieces: list[str], state: _TurnState) -> ResponseResult:
        """The cut response's outcome: what it said before it stopped (its calls are not made)."""
        if event.status not in ("cancelled", "completed", None):  # a failure is still the turn's error
            return finish_response(event, "".join(pieces), self._label, note=self._notes, key=self._key)
        if state.interruption is not None:
            state.interruption.reason = event.reason or event.status or "cancelled"
        streamed = "".join(pieces)
        return ResponseResult(text="".join(event.texts) or streamed, calls=[], usage=event.usage)

    async def _await_truncated(self, state: _TurnState) -> None:
        """Read up to `conversation.item.truncated` (an error about the truncate fails the turn)."""
        socket = self._socket
        assert socket is not None
        if state.interruption is None or state.interruption.item_id is None or state.truncate_confirmed:
            return
        timeout = self._provider.config.websocket_timeout
        with anyio.move_on_after(timeout):
            while True:
                frame, now = await self._recv()
                kind, event = read_frame(frame, self._notes)
                if kind is not None:
                    state.timeline.server(kind, now)
                if kind == "conversation.item.truncated":
                    return
                if isinstance(event, ErrorEvent):
                    self._raise_if_ours(event)
                elif event is not None:
                    self._note(event, state, now)
        raise ProviderTimeoutError(
            f"the server did not confirm conversation.item.truncate within {timeout:g} s", provider=self._label
        )


def _event_name(event: ServerEvent) -> str:
    return event.type if isinstance(event, OtherEvent) else type(event).__name__


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
