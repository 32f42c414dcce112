"""GPT-Live: the full-duplex WebSocket at `/v1/live/sessions`, shaped after the `openai.types.live` events.

The client connects (Bearer key, no query parameters), sends `session.start` (model, instructions, audio
format, delegation), waits for `session.started` and then streams `session.input_audio.append` continuously,
silence included. There is no `response.create`, cancel, truncate or turn-done event: the simulator decides
when to speak.

A turn: the energy VAD (`rtflow.sim.audio.EnergyVad`) hears the caller's speech start and, after a pause of
`SimConfig.live_silence_ms`, its end. The utterance's "transcript" is its speech duration (`audio of 0.60
seconds`), sent as `session.input_transcript.delta` events, one per word, spread evenly over the speech. The
answer, `You said: "audio of 0.60 seconds"`, is spoken as the simulator's word tones: one
`session.output_audio.delta` per 20 ms of audio, paced at the rate it plays, each word's
`session.output_transcript.delta` just before the delta that holds its start. After each answer (finished or
cut), `session.usage.updated`.

The session timeline (every `start_ms`, `end_ms`, `offset_ms`) is the caller's audio clock: milliseconds of
input audio received since `session.started`. A Live caller streams 20 ms every 20 ms, so it is the wall clock,
and it makes the timestamps reproducible from the audio. An output word's `start_ms` is that clock when the
answer's first audio delta left, plus where the word starts in the answer's audio.

Barge-in: when the caller starts speaking while the simulator speaks, it stops `live_yield_ms` later (no more
audio or transcript deltas of that answer), unless `live_talks_over` is on: then it finishes, and the answer
to the interruption follows.

Delegation: in a session started with `delegation: {"type": "client"}`, the caller's utterances numbered in
`live_delegate_on` (default: the 2nd) are not answered; the simulator sends `session.delegation.created`
(target `client`; the types carry no task text or arguments) and waits for the client's
`session.commentary.append` with that `delegation_id`, acknowledges it (`session.commentary.appended`) and says
`The tool said: <content>`. `session.thinking.append` and `session.instructions.append` are acknowledged and
stay silent; commentary without a delegation is acknowledged and not spoken.

`session.close` ends with `session.closed` (reason `close_requested`, final usage) and close 1000; a session
with no client event for `live_idle_timeout_s` ends the same way with reason `expired`. Usage is the session's
duration in whole seconds of the caller's audio clock (Live bills per minute); a `state` log record
`live.usage` gives the input and output audio seconds behind it.

Every event in and out goes to the event log with endpoint `live` (connections `live-N`); `state` records
`live.speech_started` (the VAD heard the caller start; `speaking` says whether the simulator was speaking) and
`live.answer` (an answer ended: its text, the ms of it spoken, whether it was cut) are not on the wire.

Not simulated: 16 kHz PCM (only 24 kHz PCM, G.711 u-law and A-law), Responses and Decisions delegation,
`session.update`, mute, audio fixtures, decisions, faults. Those client events get an `error`
(`unsupported_event`), and the session stays open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
from anyio.abc import TaskGroup

from rtflow.audio.formats import BYTES_PER_SECOND
from rtflow.sim.audio import EnergyVad, input_transcript
from rtflow.sim.ids import IdSource
from rtflow.sim.runtime import SimRuntime
from rtflow.sim.uvicorn_glue import RECEIVED_AT
from rtflow.sim.voice import SpokenAnswer
from rtflow.sim.wire import ASGISend, FrameWriter, dump, frame_recorder

__all__ = ["LIVE_PATHS", "LiveConnection", "serve_live"]

ASGIReceive = Callable[[], Awaitable[Mapping[str, Any]]]
LIVE_PATHS = frozenset({"/v1/live/sessions"})
_ENDPOINT = "live"
_CHUNK_MS = 20
_SESSION_LIFETIME_S = 3600
_DEFAULT_FORMAT = {"type": "audio/pcm", "rate": 24000}
_DEFAULT_VOICE = "marin"
_UNSUPPORTED = frozenset(
    {
        "session.update",
        "session.input_audio.mute",
        "session.input_audio.unmute",
        "session.output_audio.fixture.play",
        "decision.create",
        "decision.item.create",
        "decision.item.delete",
        "response.item.create",
        "response.create",
    }
)
_KEY_HELP = "You can find your API key at https://platform.openai.com/account/api-keys."


class LiveRequestError(Exception):
    """A client event the session refuses: becomes an `error` event, and the session stays open."""

    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.param = param


def simulator_format(audio_format: Any) -> str:
    """The simulator's name for a Live `audio.format` (`pcm16`, `g711_ulaw`, `g711_alaw`), or a LiveRequestError."""
    if not isinstance(audio_format, dict):
        raise LiveRequestError("invalid_value", "Invalid 'session.audio.format': expected an object.", "session.audio")
    kind, rate = audio_format.get("type"), audio_format.get("rate")
    if kind == "audio/pcm" and rate == 24000:
        return "pcm16"
    if kind in ("audio/pcmu", "audio/pcma") and rate == 8000:
        return "g711_ulaw" if kind == "audio/pcmu" else "g711_alaw"
    raise LiveRequestError(
        "unsupported_value",
        f"The simulator supports audio/pcm at 24000 Hz and G.711 at 8000 Hz, not {kind} at {rate} Hz.",
        "session.audio.format",
    )


