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

Every websockets exception is translated into `rtflow.errors` in `_translate_errors`, the one place where the
library's failures enter rtflow. The API key is never part of a message or a log line.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from rtflow.audio.files import audio_seconds, write_output_audio
from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
    RateLimitError,
)
from rtflow.log import get_logger
from rtflow.messages import AUDIO_PART_TYPES, Message, ToolCall, TurnMetrics, TurnOutput, TurnRequest
from rtflow.providers.base import Provider, ProviderInfo
from rtflow.providers.config import validate_config
from rtflow.providers.endpoints import (
    USER_AGENT,
    SecretKey,
    auth_headers,
    is_azure,
    is_loopback,
    realtime_url,
    redact,
    resolve_base_url,
    resolve_key,
)
from rtflow.providers.pricing import cost_of
from rtflow.providers.ratelimits import pause_from_realtime_limits, retry_after_header
from rtflow.providers.realtime_events import EventBuilder, RealtimeConfig
from rtflow.providers.realtime_outcomes import ResponseResult, error_from_event, finish_response
from rtflow.providers.realtime_voice import InputAudio, TurnDetection, load_input_audio, outgoing_messages, stream_audio
from rtflow.providers.tool_rounds import run_tool_rounds
from rtflow.providers.tools import ToolRunner

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["RealtimeProvider", "RealtimeSession"]


_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.output_audio_transcript.delta",
        "response.text.delta",
        "response.audio_transcript.delta",
    }
)
_AUDIO_DELTAS = frozenset({"response.output_audio.delta", "response.audio.delta"})
# One encoder for every client event: `json.dumps` with separators builds a new encoder per call.
_compact_json = json.JSONEncoder(separators=(",", ":")).encode
# A whole response (twenty-odd events) often arrives in one read; websockets pauses reading the socket whenever
# more frames than this are waiting, which would cost two system calls per response at the default of 16.
_MAX_QUEUED_FRAMES = 256
_FORBIDDEN_HINT = (
    "the server refused the connection (HTTP 403). Likely causes: the key has no access to this model, "
    "a network or proxy that blocks WebSockets, or an exhausted quota or billing limit"
)


