"""One Realtime WebSocket session: the client events it accepts and the state it keeps.

Client events are handled in arrival order by one reader; each response streams in a task of its own so that
`response.cancel` (and new items) can arrive while it runs. Errors in what the client sent become `error`
events (type `invalid_request_error`) and the session stays open.

Response tasks are plain asyncio tasks rather than anyio task-group children: uvicorn always runs the simulator
on asyncio, and an anyio `start_soon` costs ~25 µs against ~3 µs, a tenth of a zero-latency text turn. The
session cancels and awaits them when it ends, and a failure in one (a bug) ends the session and is re-raised.

A socket opened with `?intent=transcription` is a transcription session (`rtflow.sim.transcription_session`): the
same audio handling, no responses. Under server VAD with `idle_timeout_ms`, a caller silent after an answer gets
the idle timeout's prompt (`rtflow.sim.idle_timeout`). `conversation.item.retrieved` shows a user item's input
audio with its bytes, which no other event carries.

With the event log on, every response that starts leaves a `response.context` record of the items it answers
from (see `rtflow.sim.eventlog`), so a test can see what the model saw, a truncated item's text included.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import math
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import TaskGroup

from rtflow.audio.formats import BYTES_PER_SECOND, audio_seconds
from rtflow.sim.audio import EnergyVad, input_transcript
from rtflow.sim.dialects import Dialect
from rtflow.sim.idle_timeout import IDLE_PROMPT, IdleWatch, idle_timeout_s
from rtflow.sim.ids import IdSource
from rtflow.sim.images import check_image_part
from rtflow.sim.mcp import check_approval_response, list_new_servers, plan_mcp_step
from rtflow.sim.model import item_text, respond
from rtflow.sim.responses import ConnectionDropped, ResponseRun, reasons
from rtflow.sim.runtime import SimRuntime
from rtflow.sim.session_state import SessionSettings, SettingsError, apply_beta_update, apply_ga_update
from rtflow.sim.transcription_session import (
    TRANSCRIPTION_EVENTS,
    apply_transcription_update,
    transcription_session,
    transcription_settings,
)
from rtflow.sim.uvicorn_glue import RECEIVED_AT
from rtflow.sim.voice import SpokenTimeline
from rtflow.sim.wire import MALFORMED, ASGISend, DeltaHead, FrameWriter, dump, dump_string, frame_recorder

__all__ = ["RealtimeConnection", "refuse_connection"]

ASGIReceive = Callable[[], Awaitable[Mapping[str, Any]]]
_MIN_COMMIT_S = 0.1
_SESSION_LIFETIME_S = 3600
"""A session's `expires_at` is this long after it starts (the live cap is 60 minutes)."""
_TOKEN_BILLED_TRANSCRIPTION = ("gpt-4o-transcribe", "gpt-4o-mini-transcribe")
"""Transcription models billed in tokens (dated variants included); others (`whisper-1`) are billed in seconds."""
_AUDIO_TOKENS_PER_S = 10


