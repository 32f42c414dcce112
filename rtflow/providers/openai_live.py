"""`openai:live:MODEL`: GPT-Live, one full-duplex audio stream per conversation.

A Live conversation is one continuous stream, not a request per turn. A session connects on its first turn,
sends `session.start`, and from then on a microphone task it owns (`_Microphone`) sends a 20 ms
`session.input_audio.append` frame every 20 ms for as long as the conversation lasts: silence, except where a
turn's caller line (its `vars.audio` clip, pcm16 24 kHz) is placed on the stream. A reader task queues every
server frame with its arrival time, so nothing the server says is lost while a turn is not being read.

A turn's span: the caller's line occupies stream milliseconds [start, end) (frame index x 20, the session
timeline the server's transcript timestamps use). The answer is the agent's speech after the line: output
audio that arrived after the line's last frame was sent, and output transcript deltas whose `start_ms` is at or
after the line's end. The turn ends once the agent has been silent (no audible output audio, by the playback
clock) for `turn_silence_ms` after speaking, or at `turn_timeout` after the line (a backstop: a timeout error
when the agent never spoke). The input transcript is the input deltas placed on the line.

Barge-in (`interrupt` with `audio`): when the caller has heard `after_ms` of the answer, the next turn's clip is
put on the stream at once, over the agent's speech; the turn records how long the agent went on sending audible
audio (`yield_ms`) and ends when the agent has yielded (or the clip is over). The next turn, whose clip that is,
does not say it again. Delegation: a `session.delegation.created` for the client runs the configured handler and
sends its result back as `session.commentary.append`; delegations to a backend are recorded as they come.
`session.closed` fails the turn in flight (ProviderConnectionError naming the reason); the next turn reconnects.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from rtflow.audio.files import write_output_audio
from rtflow.errors import (
    InvalidRequestError,
    ProviderConnectionError,
    ProviderError,
    ProviderTimeoutError,
)
from rtflow.log import get_logger
from rtflow.messages import (
    ContentPart,
    EventMark,
    Interruption,
    InterruptPlan,
    ToolCall,
    TurnMetrics,
    TurnOutput,
    TurnRequest,
)
from rtflow.providers.base import Provider, ProviderInfo
from rtflow.providers.config import validate_config
from rtflow.providers.endpoints import SecretKey, auth_headers, is_loopback, redact, resolve_base_url, resolve_key
from rtflow.providers.live_wire import (
    FRAME_BYTES,
    FRAME_MS,
    ClientEvents,
    Closed,
    DelegationCreated,
    LiveConfig,
    LiveError,
    OutputAudio,
    Started,
    TranscriptDelta,
    UsageUpdated,
    live_url,
    read_live_event,
)
from rtflow.providers.playback import first_audible_ms
from rtflow.providers.pricing import cost_of_seconds, minute_price
from rtflow.providers.protocol_notes import ProtocolNotes
from rtflow.providers.realtime_outcomes import error_from_body
from rtflow.providers.realtime_socket import arrived_at, open_socket, translate_errors
from rtflow.providers.realtime_timing import TurnTimeline
from rtflow.providers.realtime_voice import InputAudio, load_input_audio, outgoing_messages
from rtflow.providers.tools import ToolRunner

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["LiveProvider", "LiveSession"]

_compact_json = json.JSONEncoder(separators=(",", ":")).encode
_SPAN_SLACK_MS = 100
"""Transcript timestamps this close before the line's end still count as the answer's (rounding, jitter)."""
_POLL_S = 0.02
"""How often a turn looks at its clocks when no event comes (a frame's length)."""
_FOLDED = frozenset({"session.output_audio.delta", "session.output_transcript.delta", "session.input_transcript.delta"})
Item = tuple[str | bytes | ProviderError, float]
"""A queued server frame (or the failure that ended the socket) and when it arrived."""


class LiveProvider(Provider):
    """GPT-Live over its primary WebSocket (`<base>/live/sessions`)."""

    kind = "openai:live"
    holds_sessions = True
    script_steps = frozenset({"interrupt"})

    def __init__(self, info: ProviderInfo) -> None:
        super().__init__(info)
        self.config = validate_config(LiveConfig, info.config, info.label)
        self.base_url = resolve_base_url(self.config.api_base_url, self.config.api_host)
        self.url = live_url(self.base_url)
        self.tools = ToolRunner(
            self.config.function_handlers, self.config.function_call_handler, info.base_dir, self.config.tool_timeout
        )

    @property
    def endpoint(self) -> str:
        return self.base_url

    @property
    def instructions(self) -> str | None:
        return self.config.instructions

    @property
    def concurrency_key(self) -> str:
        """Sessions to the same endpoint and model share limits."""
        return self.config.concurrency_key or f"{self.url}#{self.info.model}"

    @property
    def max_concurrency(self) -> int | None:
        return self.config.max_concurrency

    @property
    def per_minute_limits(self) -> tuple[float | None, float | None]:
        return self.config.rpm, self.config.tpm

    def warnings(self) -> list[str]:
        """Common keys GPT-Live has no setting for."""
        return [
            f"provider {self.info.label!r}: {key} has no GPT-Live counterpart and is not sent"
            for key in ("temperature", "tool_choice")
            if getattr(self.config, key) is not None
        ]

    def check_ready(self) -> None:
        self.resolve_key()

    def resolve_key(self) -> SecretKey:
        """The API key (resolved per connection, so `validate` works without one)."""
        return resolve_key(self.config.api_key, self.config.api_key_env, self.info.label)

    def connect_headers(self, key: SecretKey) -> dict[str, str]:
        """Bearer auth and the user's extra headers, as `client.live.connect()` sends (no beta header)."""
        headers = auth_headers(key, azure=False, extra=self.config.headers)
        headers.pop("User-Agent", None)  # sent by websockets' own user_agent_header
        return headers

    def delegation_handler(self) -> str:
        """The tool name a client delegation runs: config `delegation_handler`, else the only handler."""
        if self.config.delegation_handler:
            return self.config.delegation_handler
        if len(self.config.function_handlers) == 1:
            return next(iter(self.config.function_handlers))
        return "delegation"

    def session(self, conversation_id: str) -> LiveSession:
        """A session that connects on its first turn."""
        return LiveSession(self, conversation_id)


@dataclass
class _Line:
    """A caller line on the stream: which frames it occupies, and when its first and last were sent."""

    source: str
    first_frame: int
    frames: int
    seconds: float
    started_at: float | None = None
    done_at: float | None = None

    @property
    def start_ms(self) -> int:
        return self.first_frame * FRAME_MS

    @property
    def end_ms(self) -> int:
        return (self.first_frame + self.frames) * FRAME_MS


class _Microphone:
    """The caller's microphone: one frame every 20 ms on an absolute schedule (a late frame is sent at once, so
    the stream's length always matches the time elapsed), speech where a line was placed, silence elsewhere."""

    def __init__(self, send: Callable[[str], Awaitable[None]]) -> None:
        self._send = send
        self._pending: collections.deque[bytes] = collections.deque()
        self._lines: list[_Line] = []
        self._taken = 0
        """Frames taken off the schedule (the index of the next one)."""
        self.frames_sent = 0
        self._silence = _compact_json(ClientEvents.audio_append(bytes(FRAME_BYTES)))

    def say(self, audio: InputAudio) -> _Line:
        """Place `audio` on the stream after whatever is still to be said; its frames are padded to 20 ms."""
        data = audio.data + bytes(-len(audio.data) % FRAME_BYTES)
        frames = [data[i : i + FRAME_BYTES] for i in range(0, len(data), FRAME_BYTES)]
        line = _Line(audio.source, self._taken + len(self._pending), len(frames), audio.seconds)
        self._pending.extend(frames)
        self._lines.append(line)
        return line

    async def run(self) -> None:
        started = time.perf_counter()
        while True:
            delay = started + self._taken * FRAME_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            index = self._taken
            self._taken += 1
            frame = self._pending.popleft() if self._pending else None
            await self._send(self._silence if frame is None else _compact_json(ClientEvents.audio_append(frame)))
            self.frames_sent += 1
            self._mark(index, time.perf_counter())

    def _mark(self, index: int, now: float) -> None:
        for line in self._lines:
            if line.first_frame == index:
                line.started_at = now
            if line.first_frame + line.frames - 1 == index:
                line.done_at = now
        self._lines = [line for line in self._lines if line.done_at is None]


@dataclass
class _Turn:
    """What one turn gathers while its events are read."""

    started: float
    timeline: TurnTimeline
    line: _Line
    metrics: TurnMetrics = field(default_factory=TurnMetrics)
    audio: bytearray = field(default_factory=bytearray)
    text: list[str] = field(default_factory=list)
    heard: list[str] = field(default_factory=list)
    heard_text: str | None = None
    input_text: list[str] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    speech_until: float | None = None
    """When the last audible output audio of the answer will have played."""
    awaiting_speech: bool = False
    """A delegation is under way: the turn does not end before the agent speaks again."""
    plan: InterruptPlan | None = None
    cut_at: float | None = None
    cut_ms: int | None = None
    """The session-timeline position where the barge-in clip starts."""
    ahead: _Line | None = None
    last_audible_at: float | None = None
    """When the last audible output audio arrived (the end of a yield is measured with it)."""
    interruption: Interruption | None = None
    billed_before: float = 0.0
    """The session's billable seconds when the turn began: the turn is billed what the server adds to it."""


class LiveSession:
    """One conversation's Live stream: a socket, a microphone task and a reader task, kept across turns."""

    def __init__(self, provider: LiveProvider, conversation_id: str) -> None:
        self._provider = provider
        self._label = provider.info.label
        self._conversation_id = conversation_id
        self._socket: ClientConnection | None = None
        self._events = ClientEvents()
        self._key: SecretKey | None = None
        self._notes = ProtocolNotes(self._label, log_event="live.protocol_warning")
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._mic: _Microphone | None = None
        self._sent: set[str] = set()
        self._turn: _Turn | None = None
        self._ahead: _Line | None = None
        """A barge-in clip already on the stream: the next turn's line, which it does not say again."""
        self._connect_ms: float | None = None
        self.server_model: str | None = None
        self.usage_seconds: float | None = None
        """The session's billable seconds so far, as the last `session.usage.updated` said."""

    # -- the turn ---------------------------------------------------------------------------------------------

    async def send(self, request: TurnRequest) -> TurnOutput:
        """Place the turn's caller line on the stream and read the agent's answer to it."""
        self._notes = ProtocolNotes(self._label, log_event="live.protocol_warning", key=self._key)
        config = self._provider.config
        started = time.perf_counter()
        timeline = TurnTimeline(started, "pcm16", paced=config.playback == "realtime")
        turn: _Turn | None = None
        try:
            with translate_errors(self._label, lambda: self._key, max_retry_after=config.max_retry_after):
                carried = await self._ready(timeline)
                audio = self._clip(request)
                turn = self._turn = _Turn(started, timeline, self._place(audio), plan=request.interrupt)
                turn.billed_before = self.usage_seconds or 0.0
                turn.metrics.connect_ms = self._connect_ms
                turn.metrics.input_audio_s = audio.seconds
                await self._listen(turn, carried)
        except ProviderError as exc:
            if turn is not None and turn.input_text and exc.input_transcript is None:
                exc.input_transcript = self._redacted("".join(turn.input_text))
            self._abort()
            raise
        except BaseException:
            self._abort()
            raise
        return self._output(request, turn)

    async def aclose(self) -> None:
        """Stop the microphone, ask the server to close the session, close the socket; safe to call twice."""
        socket, self._socket = self._socket, None
        self._stop_tasks()
        if socket is not None:
            with anyio.move_on_after(2, shield=True), contextlib.suppress(Exception):
                await socket.send(_compact_json(self._events.session_close()))
                await socket.close()

    def _abort(self) -> None:
        socket, self._socket = self._socket, None
        self._stop_tasks()
        if socket is not None:
            socket.transport.abort()

    def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self._mic = None
        self._ahead = None

    def _redacted(self, text: str | None) -> str | None:
        return redact(text, self._key) if text else text

    async def _ready(self, timeline: TurnTimeline) -> list[Item]:
        """A live session for this turn: the frames queued since the last turn are carried into it, unless they
        say the session ended, in which case a new one is opened (the stream cannot be resumed)."""
        self._connect_ms = None
        carried: list[Item] = []
        while not self._queue.empty():
            carried.append(self._queue.get_nowait())
        ended = [item for item in carried if isinstance(item[0], ProviderError) or _is_closed(item[0])]
        if self._socket is not None and ended:
            self._notes("the Live session ended between turns; a new session was opened")
            self._abort()
        if self._socket is None:
            connect_started = time.perf_counter()
            await self._connect(timeline)
            self._connect_ms = (time.perf_counter() - connect_started) * 1000
            return []
        return carried

    def _clip(self, request: TurnRequest) -> InputAudio:
        """The caller's line: the audio of the turn's last user message (`vars.audio` or an audio part)."""
        messages = outgoing_messages(request, self._provider.info.base_dir)
        for message in reversed(messages):
            if message.role != "user" or isinstance(message.content, str):
                continue
            for part in message.content:
                audio = load_input_audio(part, self._provider.info.base_dir, "pcm16", self._label)
                if audio is not None:
                    return audio
        raise InvalidRequestError(
            "a GPT-Live turn needs the caller's audio (vars.audio, or an input_audio part in the user message)",
            provider=self._label,
        )

    def _place(self, audio: InputAudio) -> _Line:
        """The turn's line on the stream: the barge-in clip already being said, or this clip, placed now."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and ahead.source == audio.source:
            return ahead
        assert self._mic is not None
        return self._mic.say(audio)

    # -- connecting -----------------------------------------------------------------------------------------

    async def _connect(self, timeline: TurnTimeline) -> None:
        provider = self._provider
        self._key = self._notes.key = provider.resolve_key()
        self._events = ClientEvents()
        self._sent = set()
        self._queue = asyncio.Queue()
        get_logger().debug("live.connect", conversation_id=self._conversation_id, url=provider.url)
        try:
            with anyio.fail_after(provider.config.connect_timeout):
                self._socket = await open_socket(
                    provider.url, provider.connect_headers(self._key), self._key, proxy=not is_loopback(provider.url)
                )
                await self._post(self._events.session_start(provider.config, provider.info.model), timeline)
                await self._await_started(timeline)
        except TimeoutError:
            raise ProviderConnectionError(
                f"no session.started within {provider.config.connect_timeout:g} s of connecting to {provider.url}",
                provider=self._label,
            ) from None
        self._mic = _Microphone(self._send_frame)
        self._tasks = [
            asyncio.get_running_loop().create_task(self._guarded(self._speak)),
            asyncio.get_running_loop().create_task(self._guarded(self._read)),
        ]

    async def _await_started(self, timeline: TurnTimeline) -> None:
        """Read up to `session.started`; an error or a close before it fails the connection."""
        socket = self._socket
        assert socket is not None
        while True:
            kind, event = read_live_event(await socket.recv(), self._notes)
            if kind is not None:
                timeline.server(kind, time.perf_counter())
            match event:
                case Started(model=model):
                    self.server_model = model
                    return
                case LiveError():
                    self._raise_error(event)
                case Closed(reason=reason):
                    raise self._closed_error(reason)
                case None:
                    pass
                case _:
                    self._notes(f"{kind} arrived before session.started and was skipped")

    async def _guarded(self, work: Callable[[], Awaitable[None]]) -> None:
        """Run a background task; its failure (translated) is queued for the turn that reads next."""
        try:
            with translate_errors(self._label, lambda: self._key):
                await work()
        except ProviderError as exc:
            self._queue.put_nowait((exc, time.perf_counter()))

    async def _speak(self) -> None:
        """The microphone, until the socket closes. A frame that finds the socket closed ends it quietly: the
        reader reports the close itself, after the frames that came before it, `session.closed` and its reason
        among them; the microphone's own error could be queued first and hide that reason."""
        from websockets.exceptions import ConnectionClosed

        assert self._mic is not None
        try:
            await self._mic.run()
        except ConnectionClosed:
            return

    async def _read(self) -> None:
        socket = self._socket
        assert socket is not None
        while True:
            frame = await socket.recv()
            self._queue.put_nowait((frame, arrived_at(socket)))

    async def _send_frame(self, text: str) -> None:
        socket = self._socket
        assert socket is not None
        timeout = self._provider.config.websocket_timeout
        with anyio.move_on_after(timeout) as waiting:
            await socket.send(text)
        if waiting.cancelled_caught:
            raise ProviderTimeoutError(f"the server read no audio for {timeout:g} s", provider=self._label)

    async def _post(self, event: dict[str, Any], timeline: TurnTimeline) -> None:
        self._sent.add(event["event_id"])
        timeline.client(event["type"], time.perf_counter())
        await self._send_frame(_compact_json(event))

    def _raise_error(self, event: LiveError) -> None:
        """Raise what an `error` event means, unless it names a client event this session did not send."""
        named = event.error.event_id
        if named is not None and named not in self._sent:
            self._notes(f"an error about event {named!r}, which this session did not send, was ignored")
            return
        config = self._provider.config
        raise error_from_body(event.error, self._label, key=self._key, max_retry_after=config.max_retry_after)

    def _closed_error(self, reason: str) -> ProviderError:
        said = reason[:80]
        return ProviderConnectionError(f"the Live session closed: {said}", provider=self._label, code=said)

    # -- reading a turn ---------------------------------------------------------------------------------------

    async def _next(self, carried: list[Item], timeout: float) -> Item | None:
        if carried:
            return carried.pop(0)
        with anyio.move_on_after(max(0.0, timeout)):
            return await self._queue.get()
        return None

    async def _listen(self, turn: _Turn, carried: list[Item]) -> None:
        """Read events until the answer's span ends (see the module's docstring)."""
        config = self._provider.config
        silence_s = config.turn_silence_ms / 1000
        while True:
            now = time.perf_counter()
            if turn.plan is not None and turn.cut_at is None:
                self._maybe_barge_in(turn, now)
            ends_at = self._ends_at(turn, silence_s)
            if ends_at is not None and now >= ends_at:
                return
            item = await self._next(carried, min(_POLL_S, (ends_at or now + _POLL_S) - now))
            if item is None:
                continue
            body, arrived = item
            if isinstance(body, ProviderError):
                raise body
            await self._handle(turn, body, arrived)

    def _ends_at(self, turn: _Turn, silence_s: float) -> float | None:
        """When the turn ends as things stand: silence after speech, the barge-in clip's end, or the backstop
        (which raises when the agent never spoke)."""
        line = turn.line
        if line.done_at is None:
            return None
        timeout = self._provider.config.turn_timeout
        backstop = line.done_at + timeout
        if time.perf_counter() >= backstop:
            if turn.speech_until is None:
                raise ProviderTimeoutError(
                    f"the agent said nothing within {timeout:g} s of the caller's line", provider=self._label
                )
            self._notes("turn_timeout ended the turn while the agent was still speaking")
            return backstop
        ends = [backstop]
        if turn.speech_until is not None and not turn.awaiting_speech:
            ends.append(turn.speech_until + silence_s)
        if turn.ahead is not None and turn.ahead.done_at is not None:
            ends.append(turn.ahead.done_at)  # the barge-in clip is over: what follows answers the next turn
        return min(ends)

    async def _handle(self, turn: _Turn, frame: str | bytes, arrived: float) -> None:
        kind, event = read_live_event(frame, self._notes)
        if kind is not None:
            turn.timeline.server(kind, arrived, _detail(event))
        line = turn.line
        answering = line.done_at is not None and arrived >= line.done_at
        match event:
            case OutputAudio(audio=audio) if answering:
                self._audio(turn, audio, arrived)
            case TranscriptDelta(side="output") as delta if delta.start_ms >= line.end_ms - _SPAN_SLACK_MS:
                if turn.ahead is None or delta.start_ms < turn.ahead.end_ms:
                    turn.timeline.transcript(arrived, delta.text)
                    turn.text.append(delta.text)
                    if turn.cut_ms is None or delta.start_ms < turn.cut_ms:
                        turn.heard.append(delta.text)
            case TranscriptDelta(side="input") as delta if self._on_line(delta, line):
                turn.input_text.append(delta.text)
            case DelegationCreated():
                await self._delegated(turn, event)
            case UsageUpdated(seconds=seconds):
                self.usage_seconds = seconds
            case Closed(reason=reason):
                raise self._closed_error(reason)
            case LiveError():
                self._raise_error(event)
            case _:
                pass

    def _on_line(self, delta: TranscriptDelta, line: _Line) -> bool:
        """Whether an input transcript delta is of this line (it may be stamped a little after its audio)."""
        tail = self._provider.config.turn_silence_ms
        return line.start_ms - _SPAN_SLACK_MS <= delta.start_ms < line.end_ms + tail

    def _audio(self, turn: _Turn, audio: bytes, arrived: float) -> None:
        """Answer audio: played on the turn's clock; audible audio moves the end of the agent's speech."""
        timeline = turn.timeline
        timeline.audio(arrived, audio, None)
        turn.audio.extend(audio)
        if first_audible_ms(audio, "pcm16") is None:
            return
        turn.speech_until = timeline.clock.ends_at() or arrived
        turn.awaiting_speech = False
        if turn.metrics.first_audio_ms is None:
            turn.metrics.first_audio_ms = (arrived - (turn.line.done_at or turn.started)) * 1000
        turn.last_audible_at = arrived

    # -- delegation -------------------------------------------------------------------------------------------

    async def _delegated(self, turn: _Turn, event: DelegationCreated) -> None:
        """Run a client delegation's handler and send its result back; record a backend's delegation."""
        turn.awaiting_speech = True
        if event.target != "client":
            arguments = json.dumps({"target": event.target, "response_id": event.response_id})
            turn.tool_calls.append(ToolCall(call_id=event.delegation_id, name=event.target, arguments=arguments))
            return
        name = self._provider.delegation_handler()
        transcript = self._redacted("".join(turn.input_text)) or ""
        arguments = json.dumps({"delegation_id": event.delegation_id, "transcript": transcript})
        started = time.perf_counter()
        call = await self._provider.tools.run(event.delegation_id, name, arguments)
        turn.tool_calls.append(call)
        await self._post(self._events.commentary_append(call.output or "", event.delegation_id), turn.timeline)
        turn.timeline.tool_call_answered(time.perf_counter())
        turn.metrics.tool_rounds_ms.append((time.perf_counter() - started) * 1000)

    # -- barge-in ---------------------------------------------------------------------------------------------

    def _maybe_barge_in(self, turn: _Turn, now: float) -> None:
        """When the caller has heard enough of the answer, the next turn's clip goes on the stream at once."""
        plan = turn.plan
        assert plan is not None
        cut_at = turn.timeline.cut_time(plan)
        if cut_at is None or now < cut_at:
            return
        timeline = turn.timeline
        heard_ms = timeline.heard_ms(now)
        turn.cut_at = timeline.cut_at = now
        turn.heard_text = timeline.words.heard(heard_ms)
        since = turn.line.done_at or turn.started
        turn.interruption = Interruption(
            plan=plan.describe(), at_ms=round((now - since) * 1000, 1), audio_end_ms=heard_ms, reason="turn_detected"
        )
        if plan.audio is None:
            self._notes("a GPT-Live barge-in needs the next turn's clip (interrupt audio): nothing was said over it")
            return
        audio = load_input_audio(
            ContentPart(type="input_audio", file=plan.audio), self._provider.info.base_dir, "pcm16", self._label
        )
        assert audio is not None and self._mic is not None
        turn.ahead = self._ahead = self._mic.say(audio)
        turn.cut_ms = turn.ahead.start_ms

    # -- the record -------------------------------------------------------------------------------------------

    def _output(self, request: TurnRequest, turn: _Turn | None) -> TurnOutput:
        assert turn is not None
        metrics, timeline, line = turn.metrics, turn.timeline, turn.line
        metrics.total_ms = (time.perf_counter() - turn.started) * 1000
        timeline.speech_end_at = line.done_at
        if turn.cut_at is not None:
            # The caller starts when the clip's first frame goes out; the agent yields with its last audible audio.
            caller_from = turn.ahead.started_at if turn.ahead is not None and turn.ahead.started_at else turn.cut_at
            timeline.cut_at = caller_from
            last = turn.last_audible_at
            timeline.last_audio_after_cut = last if last is not None and last > caller_from else None
        cut = turn.interruption
        timeline.fill(metrics, line.done_at, cut.audio_end_ms if cut is not None else None)
        metrics.caller_speaking_ms = line.seconds * 1000
        if line.started_at is not None and line.done_at is not None:
            metrics.input_send_ms = (line.done_at - line.started_at) * 1000
        audio = None
        if turn.audio:
            metrics.output_audio_s = len(turn.audio) / 48_000
            if request.artifact_dir:
                stem = f"{_safe_name(request.conversation_id)}-turn{request.turn_index + 1}"
                audio = write_output_audio(bytes(turn.audio), Path(request.artifact_dir), stem, "pcm16")
        if turn.plan is not None and turn.cut_at is None:
            self._notes(f"the answer ended before the barge-in point ({turn.plan.describe()}): nothing was cut")
        output = TurnOutput(
            text=self._redacted("".join(turn.text)) or "",
            tool_calls=turn.tool_calls,
            cost=None,
            metrics=metrics,
            audio=audio,
            input_transcript=self._redacted("".join(turn.input_text)) or None,
            model=self.server_model or self._provider.info.model,
        )
        if cut is not None:
            # What was heard: the answer's words stamped before the clip went on the stream (else by the clock).
            heard = "".join(turn.heard) if turn.cut_ms is not None else turn.heard_text
            output.heard_text = self._redacted(heard) or ""
        output.interruption = cut
        output.events = _fold(timeline.marks())
        self._price(output, turn)
        output.protocol_warnings = self._notes.kept()
        return output

    def _price(self, output: TurnOutput, turn: _Turn) -> None:
        """The turn's cost: the session seconds the server billed during it, at the per-minute price (the config's,
        else the table's). Which price was used is written on the turn's last usage mark."""
        price = minute_price(self._provider.info.model, self._provider.config.price_per_minute_usd)
        if price is None or self.usage_seconds is None:
            return
        billed = max(self.usage_seconds - turn.billed_before, 0.0)
        output.cost = cost_of_seconds(billed, price)
        usage_marks = [mark for mark in output.events if mark.type == "session.usage.updated"]
        if usage_marks:
            usage_marks[-1].detail = (
                f"{self.usage_seconds:g} s billed so far; this turn {billed:g} s = ${output.cost:.6f}"
                f" at {price.describe()}"
            )


def _is_closed(body: str | bytes | ProviderError) -> bool:
    """Whether a queued frame is `session.closed` (looked for without parsing every frame)."""
    if isinstance(body, ProviderError):
        return False
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    return '"session.closed"' in text


def _detail(event: object) -> str | None:
    """What an event's mark says: the billable seconds so far, a close's reason, a delegation's target."""
    match event:
        case UsageUpdated(seconds=seconds):
            return f"{seconds:g} s billed so far"
        case Closed(reason=reason):
            return reason[:80]
        case DelegationCreated(target=target, delegation_id=delegation_id):
            return f"{target}: {delegation_id[:40]}"
        case _:
            return None


def _fold(marks: list[EventMark]) -> list[EventMark]:
    """Runs of one Live delta type as one mark with a count (fifty audio deltas a second are one run)."""
    folded: list[EventMark] = []
    for mark in marks:
        last = folded[-1] if folded else None
        if last is not None and mark.type in _FOLDED and last.type == mark.type and last.source == mark.source:
            last.count += mark.count
            last.last_ms = mark.last_ms or mark.at_ms
            continue
        folded.append(mark)
    return folded


def _safe_name(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text)