def _delegation(value: Any) -> dict[str, Any] | None:
    """The resolved delegation: only client delegation (or none) is simulated."""
    if value is None:
        return None
    if not isinstance(value, dict) or value.get("type") != "client":
        kind = value.get("type") if isinstance(value, dict) else value
        raise LiveRequestError(
            "unsupported_value",
            f"The simulator supports client delegation only, not {kind!r}.",
            "session.delegation",
        )
    resolved: dict[str, Any] = {"type": "client"}
    if isinstance(value.get("acknowledgement_delay_ms"), int):
        resolved["acknowledgement_delay_ms"] = value["acknowledgement_delay_ms"]
    return resolved


def spread_words(text: str, start_ms: int, end_ms: int) -> list[tuple[str, int, int]]:
    """A transcript as (delta, start, end) per word, its span shared evenly: the simulator hears no words."""
    words = text.split(" ")
    step = (end_ms - start_ms) / len(words)
    return [
        (
            word if index == len(words) - 1 else word + " ",
            round(start_ms + index * step),
            round(start_ms + (index + 1) * step),
        )
        for index, word in enumerate(words)
    ]


async def serve_live(runtime: SimRuntime, api_key: str | None, path: str, receive: ASGIReceive, send: ASGISend) -> None:
    """Accept a Live socket (its `websocket.connect` already received) and serve it, or refuse a bad key."""
    await send({"type": "websocket.accept"})
    conn_id = runtime.next_connection_id(_ENDPOINT)
    connection = LiveConnection(runtime, send, receive, conn_id)
    connection.log("in", "<connect>", {"path": path})
    problem = runtime.key_error(api_key)
    if problem is not None:
        told = "You didn't provide an API key." if problem == "missing_api_key" else "Incorrect API key provided."
        await connection.error("invalid_api_key", f"{told} {_KEY_HELP}", None, None)
        await connection.close_socket(3000, "invalid_api_key")
        return
    await connection.serve()