class RealtimeProvider(Provider):
    """The OpenAI Realtime API (GA by default, `dialect: beta` for the beta shape; Azure endpoints too)."""

    kind = "openai:realtime"
    holds_sessions = True

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

    @property
    def concurrency_key(self) -> str:
        """Sessions to the same endpoint and model share limits."""
        return self.config.concurrency_key or self.url

    @property
    def max_concurrency(self) -> int | None:
        """The most sessions open at once for this key."""
        return self.config.max_concurrency

    def warnings(self) -> list[str]:
        """Settings the chosen dialect cannot honour."""
        found: list[str] = []
        if self.config.dialect == "ga" and self.config.temperature is not None:
            found.append(
                f"provider {self.info.label!r}: temperature is not supported by the GA Realtime API and is not"
                " sent (use dialect: beta for endpoints that still take it)"
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


def _message_key(message: Message) -> tuple[str, str, tuple[str, ...]]:
    """What identifies a message for the held-history comparison: role, text and any audio sources."""
    role = "system" if message.role == "developer" else message.role
    audio: tuple[str, ...] = ()
    if not isinstance(message.content, str):
        audio = tuple(part.file or part.audio or "" for part in message.content if part.type in AUDIO_PART_TYPES)
    return (role, message.text, audio)


@dataclass
class _TurnState:
    """Accumulates a turn's results across its responses."""

    started: float
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


class RealtimeSession:
    """One conversation's WebSocket, kept open across turns."""

    def __init__(self, provider: RealtimeProvider, conversation_id: str) -> None:
        self._provider = provider
        self._conversation_id = conversation_id
        self._socket: ClientConnection | None = None
        self._events = EventBuilder(provider.config.dialect)
        self._held: list[tuple[str, str, tuple[str, ...]]] = []
        self._key: SecretKey | None = None
        self._server_model: str | None = None
        self._detection = TurnDetection.of(provider.config)
        self._turn: _TurnState | None = None
        self.rate_limits: list[dict[str, Any]] = []
        """The last `rate_limits.updated` figures the server sent."""

    async def send(self, request: TurnRequest) -> TurnOutput:
        """Answer one turn, sending only what the server session does not hold yet."""
        try:
            with _translate_errors(self._provider.info.label, lambda: self._key):
                return await self._send(request)
        except ProviderError as exc:
            # What the server heard is worth keeping: a fallback that cannot take audio gets the words.
            if self._turn is not None and exc.input_transcript is None:
                exc.input_transcript = self._turn.input_transcript
            self._abort()
            raise
        except BaseException:
            # Whatever failed (error, timeout, cancellation), the server state is unknown now: the next
            # attempt starts on a fresh socket and replays the history.
            self._abort()
            raise

    async def aclose(self) -> None:
        """Close the socket; safe to call twice and after a failure."""
        socket, self._socket = self._socket, None
        self._held = []
        if socket is not None:
            with anyio.move_on_after(2, shield=True), contextlib.suppress(Exception):
                await socket.close()

    def _abort(self) -> None:
        socket, self._socket = self._socket, None
        self._held = []
        if socket is not None:
            socket.transport.abort()

    async def _send(self, request: TurnRequest) -> TurnOutput:
        state = self._turn = _TurnState(started=time.perf_counter())
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
            provider_label=self._provider.info.label,
        )
        self._held = [*wanted, _message_key(Message.of("assistant", rounds.text))]

        state.metrics.tool_rounds_ms.extend(rounds.round_ms)
        state.metrics.total_ms = (time.perf_counter() - state.started) * 1000
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
        return TurnOutput(
            text=rounds.text,
            tool_calls=rounds.tool_calls,
            usage=rounds.usage,
            cost=cost_of(self._provider.info.model, rounds.usage),
            metrics=state.metrics,
            audio=audio,
            input_transcript=state.input_transcript,
            model=self._server_model or self._provider.info.model,
            rate_limit_pause_s=pause_from_realtime_limits(self.rate_limits),
        )

    async def _connect(self) -> None:
        from websockets.asyncio.client import connect  # loaded by the first connection, not by validation

        provider = self._provider
        self._key = provider.resolve_key()
        self._events = EventBuilder(provider.config.dialect)
        get_logger().debug("realtime.connect", conversation_id=self._conversation_id, url=provider.url)
        try:
            with anyio.fail_after(provider.config.connect_timeout):
                self._socket = await connect(
                    provider.url,
                    additional_headers=provider.connect_headers(self._key),
                    user_agent_header=USER_AGENT,
                    compression=None,  # deflate costs ~64 KB of zlib state per socket; events are small JSON
                    proxy=None if is_loopback(provider.url) else True,  # True: the *_PROXY variables
                    open_timeout=None,
                    max_size=2**24,
                    max_queue=_MAX_QUEUED_FRAMES,
                    logger=_RedactingLogger(_WIRE_LOG, self._key),
                )
                first = self._decode(await self._socket.recv())
        except TimeoutError:
            raise ProviderConnectionError(
                f"no session within {provider.config.connect_timeout:g} s of connecting to {provider.url}",
                provider=provider.info.label,
            ) from None
        if first.get("type") == "error":
            raise error_from_event(first, provider.info.label)
        if first.get("type") != "session.created":
            raise ProtocolError(
                f"expected session.created as the first event, got {first.get('type')!r}",
                provider=provider.info.label,
            )
        session = first.get("session")
        if isinstance(session, dict) and isinstance(session.get("model"), str):
            self._server_model = session["model"]
        await self._post(self._events.session_update(provider.config))

    async def _post(self, event: dict[str, Any]) -> None:
        assert self._socket is not None
        await self._socket.send(_compact_json(event))

    def _decode(self, raw: str | bytes) -> dict[str, Any]:
        try:
            event = json.loads(raw)
        except ValueError:
            raise ProtocolError(
                "the server sent a frame that is not JSON", provider=self._provider.info.label
            ) from None
        if not isinstance(event, dict) or not isinstance(event.get("type"), str):
            raise ProtocolError("the server sent an event without a type", provider=self._provider.info.label)
        return event

    async def _send_message(self, message: Message, state: _TurnState, *, last: bool) -> None:
        for event in self._events.message_items(message):
            await self._post(event)
        if isinstance(message.content, str) or message.role != "user":
            return
        config = self._provider.config
        for part in message.content:
            audio = load_input_audio(
                part, self._provider.info.base_dir, config.input_audio_format or "pcm16", self._provider.info.label
            )
            if audio is None:
                continue
            state.metrics.input_audio_s = (state.metrics.input_audio_s or 0.0) + audio.seconds
            if self._detection.server_vad and last:
                state.vad_audio = audio  # the server ends this turn: streamed while its response is read
                continue
            # Earlier audio (a replayed history), or no server VAD: the client commits each piece itself.
            sent_ms = await stream_audio(self._post, self._events, audio, config, TurnDetection.of_client())
            state.metrics.input_send_ms = (state.metrics.input_send_ms or 0.0) + sent_ms
            await self._post(self._events.audio_commit())
            await self._await_committed(audio, state)

    async def _await_committed(self, audio: InputAudio, state: _TurnState) -> None:
        """Read up to `input_audio_buffer.committed`; a refused commit says which file was too short."""
        label = self._provider.info.label
        socket = self._socket
        assert socket is not None
        timeout = self._provider.config.websocket_timeout
        with anyio.move_on_after(timeout):
            while True:
                event = self._decode(await socket.recv())
                kind = event["type"]
                if kind == "input_audio_buffer.committed":
                    state.audio_items.append(str(event.get("item_id")))
                    return
                if kind == "error":
                    error = error_from_event(event, label)
                    if error.code == "input_audio_buffer_commit_empty":
                        raise InvalidRequestError(
                            f"input audio {audio.source} is too short: {audio.seconds * 1000:.0f} ms, and the server"
                            f" needs at least 100 ms to commit it ({error.message})",
                            provider=label,
                            code=error.code,
                        )
                    raise error
                self._note(event, state)
        raise ProviderTimeoutError(
            f"the server did not commit input audio {audio.source} within {timeout:g} s", provider=label
        )

    def _note(self, event: dict[str, Any], state: _TurnState) -> None:
        """Side events that may come at any point of a turn."""
        kind = event["type"]
        if kind == "conversation.item.input_audio_transcription.completed":
            state.transcripts[str(event.get("item_id"))] = str(event.get("transcript", ""))
        elif kind == "input_audio_buffer.committed":
            state.audio_items.append(str(event.get("item_id")))
        elif kind == "input_audio_buffer.speech_stopped" and state.first_request_at is None:
            state.first_request_at = time.perf_counter()  # voice latency counts from the end of speech
        elif kind == "rate_limits.updated":
            limits = event.get("rate_limits")
            self.rate_limits = limits if isinstance(limits, list) else []

    async def _stream_vad_audio(self, audio: InputAudio, state: _TurnState) -> None:
        started = time.perf_counter()
        try:
            await stream_audio(self._post, self._events, audio, self._provider.config, self._detection)
        finally:
            state.metrics.input_send_ms = (time.perf_counter() - started) * 1000

    async def _first_response(self, state: _TurnState) -> ResponseResult:
        """The turn's first response: asked for by the client, or started by the server's VAD."""
        audio, state.vad_audio = state.vad_audio, None
        if audio is None:
            await self._request_response(state)
            return await self._read_response(state)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._stream_vad_audio, audio, state)
            if not self._detection.server_responds:
                await self._await_committed(audio, state)
                await self._request_response(state)
            result = await self._read_response(state)
            # The response is complete: stop sending the microphone's trailing silence.
            tasks.cancel_scope.cancel()
        return result

    async def _request_response(self, state: _TurnState) -> None:
        await self._post(self._events.response_create())
        if state.first_request_at is None:
            state.first_request_at = time.perf_counter()

    async def _answer_calls(self, state: _TurnState, outcomes: list[ToolCall]) -> ResponseResult:
        """Send a tool round's outputs and read the response they lead to."""
        for outcome in outcomes:
            await self._post(self._events.function_output(outcome.call_id, outcome.output or ""))
        await self._request_response(state)
        return await self._read_response(state)

    async def _read_response(self, state: _TurnState) -> ResponseResult:
        """Events up to `response.done`, collected into a `ResponseResult`."""
        label = self._provider.info.label
        socket = self._socket
        assert socket is not None
        timeout = self._provider.config.websocket_timeout
        pieces: list[str] = []
        # One cancel scope whose deadline moves with the events: a per-recv fail_after costs more CPU than the
        # rest of the event handling together. Moving it re-arms a timer, so it moves only once it has fallen
        # a tenth of the timeout behind; a silent server is thus caught after 0.9 to 1.0 times the timeout.
        # Whether it has fallen behind is read from time.monotonic (a C call), not anyio.current_time (which
        # looks up the backend on every call): both clocks advance alike, only the re-arm uses anyio's.
        rearm_every = 0.1 * timeout
        with anyio.CancelScope(deadline=anyio.current_time() + timeout) as waiting:
            rearm_at = time.monotonic() + rearm_every
            while True:
                if time.monotonic() >= rearm_at:
                    waiting.deadline = anyio.current_time() + timeout
                    rearm_at = time.monotonic() + rearm_every
                event = self._decode(await socket.recv())
                kind = event["type"]
                if kind in _TEXT_DELTAS:
                    if state.metrics.first_delta_ms is None and state.first_request_at is not None:
                        state.metrics.first_delta_ms = (time.perf_counter() - state.first_request_at) * 1000
                    pieces.append(str(event.get("delta", "")))
                elif kind in _AUDIO_DELTAS:
                    state.last_audio_at = time.perf_counter()
                    if state.metrics.first_audio_ms is None and state.first_request_at is not None:
                        state.metrics.first_audio_ms = (state.last_audio_at - state.first_request_at) * 1000
                    state.audio.extend(base64.b64decode(str(event.get("delta", ""))))
                elif kind == "response.done":
                    return finish_response(event, "".join(pieces), label)
                elif kind == "error":
                    raise error_from_event(event, label)
                else:
                    self._note(event, state)

        raise ProviderTimeoutError(f"no event from the server for {timeout:g} s", provider=label)