def context_record(response_id: str, items: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The payload of a `response.context` log record: the items a response answers from, as text."""
    return {
        "response_id": response_id,
        "items": [
            {"id": item.get("id"), "role": item.get("role"), "type": item.get("type"), "text": _context_text(item)}
            for item in items
        ],
    }


def _context_text(item: Mapping[str, Any]) -> str:
    if item.get("type") == "function_call":
        return str(item.get("arguments") or "")
    if item.get("type") == "function_call_output":
        return str(item.get("output") or "")
    return item_text(item)


def transcription_usage(transcription: Mapping[str, Any] | None, seconds: float, transcript: str) -> dict[str, Any]:
    """The `usage` of a completed input transcription, billed as the session's transcription model is.

    `gpt-4o-transcribe` and `gpt-4o-mini-transcribe` are billed in tokens (audio in, transcript text out);
    `whisper-1`, and any model not known to bill in tokens, in seconds of audio.
    """
    model = str((transcription or {}).get("model") or "whisper-1")
    if not model.startswith(_TOKEN_BILLED_TRANSCRIPTION):
        return {"type": "duration", "seconds": round(seconds, 3)}
    audio_tokens = max(1, math.ceil(seconds * _AUDIO_TOKENS_PER_S))
    output_tokens = len(transcript.split())
    return {
        "type": "tokens",
        "input_tokens": audio_tokens,
        "output_tokens": output_tokens,
        "total_tokens": audio_tokens + output_tokens,
        "input_token_details": {"text_tokens": 0, "audio_tokens": audio_tokens},
    }


async def refuse_connection(
    runtime: SimRuntime, send: ASGISend, conn_id: str, code: str, message: str, close: int
) -> None:
    """End an upgraded socket as the live service refuses one: an `error` event, then a close frame.

    The close reason is the error code, so that a client that only sees the close can still tell why.
    """
    event = {
        "type": "error",
        "event_id": IdSource(runtime.config.seed, conn_id).make("event"),
        "error": {"type": "invalid_request_error", "code": code, "message": message, "param": None, "event_id": None},
    }
    writer = FrameWriter(send, frame_recorder(runtime, conn_id, "realtime"))
    await writer.send_text(dump(event), "error")
    await writer.close(close, code)


class RealtimeConnection:
    """The state machine of one session, from `session.created` to the socket's close."""

    def __init__(
        self,
        runtime: SimRuntime,
        send: ASGISend,
        receive: ASGIReceive,
        dialect: Dialect,
        model: str,
        conn_id: str,
        transcription_only: bool = False,
    ) -> None:
        self.runtime = runtime
        self._wire = FrameWriter(send, frame_recorder(runtime, conn_id, "realtime"))
        self._receive = receive
        self.dialect = dialect
        self.conn_id = conn_id
        self.transcription_only = transcription_only
        """A transcription session (`?intent=transcription`): it hears and transcribes, it never answers."""
        self.settings = transcription_settings() if transcription_only else SessionSettings(model=model)
        if dialect.is_beta:
            self.settings.output_modalities = ["audio"]
        self._ids = IdSource(runtime.config.seed, conn_id)
        self.session_id = self._ids.make("sess")
        self.conversation_id = self._ids.make("conv")
        self.expires_at = int(time.time()) + _SESSION_LIFETIME_S
        self.items: list[dict[str, Any]] = []
        self._by_id: dict[str, dict[str, Any]] = {}
        self._spoken: dict[str, SpokenTimeline] = {}
        self._input_audio: dict[str, dict[int, bytes]] = {}
        """The audio of user items' `input_audio` parts, by item id and content index: only
        `conversation.item.retrieved` shows it (base64), as the live service does (it lets a client inspect what was
        heard). Kept as bytes: most sessions never ask, so nothing is encoded until one does."""
        self._audio = bytearray()
        self._audio_written_ms = 0.0
        """Input audio received since the session began (the idle timeout's `audio_*_ms` count from its start)."""
        self._idle = IdleWatch()
        self._vad: EnergyVad | None = None
        self._speech_item = ""
        self._active: ResponseRun | None = None
        self._mcp_listed: set[str] = set()
        """Labels of the MCP servers whose tools this session has listed."""
        self._closed = False
        self._tasks: TaskGroup | None = None
        self._responses: set[asyncio.Task[None]] = set()
        self._response_failure: BaseException | None = None
        self._log = runtime.log if runtime.log.enabled else None
        self._handlers: dict[str, Callable[[dict[str, Any]], Awaitable[None]]] = {
            "session.update": self._session_update,
            "conversation.item.create": self._item_create,
            "conversation.item.delete": self._item_delete,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": self._item_truncate,
            "input_audio_buffer.append": self._audio_append,
            "input_audio_buffer.commit": self._audio_commit,
            "input_audio_buffer.clear": self._audio_clear,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }
        if transcription_only:
            self._handlers = {name: self._handlers[name] for name in TRANSCRIPTION_EVENTS}

    # ---- wire ---------------------------------------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh id in the live shape (`item_` and 21 base-62 characters), reproducible from the seed."""
        return self._ids.make(prefix)

    async def emit(self, event: dict[str, Any]) -> None:
        """Send one server event (its `event_id` is added here)."""
        event["event_id"] = self._ids.make("event")
        await self._wire.send_text(dump(event), event["type"])

    def delta_head(self, event_type: str, where: dict[str, Any]) -> DeltaHead:
        """The JSON of a delta event up to its `delta` value, for `emit_delta`."""
        return DeltaHead(event_type, dump({"type": event_type, **where})[:-1] + ',"delta":')

    def obfuscation(self, delta: str) -> str:
        """The `obfuscation` padding the live GA service adds to text, transcript and argument deltas."""
        return self._ids.obfuscation(delta)

    async def emit_delta(self, head: DeltaHead, delta: str, obfuscate: bool = False) -> None:
        """`emit` for the many deltas of one content part: the fixed part of the event is encoded once.

        With `obfuscate` (GA text and transcript deltas) the event carries the live `obfuscation` padding.
        """
        padding = f',"obfuscation":"{self._ids.obfuscation(delta)}"' if obfuscate else ""
        text = f'{head.text}{dump_string(delta)},"event_id":"{self._ids.make("event")}"{padding}}}'
        await self._wire.send_text(text, head.event_type)

    async def send_raw(self, text: str) -> None:
        """Send a frame as it is (the `malformed` fault)."""
        await self._wire.send_text(text, MALFORMED)

    async def drop(self, close_code: int) -> None:
        """End the connection mid-response: 1006 aborts the socket without a close frame, else a close frame."""
        self._closed = True
        if close_code == 1006 and self._wire.abort():
            return
        await self._wire.close(1011 if close_code == 1006 else close_code, "simulated failure")

    async def error(
        self,
        code: str,
        message: str,
        param: str | None,
        client_event_id: str | None,
        error_type: str = "invalid_request_error",
    ) -> None:
        """An `error` event; the session stays open."""
        await self.emit(
            {
                "type": "error",
                "error": {
                    "type": error_type,
                    "code": code,
                    "message": message,
                    "param": param,
                    "event_id": client_event_id,
                },
            }
        )

    async def send_rate_limits(self, tokens_used: int) -> None:
        """`rate_limits.updated` with the configured limits (never exhausted: faults do that).

        The live GA service reports only the `tokens` limit; beta servers report `requests` and `tokens`.
        """
        config = self.runtime.config
        tokens = {
            "name": "tokens",
            "limit": config.rate_limit_tokens,
            "remaining": max(config.rate_limit_tokens - tokens_used, 0),
            "reset_seconds": 0.12,
        }
        limits = [tokens]
        if self.dialect.is_beta:
            requests = {
                "name": "requests",
                "limit": config.rate_limit_requests,
                "remaining": config.rate_limit_requests - 1,
                "reset_seconds": 0.006,
            }
            limits = [requests, tokens]
        await self.emit({"type": "rate_limits.updated", "rate_limits": limits})

    # ---- conversation -------------------------------------------------------------------------------------

    def append_item(self, item: dict[str, Any], after: str | None = None, at_start: bool = False) -> str | None:
        """Add an item (at the end, after `after`, or first); returns the id of the item before it."""
        if at_start:
            position = 0
        elif after is not None:
            position = self.items.index(self._by_id[after]) + 1
        else:
            position = len(self.items)
        self.items.insert(position, item)
        self._by_id[item["id"]] = item
        return str(self.items[position - 1]["id"]) if position else None

    def remember_audio(self, item_id: str, timeline: SpokenTimeline) -> None:
        """Keep an assistant audio item's word timeline, for `conversation.item.truncate`."""
        self._spoken[item_id] = timeline

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item before `item_id` in the conversation."""
        item = self._by_id.get(item_id)
        if item is None or item not in self.items:
            return None
        position = self.items.index(item)
        return str(self.items[position - 1]["id"]) if position else None

    # ---- lifecycle ----------------------------------------------------------------------------------------

    async def serve(self, expire_after: float | None) -> None:
        """Run the session until the client leaves (or a fault ends it)."""
        runtime = self.runtime
        runtime.open_sessions += 1
        runtime.peak_sessions = max(runtime.peak_sessions, runtime.open_sessions)
        try:
            async with anyio.create_task_group() as tasks:
                self._tasks = tasks
                await self.emit({"type": "session.created", "session": self._session_object()})
                if expire_after is not None:
                    tasks.start_soon(self._expire, expire_after)
                await self._read_loop()
                tasks.cancel_scope.cancel()
        except OSError:
            # The client went away while we were sending; nothing is left to tell it.
            pass
        finally:
            self._tasks = None  # closed: responses that end from now on start no idle timer
            runtime.open_sessions -= 1
            await self._end_responses()
        if self._response_failure is not None:
            raise self._response_failure

    def _session_object(self) -> dict[str, Any]:
        if self.transcription_only:
            return transcription_session(self.session_id, self.settings, self.expires_at)
        return self.dialect.session(self.session_id, self.settings, self.expires_at)

    async def _end_responses(self) -> None:
        responses = list(self._responses)
        for task in responses:
            task.cancel()
        if responses:
            with anyio.CancelScope(shield=True):
                await asyncio.wait(responses)

    async def _read_loop(self) -> None:
        while not self._closed:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            if text is None:
                await self.error("invalid_json", "Binary frames are not supported; send JSON text.", None, None)
                continue
            await self._dispatch(text, message.get(RECEIVED_AT))

    async def _dispatch(self, text: str, received_at: float | None = None) -> None:
        try:
            event = json.loads(text)
        except ValueError:
            event = None
            problem = "invalid_json", "The server could not parse the event: it is not valid JSON."
        else:
            problem = "invalid_event", "The server could not parse the event: expected a JSON object."
        if not isinstance(event, dict):
            if self._log is not None:
                self._log.record(self.conn_id, "in", "realtime", "<malformed>", text, received_at)
            await self.error(*problem, None, None)
            return
        event_type = event.get("type")
        if self._log is not None:
            self._log.record(self.conn_id, "in", "realtime", str(event_type), event, received_at)
        client_event_id = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        handler = self._handlers.get(event_type) if isinstance(event_type, str) else None
        if handler is None:
            await self.error(
                "invalid_event",
                f"Invalid value: '{event_type}'. Supported values are: "
                + ", ".join(f"'{name}'" for name in self._handlers)
                + ".",
                "type",
                client_event_id,
            )
            return
        try:
            await handler(event)
        except SettingsError as exc:
            await self.error(exc.code, exc.message, exc.param, client_event_id)

    async def _expire(self, after: float) -> None:
        await anyio.sleep(after)
        await self.error("session_expired", "Your session hit the maximum duration of 60 minutes.", None, None)
        self._closed = True
        await self._wire.close(1001, "session expired")

    # ---- handlers -----------------------------------------------------------------------------------------

    def _apply(self, update: Any, *, response: bool = False) -> SessionSettings:
        apply = apply_beta_update if self.dialect.is_beta else apply_ga_update
        return apply(self.settings, update, response=response)

    async def _session_update(self, event: dict[str, Any]) -> None:
        if self.transcription_only:
            self.settings = apply_transcription_update(self.settings, event.get("session"))
        else:
            self.settings = self._apply(event.get("session"))
        self._vad = None
        await self.emit({"type": "session.updated", "session": self._session_object()})
        if not self.dialect.is_beta:
            await list_new_servers(self, self.settings.tools, self._mcp_listed)

    def _check_item(self, raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict):
            raise SettingsError("missing_required_parameter", "Missing required parameter: 'item'.", "item")
        item = self.dialect.item_from_client(dict(raw))
        kind = item.get("type")
        if kind == "message":
            if item.get("role") not in ("user", "assistant", "system"):
                raise SettingsError(
                    "invalid_value",
                    "Invalid value for 'item.role': expected 'user', 'assistant' or 'system'.",
                    "item.role",
                )
            if not isinstance(item.get("content"), list):
                raise SettingsError(
                    "missing_required_parameter", "Missing required parameter: 'item.content'.", "item.content"
                )
            audio: dict[int, bytes] = {}
            content = []
            for index, part in enumerate(item["content"]):
                checked, heard = self._intake_part(part, f"item.content[{index}]")
                content.append(checked)
                if heard is not None:
                    audio[index] = heard
            item["content"] = content
        elif kind == "function_call":
            if not item.get("name"):
                raise SettingsError(
                    "missing_required_parameter", "Missing required parameter: 'item.name'.", "item.name"
                )
            item.setdefault("arguments", "")
            item.setdefault("call_id", self.new_id("call"))
        elif kind == "function_call_output":
            if not isinstance(item.get("call_id"), str) or not isinstance(item.get("output"), str):
                raise SettingsError(
                    "missing_required_parameter",
                    "A function_call_output item needs 'call_id' and 'output' strings.",
                    "item.output",
                )
        elif kind == "mcp_approval_response" and not self.dialect.is_beta:
            check_approval_response(item, self._by_id)
        else:
            raise SettingsError(
                "invalid_value",
                "Invalid value for 'item.type': expected 'message', 'function_call', 'function_call_output' or"
                " 'mcp_approval_response'.",
                "item.type",
            )
        item.setdefault("id", self.new_id("item"))
        if item["id"] in self._by_id:
            raise SettingsError("invalid_value", f"Item with id '{item['id']}' already exists.", "item.id")
        item.pop("object", None)  # the neutral item has none; the beta dialect shows one
        if kind != "mcp_approval_response":  # MCP items carry no status
            item["status"] = "completed"
        if kind == "message" and audio:
            self._input_audio[item["id"]] = audio
        return item

    def _intake_part(self, part: Any, param: str) -> tuple[dict[str, Any], bytes | None]:
        """A client's content part as the item keeps it, and the audio it carries (None: no audio)."""
        if not isinstance(part, dict):
            raise SettingsError("invalid_value", "Each content part must be an object.", "item.content")
        if part.get("type") == "input_image":
            if self.dialect.is_beta:  # the beta shape has no image part
                raise SettingsError(
                    "invalid_value",
                    "Invalid value: 'input_image'. Supported values are: 'input_text', 'input_audio', "
                    "'item_reference', and 'text'.",
                    f"{param}.type",
                )
            return check_image_part(part, param), None
        if part.get("type") == "input_audio" and part.get("audio"):
            try:
                heard = base64.b64decode(part["audio"], validate=True)
            except (binascii.Error, ValueError) as exc:
                raise SettingsError("invalid_value", "Invalid 'audio': not base64.", "item.content.audio") from exc
            transcript = input_transcript(audio_seconds(len(heard), self.settings.input_format))
            return {"type": "input_audio", "transcript": transcript}, heard
        return dict(part), None

    async def _announce_item(self, item: dict[str, Any], previous: str | None) -> None:
        shown = self.dialect.item(item)
        if self.dialect.is_beta:
            await self.emit({"type": "conversation.item.created", "previous_item_id": previous, "item": shown})
        else:
            await self.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": shown})
            await self.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": shown})

    async def _item_create(self, event: dict[str, Any]) -> None:
        item = self._check_item(event.get("item"))
        previous = event.get("previous_item_id")
        if previous is not None and previous != "root" and previous not in self._by_id:
            raise SettingsError("invalid_value", f"Item with id '{previous}' not found.", "previous_item_id")
        before = self.append_item(
            item, after=previous if previous not in (None, "root") else None, at_start=previous == "root"
        )
        await self._announce_item(item, before)

    def _existing(self, event: dict[str, Any]) -> dict[str, Any]:
        item = self._by_id.get(event.get("item_id"))  # type: ignore[arg-type]
        if item is None or item not in self.items:
            raise SettingsError("invalid_value", f"Item with item_id '{event.get('item_id')}' not found.", "item_id")
        return item

    async def _item_delete(self, event: dict[str, Any]) -> None:
        item = self._existing(event)
        self.items.remove(item)
        del self._by_id[item["id"]]
        self._spoken.pop(item["id"], None)
        self._input_audio.pop(item["id"], None)
        await self.emit({"type": "conversation.item.deleted", "item_id": item["id"]})

    async def _item_retrieve(self, event: dict[str, Any]) -> None:
        """The item as the server holds it; a user item's input audio comes with its bytes (only here)."""
        item = self._existing(event)
        audio = self._input_audio.get(item["id"])
        if audio:
            content = [
                {**part, "audio": base64.b64encode(audio[index]).decode("ascii")} if index in audio else part
                for index, part in enumerate(item["content"])
            ]
            item = {**item, "content": content}
        await self.emit({"type": "conversation.item.retrieved", "item": self.dialect.item(item)})

    async def _item_truncate(self, event: dict[str, Any]) -> None:
        item = self._existing(event)
        if item.get("role") != "assistant":
            raise SettingsError("invalid_value", "Only assistant messages can be truncated.", "item_id")
        audio_end_ms = event.get("audio_end_ms")
        if not isinstance(audio_end_ms, int) or audio_end_ms < 0:
            raise SettingsError(
                "invalid_value", "Invalid 'audio_end_ms': expected a non-negative integer.", "audio_end_ms"
            )
        content_index = int(event.get("content_index") or 0)
        timeline = self._spoken.get(item["id"])
        if timeline is not None and content_index == 0:
            self._cut_audio(item, timeline, audio_end_ms)
        await self.emit(
            {
                "type": "conversation.item.truncated",
                "item_id": item["id"],
                "content_index": content_index,
                "audio_end_ms": audio_end_ms,
            }
        )

    @staticmethod
    def _cut_audio(item: dict[str, Any], timeline: SpokenTimeline, audio_end_ms: int) -> None:
        """The live service's truncation: the item keeps its audio up to the cut and the words started before it."""
        held_ms = math.ceil(timeline.audio_ms)
        if audio_end_ms > held_ms:
            raise SettingsError(
                "invalid_value",
                f"Audio content of {held_ms}ms is already shorter than {audio_end_ms}ms",
                "audio_end_ms",
            )
        item["content"][0]["transcript"] = timeline.cut(audio_end_ms)

    async def _audio_append(self, event: dict[str, Any]) -> None:
        try:
            data = base64.b64decode(event.get("audio") or "", validate=True)
        except (binascii.Error, ValueError) as exc:
            raise SettingsError("invalid_value", "Invalid 'audio': not base64.", "audio") from exc
        self._audio += data
        self._audio_written_ms += audio_seconds(len(data), self.settings.input_format) * 1000
        detection = self.settings.turn_detection
        if detection is None:
            return
        if self._vad is None:
            self._vad = EnergyVad(
                self.settings.input_format,
                float(detection.get("threshold") or 0.5),
                int(detection.get("silence_duration_ms") or 500),
            )
        for transition, at_ms in self._vad.feed(data):
            if transition == "started":
                self._idle.stop()
                self._speech_item = self.new_id("item")
                await self.emit(
                    {"type": "input_audio_buffer.speech_started", "audio_start_ms": at_ms, "item_id": self._speech_item}
                )
                if self._active is not None and detection.get("interrupt_response", True):
                    self._active.cancel("turn_detected")
            else:
                await self.emit(
                    {"type": "input_audio_buffer.speech_stopped", "audio_end_ms": at_ms, "item_id": self._speech_item}
                )
                await self._commit(self._speech_item)
                if detection.get("create_response", True) and not self.transcription_only:
                    await self._respond_to_speech()

    async def _respond_to_speech(self) -> None:
        """The VAD's response to a committed turn: one at most, never an error of the server's own making.

        A response the VAD cancelled when the caller spoke again is let finish first; one still answering (with
        `interrupt_response: false`) keeps the floor, and this turn gets no response of its own.
        """
        active = self._active
        if active is not None and active.cancelled:
            await active.ended.wait()
        elif active is not None:
            return
        await self._start_response({}, None)

    async def _audio_commit(self, event: dict[str, Any]) -> None:
        await self._commit(None, event.get("event_id"))

    async def _commit(self, item_id: str | None, client_event_id: str | None = None, idle: bool = False) -> None:
        """Commit the input buffer as a user item (and transcribe it). The idle timeout commits whatever the buffer
        holds, however short, and silence transcribes as nothing."""
        seconds = audio_seconds(len(self._audio), self.settings.input_format)
        if seconds < _MIN_COMMIT_S and not idle:
            await self.error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too "
                f"small. Expected at least 100ms of audio, but buffer only has {seconds * 1000:.2f}ms "
                "of audio.",
                None,
                client_event_id,
            )
            return
        heard = bytes(self._audio)
        self._audio = bytearray()
        if self._vad is not None:
            self._vad.reset()
        transcript = "" if idle else input_transcript(seconds)
        item = {
            "id": item_id or self.new_id("item"),
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        previous = self.append_item(item)
        self._input_audio[str(item["id"])] = {0: heard}
        await self.emit({"type": "input_audio_buffer.committed", "previous_item_id": previous, "item_id": item["id"]})
        await self._announce_item(item, previous)
        item["content"] = [{"type": "input_audio", "transcript": transcript}]
        if self.settings.transcription is not None:
            if transcript:
                await self._transcription_deltas(str(item["id"]), transcript)
            await self.emit(
                {
                    "type": "conversation.item.input_audio_transcription.completed",
                    "item_id": item["id"],
                    "content_index": 0,
                    "transcript": transcript,
                    "usage": transcription_usage(self.settings.transcription, seconds, transcript),
                }
            )

    async def _transcription_deltas(self, item_id: str, transcript: str) -> None:
        """The transcript as it streams, a word a delta, before its `.completed` (as newer services send it)."""
        words = transcript.split(" ")
        for position, word in enumerate(words):
            delta = word if position == len(words) - 1 else word + " "
            event = {
                "type": "conversation.item.input_audio_transcription.delta",
                "item_id": item_id,
                "content_index": 0,
                "delta": delta,
            }
            if not self.dialect.is_beta:
                event["obfuscation"] = self.obfuscation(delta)
            await self.emit(event)

    async def _audio_clear(self, event: dict[str, Any]) -> None:
        self._audio = bytearray()
        if self._vad is not None:
            self._vad.reset()
        await self.emit({"type": "input_audio_buffer.cleared"})

    async def _response_create(self, event: dict[str, Any]) -> None:
        await self._start_response(event.get("response") or {}, event.get("event_id"))

    async def _start_response(self, overrides: dict[str, Any], client_event_id: str | None, idle: bool = False) -> None:
        """Start a response (`idle`: the one the idle timeout asks for, which prompts the caller to go on)."""
        in_conversation = overrides.get("conversation", "auto") != "none"
        if in_conversation and self._active is not None:
            await self.error(
                "conversation_already_has_active_response",
                "Conversation already has an active "
                f"response in progress: {self._active.response_id}. Wait until the response is "
                "finished before creating a new one.",
                None,
                client_event_id,
            )
            return
        settings = self._apply(overrides, response=True) if overrides else self.settings
        context = self._context(overrides.get("input"))
        parallel = reasons(self.dialect, settings.model) and settings.parallel_tool_calls is not False
        reply = respond(
            settings.instructions, context, settings.tools, settings.tool_choice, self.runtime.rules,
            parallel_tools=parallel,
        )  # fmt: skip
        mcp_step = None if idle else plan_mcp_step(settings.tools, context)
        if mcp_step is not None:  # the MCP server's tool answers this one, not a function
            reply.text, reply.calls = mcp_step.answer, []
        if idle:
            reply.text, reply.calls = IDLE_PROMPT, []
        fault = self.runtime.faults.pick_response("realtime", settings.model, reply.last_user_text)
        if fault is not None and fault.kind == "stall":
            return
        if fault is not None and fault.kind == "server_error":
            await self.error(
                "server_error",
                "The server had an error while processing your request. Sorry about that!",
                None,
                client_event_id,
                error_type="server_error",
            )
            return
        metadata = overrides.get("metadata") if isinstance(overrides.get("metadata"), dict) else None
        run = ResponseRun(self, self.new_id("resp"), settings, reply, in_conversation, metadata, fault, mcp=mcp_step)
        if self._log is not None:
            self._log.record(
                self.conn_id, "state", "realtime", "response.context", context_record(run.response_id, context)
            )
        if in_conversation:
            self._active = run
            self._idle.stop()
        task = asyncio.get_running_loop().create_task(self._run_response(run))
        self._responses.add(task)
        task.add_done_callback(self._response_ended)

    def _response_ended(self, task: asyncio.Task[None]) -> None:
        self._responses.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._response_failure = task.exception()
            if self._tasks is not None:
                self._tasks.cancel_scope.cancel()

    async def _run_response(self, run: ResponseRun) -> None:
        try:
            await run.run()
            if run.in_conversation:
                self._watch_for_idle(run)
        except ConnectionDropped:
            assert self._tasks is not None
            self._tasks.cancel_scope.cancel()
        except OSError:
            pass
        finally:
            if self._active is run:
                self._active = None
            run.ended.set()

    def _watch_for_idle(self, run: ResponseRun) -> None:
        """Under server VAD with `idle_timeout_ms`: time the caller's silence from the end of this answer's audio."""
        timeout_s = idle_timeout_s(self.settings.turn_detection)
        if timeout_s is None or self._tasks is None or self._closed or self.transcription_only:
            return
        playing_s = run.audio_bytes / BYTES_PER_SECOND[run.settings.output_format]
        self._idle.start(self._tasks, playing_s, timeout_s, lambda: round(self._audio_written_ms), self._idle_timed_out)

    async def _idle_timed_out(self, audio_start_ms: int) -> None:
        """The caller stayed silent: `timeout_triggered`, the buffer committed as it is, and a prompt to go on."""
        busy = self._active is not None or (self._vad is not None and self._vad.in_speech)
        if busy or idle_timeout_s(self.settings.turn_detection) is None:  # or turned off since the timer started
            return
        item_id = self.new_id("item")
        await self.emit(
            {
                "type": "input_audio_buffer.timeout_triggered",
                "audio_start_ms": audio_start_ms,
                "audio_end_ms": round(self._audio_written_ms),
                "item_id": item_id,
            }
        )
        await self._commit(item_id, idle=True)
        await self._start_response({}, None, idle=True)

    def _context(self, explicit: Any) -> list[dict[str, Any]]:
        if explicit is None:
            return self.items
        if not isinstance(explicit, list):
            raise SettingsError(
                "invalid_value", "Invalid type for 'response.input': expected an array.", "response.input"
            )
        context = []
        for raw in explicit:
            if isinstance(raw, dict) and raw.get("type") == "item_reference":
                context.append(self._existing({"item_id": raw.get("id")}))
            else:
                item = self._check_item(raw)
                context.append(item)
        return context

    async def _response_cancel(self, event: dict[str, Any]) -> None:
        if self._active is None:
            await self.error(
                "response_cancel_not_active",
                "Cancellation failed: no active response found.",
                None,
                event.get("event_id"),
            )
            return
        self._active.cancel("client_cancelled")