class LiveConnection:
    """One Live session: the reader of client events, the VAD, the speaker, the idle backstop."""

    def __init__(self, runtime: SimRuntime, send: ASGISend, receive: ASGIReceive, conn_id: str) -> None:
        self.runtime = runtime
        self.config = runtime.config
        self.conn_id = conn_id
        self._wire = FrameWriter(send, frame_recorder(runtime, conn_id, _ENDPOINT))
        self._receive = receive
        self._ids = IdSource(runtime.config.seed, conn_id)
        self._log = runtime.log if runtime.log.enabled else None
        self.resource: dict[str, Any] | None = None
        self.audio_format = "pcm16"
        self._vad: EnergyVad | None = None
        self._input_bytes = 0
        self._output_ms = 0.0
        self._utterances = 0
        self._speech_start_ms = 0
        self._answers: asyncio.Queue[str] = asyncio.Queue()
        self._speaking = False
        self._stop_at: float | None = None
        self._delegations: set[str] = set()
        self._last_event = time.monotonic()
        self._closed = False
        self._tasks: TaskGroup | None = None
        self._speaker_scope = anyio.CancelScope()
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "session.start": self._start,
            "session.input_audio.append": self._audio_append,
            "session.commentary.append": self._commentary,
            "session.thinking.append": self._silent_context,
            "session.instructions.append": self._silent_context,
            "session.close": self._close_requested,
        }

    # ---- wire ---------------------------------------------------------------------------------------------

    def log(self, direction: str, event_type: str, payload: Any, ts: float | None = None) -> None:
        """One event-log record of this connection (a no-op when the log is off)."""
        if self._log is not None:
            self._log.record(self.conn_id, direction, _ENDPOINT, event_type, payload, ts)

    async def emit(self, event: dict[str, Any], client_event_id: str | None = None) -> None:
        """Send one server event; every type but the output audio delta (which declares none) gets an event_id."""
        if event["type"] != "session.output_audio.delta":
            event["event_id"] = self._ids.make("event")
        if client_event_id is not None:
            event["client_event_id"] = client_event_id
        await self._wire.send_text(dump(event), event["type"])

    async def error(self, code: str, message: str, param: str | None, client_event_id: str | None) -> None:
        """An `error` event (type `invalid_request_error`); the session stays open."""
        detail: dict[str, Any] = {"type": "invalid_request_error", "code": code, "message": message}
        if param is not None:
            detail["param"] = param
        if client_event_id is not None:
            detail["client_event_id"] = client_event_id
        await self.emit({"type": "error", "error": detail}, client_event_id)

    async def close_socket(self, code: int, reason: str) -> None:
        """The close frame (logged once sent); the session stops reading."""
        self._closed = True
        await self._wire.close(code, reason)

    # ---- clocks and usage ---------------------------------------------------------------------------------

    def clock_ms(self) -> int:
        """The session timeline: milliseconds of caller audio received since `session.started`."""
        return int(self._input_bytes * 1000 / BYTES_PER_SECOND[self.audio_format])

    def usage(self) -> dict[str, Any]:
        """Cumulative billable duration: whole seconds of the session (the types say whole seconds)."""
        return {"seconds": float(self.clock_ms() // 1000)}

    async def report_usage(self) -> None:
        """`session.usage.updated`, and a state record with the audio seconds in each direction behind it."""
        self.log(
            "state",
            "live.usage",
            {"input_audio_s": self.clock_ms() / 1000, "output_audio_s": round(self._output_ms / 1000, 3)},
        )
        await self.emit({"type": "session.usage.updated", "usage": self.usage()})

    # ---- lifecycle ----------------------------------------------------------------------------------------

    async def serve(self) -> None:
        """Run the session until the client leaves, closes it, or goes idle."""
        runtime = self.runtime
        runtime.open_sessions += 1
        runtime.peak_sessions = max(runtime.peak_sessions, runtime.open_sessions)
        try:
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                tasks.start_soon(self._idle_backstop)
                await self._read_loop()
                tasks.cancel_scope.cancel()
        except OSError:
            pass  # the client went away while we were sending
        finally:
            runtime.open_sessions -= 1

    async def _read_loop(self) -> None:
        while not self._closed:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self.log("in", "<disconnect>", {"code": message.get("code")})
                return
            self._last_event = time.monotonic()
            text = message.get("text")
            if text is None:
                await self.error("invalid_event", "Binary frames are not supported; send JSON text.", None, None)
                continue
            await self._dispatch(text, message.get(RECEIVED_AT))

    async def _dispatch(self, text: str, received_at: float | None = None) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
        if not isinstance(event, dict):
            self.log("in", "<malformed>", text, received_at)
            await self.error("invalid_json", "The server could not parse the event as a JSON object.", None, None)
            return
        event_type = str(event.get("type"))
        self.log("in", event_type, event, received_at)
        client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        handler = self._handlers.get(event_type)
        try:
            if handler is None:
                raise self._unknown(event_type)
            if self.resource is None and event_type not in ("session.start", "session.close"):
                raise LiveRequestError("session_not_started", "Send session.start and wait for session.started.")
            await handler(event)
        except LiveRequestError as problem:
            await self.error(problem.code, problem.message, problem.param, client_event_id)

    @staticmethod
    def _unknown(event_type: str) -> LiveRequestError:
        if event_type in _UNSUPPORTED:
            return LiveRequestError("unsupported_event", f"The simulator does not implement '{event_type}'.", "type")
        return LiveRequestError("unknown_event", f"Unknown Live client event type '{event_type}'.", "type")

    async def _idle_backstop(self) -> None:
        """Close a session nobody talks to, so that a lost client does not hold a server slot forever."""
        limit = self.config.live_idle_timeout_s
        while True:
            await anyio.sleep(max(0.01, self._last_event + limit - time.monotonic()))
            if time.monotonic() - self._last_event >= limit:
                await self.finish("expired", None)
                return

    async def finish(self, reason: str, client_event_id: str | None) -> None:
        """End the session: silence, `session.closed` with the reason and final usage, close 1000."""
        if self._closed:
            return
        self._speaker_scope.cancel()  # nothing of an answer after session.closed, its usage included
        if self.resource is not None:
            await self.emit(
                {"type": "session.closed", "reason": reason, "session": self.resource, "usage": self.usage()},
                client_event_id,
            )
        await self.close_socket(1000, reason)
        if self._tasks is not None:
            self._tasks.cancel_scope.cancel()

    # ---- client events ------------------------------------------------------------------------------------

    async def _start(self, event: dict[str, Any]) -> None:
        if self.resource is not None:
            raise LiveRequestError("session_already_started", "The session has already started.")
        config = event.get("session")
        if not isinstance(config, dict):
            raise LiveRequestError("missing_required_parameter", "Missing required parameter: 'session'.", "session")
        model = config.get("model")
        if not isinstance(model, str) or not model:
            raise LiveRequestError(
                "missing_required_parameter", "Missing required parameter: 'session.model'.", "session.model"
            )
        known = self.config.models
        if known is not None and model not in known:
            raise LiveRequestError(
                "model_not_found",
                f"The model `{model}` does not exist or you do not have access to it.",
                "session.model",
            )
        self.resource = self._resolve(config, model)
        self._vad = EnergyVad(self.audio_format, silence_ms=self.config.live_silence_ms)
        assert self._tasks is not None
        self._tasks.start_soon(self._speaker)
        await self.emit({"type": "session.started", "session": self.resource}, event.get("event_id"))

    def _resolve(self, config: dict[str, Any], model: str) -> dict[str, Any]:
        """The `session.started` snapshot: the client's settings with the server defaults filled in."""
        audio: dict[str, Any] = config["audio"] if isinstance(config.get("audio"), dict) else {}
        audio_format = audio.get("format") or dict(_DEFAULT_FORMAT)
        self.audio_format = simulator_format(audio_format)
        output: dict[str, Any] = audio["output"] if isinstance(audio.get("output"), dict) else {}
        resource: dict[str, Any] = {
            "id": self._ids.make("sess"),
            "expires_at": int(time.time()) + _SESSION_LIFETIME_S,
            "model": model,
            "status": "active",
            "audio": {
                "format": {"type": audio_format["type"], "rate": audio_format["rate"]},
                "output": {"voice": output.get("voice") or _DEFAULT_VOICE},
            },
            "store": bool(config.get("store", False)),
        }
        delegation = _delegation(config.get("delegation"))
        if delegation is not None:
            resource["delegation"] = delegation
        for name in ("instructions", "input", "safety_identifier"):
            if config.get(name) is not None:
                resource[name] = config[name]
        return resource

    async def _audio_append(self, event: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise LiveRequestError("invalid_value", "Invalid 'audio': not base64.", "audio") from exc
        assert self._vad is not None
        self._input_bytes += len(data)
        for transition, at_ms in self._vad.feed(data):
            if transition == "started":
                await self._speech_started(at_ms)
            else:
                await self._speech_stopped(at_ms - self.config.live_silence_ms)

    async def _speech_started(self, at_ms: int) -> None:
        """The caller speaks: a barge-in if the simulator is speaking (it yields after `live_yield_ms`)."""
        self._speech_start_ms = at_ms
        self.log("state", "live.speech_started", {"at_ms": at_ms, "speaking": self._speaking})
        if self._speaking and not self.config.live_talks_over and self._stop_at is None:
            self._stop_at = asyncio.get_running_loop().time() + self.config.live_yield_ms / 1000

    async def _speech_stopped(self, end_ms: int) -> None:
        """An utterance ended: its transcript, then an answer or a delegation."""
        self._utterances += 1
        transcript = input_transcript(max(0, end_ms - self._speech_start_ms) / 1000)
        for delta, start, end in spread_words(transcript, self._speech_start_ms, end_ms):
            await self.emit(
                {"type": "session.input_transcript.delta", "delta": delta, "start_ms": start, "end_ms": end}
            )
        assert self.resource is not None
        if self.resource.get("delegation") is not None and self._utterances in self.config.live_delegate_on:
            await self._delegate()
            return
        self._answers.put_nowait(f'You said: "{transcript}"')

    async def _delegate(self) -> None:
        delegation_id = self._ids.make("deleg")
        self._delegations.add(delegation_id)
        await self.emit(
            {
                "type": "session.delegation.created",
                "delegation": {"id": delegation_id, "target": "client", "type": "delegation"},
                "offset_ms": self.clock_ms(),
            }
        )

    async def _commentary(self, event: dict[str, Any]) -> None:
        content, delegation_id = self._context_fields(event)
        now = self.clock_ms()
        await self.emit({"type": "session.commentary.appended", "start_ms": now, "end_ms": now}, event.get("event_id"))
        if delegation_id is not None:
            self._delegations.discard(delegation_id)
            self._answers.put_nowait(f"The tool said: {content}")

    async def _silent_context(self, event: dict[str, Any]) -> None:
        self._context_fields(event)
        now = self.clock_ms()
        appended = str(event["type"]).removesuffix(".append") + ".appended"
        await self.emit({"type": appended, "start_ms": now, "end_ms": now}, event.get("event_id"))

    def _context_fields(self, event: dict[str, Any]) -> tuple[str, str | None]:
        """`content` and `delegation_id` of an append command; the id must name an open client delegation."""
        content = event.get("content")
        if not isinstance(content, str) or not content:
            raise LiveRequestError("missing_required_parameter", "Missing required parameter: 'content'.", "content")
        delegation_id = event.get("delegation_id")
        if delegation_id is not None and delegation_id not in self._delegations:
            raise LiveRequestError(
                "delegation_not_found", f"No open client delegation with id '{delegation_id}'.", "delegation_id"
            )
        return content, delegation_id

    async def _close_requested(self, event: dict[str, Any]) -> None:
        await self.finish("close_requested", event.get("event_id"))

    # ---- speaking -----------------------------------------------------------------------------------------

    async def _speaker(self) -> None:
        """Say the queued answers one after another: the model holds one voice."""
        with self._speaker_scope:
            while True:
                text = await self._answers.get()
                await self._speak(text)

    def _must_stop(self, plays_at: float) -> bool:
        """Whether the delta that plays at `plays_at` (loop time) falls after the barge-in deadline.

        Judged by when the delta is due, not when the speaker woke: a late wake-up under load must not cut the
        answer earlier than `live_yield_ms`.
        """
        return self._stop_at is not None and plays_at >= self._stop_at

    async def _speak(self, text: str) -> None:
        """One answer, paced at real time: each delta leaves when the previous one has played."""
        answer = SpokenAnswer(text.split(" "), self.audio_format, 0.0)
        spans = answer.timeline.words
        loop = asyncio.get_running_loop()
        self._speaking, self._stop_at = True, None
        started, base_ms, word, sent = loop.time(), self.clock_ms(), 0, 0
        try:
            for index, step in enumerate(answer.paced_steps(_CHUNK_MS)):
                plays_at = started + index * _CHUNK_MS / 1000
                await anyio.sleep_until(plays_at)
                if self._must_stop(plays_at):
                    break
                for delta in step.transcript:
                    span = spans[word]
                    word += 1
                    await self.emit(
                        {
                            "type": "session.output_transcript.delta",
                            "delta": delta,
                            "start_ms": round(base_ms + span.start_ms),
                            "end_ms": round(base_ms + span.end_ms),
                        }
                    )
                await self.emit({"type": "session.output_audio.delta", "delta": step.audio})
                sent += step.size
        finally:
            self._speaking = False
        spoken_ms = answer.ms(sent)
        self._output_ms += spoken_ms
        self.log("state", "live.answer", {"text": text, "spoken_ms": spoken_ms, "cut": sent < answer.size})
        await self.report_usage()