_WIRE_LOG = logging.getLogger("rtflow.providers.realtime.wire")


class _RedactingLogger(logging.LoggerAdapter[logging.Logger]):
    """websockets' debug log shows handshake headers; this keeps the key out of it."""

    def __init__(self, logger: logging.Logger, key: SecretKey) -> None:
        super().__init__(logger, {})
        self._key = key

    def log(self, level: int, msg: object, *args: object, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.setdefault("stacklevel", 2)
            self.logger.log(level, "%s", redact(text, self._key), **kwargs)


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)


@contextlib.contextmanager
def _translate_errors(label: str, current_key: Any) -> Iterator[None]:
    """Turn every websockets (and socket) failure into an rtflow ProviderError, without leaking the key."""
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

    try:
        yield
    except InvalidStatus as exc:
        key: SecretKey | None = current_key()
        status = exc.response.status_code
        body = redact(exc.response.body.decode("utf-8", "replace")[:300], key) if exc.response.body else ""
        detail = f": {body.strip()}" if body.strip() else ""
        if status == 401:
            source = f" (from {key.source})" if key else ""
            raise AuthenticationError(
                f"the server refused the API key{source} (HTTP 401){detail}", provider=label, status=status
            ) from None
        if status == 403:
            raise AuthenticationError(f"{_FORBIDDEN_HINT}{detail}", provider=label, status=status) from None
        if status == 429:
            retry_after = retry_after_header(exc.response.headers.get("Retry-After"))
            hint = f"; retry after {retry_after:g} s" if retry_after is not None else ""
            raise RateLimitError(
                f"rate limited at the handshake (HTTP 429){hint}{detail}",
                provider=label,
                status=status,
                retry_after=retry_after,
            ) from None
        if status >= 500:
            raise ProviderConnectionError(
                f"the server failed the handshake (HTTP {status}){detail}", provider=label, status=status
            ) from None
        raise InvalidRequestError(
            f"the server refused the handshake (HTTP {status}){detail}", provider=label, status=status
        ) from None
    except ConnectionClosed as exc:
        frame = exc.rcvd
        code = frame.code if frame is not None else 1006
        reason = frame.reason if frame is not None else ""
        if code == 4000 or "beta_api_shape_disabled" in reason:
            raise InvalidRequestError(
                f"the server rejected the beta protocol (close {code} {reason}); use dialect: ga",
                provider=label,
                code="beta_api_shape_disabled",
            ) from None
        raise ProviderConnectionError(
            f"the connection closed (code {code}{' ' + reason if reason else ''})",
            provider=label,
            code=str(code),
        ) from None
    except InvalidURI as exc:
        raise InvalidRequestError(f"bad Realtime URL: {exc}", provider=label) from None
    except InvalidHandshake as exc:
        raise ProtocolError(f"the WebSocket handshake failed: {exc}", provider=label) from None
    except OSError as exc:
        raise ProviderConnectionError(f"cannot connect: {exc.strerror or type(exc).__name__}", provider=label) from None
