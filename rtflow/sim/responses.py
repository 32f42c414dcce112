"""Streaming one Realtime response: the event sequence of a text, audio or function-call answer.

GA order (as the live service sends it): `response.created`, then per output item `response.output_item.added`,
`conversation.item.added`, `response.content_part.added`, deltas, `*.done`, `response.content_part.done`,
`conversation.item.done`, `response.output_item.done`; then `response.done` and `rate_limits.updated`. Beta sends
`conversation.item.created` in place of the added/done pair. Out-of-band responses (`conversation: "none"`)
get no conversation item events and leave the conversation unchanged.

A cancel (`response.cancel`, or the VAD hearing the caller) lands `VoiceConfig.cancel_delay_ms` after it arrives,
as on the live service, and the response keeps streaming until then. It then closes what it had opened, in the
live order: `response.output_audio.done` and `response.output_audio_transcript.done` (or
`response.output_text.done`) with what was sent, `response.content_part.done`, `conversation.item.done` (GA),
`response.output_item.done` with the item `incomplete`; then `response.done` (`cancelled`). An open function
call gets no `response.function_call_arguments.done`. Spoken answers follow `rtflow.sim.voice`'s timeline.

Live-only keys (REALTIME_PROTOCOL.md): GA text, transcript and argument deltas carry `obfuscation`; GA usage has
`output_token_details.reasoning_tokens`; beta `response.function_call_arguments.done` carries `name` too. Phases:
GA assistant messages of the phased models (`PHASED_MODELS`, gpt-realtime-2 and later) say `phase: final_answer`.
When such a session also has `reasoning: {effort}` (any effort but `minimal`), the response first streams a short
message with `phase: commentary` (a preamble, as those models send before they answer or call a tool), then the
answer. Other models never carry `phase`; beta never does.

A response sees its session only through `ResponseSession`, the few things it asks of it: `rtflow.sim.realtime`
imports this module, never the other way round.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from rtflow.audio.formats import BYTES_PER_SECOND
from rtflow.sim.config import Fault
from rtflow.sim.dialects import Dialect
from rtflow.sim.mcp import McpStep
from rtflow.sim.model import ModelReply, word_count
from rtflow.sim.runtime import SimRuntime
from rtflow.sim.session_state import SessionSettings
from rtflow.sim.voice import SpokenAnswer, SpokenTimeline
from rtflow.sim.wire import DeltaHead

__all__ = ["PHASED_MODELS", "ConnectionDropped", "ResponseRun", "ResponseSession", "reasons"]

PHASED_MODELS = frozenset({"gpt-realtime-2", "gpt-realtime-2.1", "gpt-realtime-2.1-mini"})
"""The reasoning models: their assistant messages carry `phase` (`final_answer`, or `commentary` for a preamble),
and they may call several tools in one response (`parallel_tool_calls`)."""


def reasons(dialect: Dialect, model: str) -> bool:
    """Whether a session is a reasoning model's on GA: its messages carry phases, and it may call tools in
    parallel (the beta shape has neither)."""
    return not dialect.is_beta and model in PHASED_MODELS


COMMENTARY = "Let me think about that."
"""The preamble a reasoning session of a phased model sends before its answer."""
_REASONING_TOKENS = {"minimal": 0, "low": 16, "medium": 64, "high": 192, "xhigh": 384}


class ConnectionDropped(Exception):
    """A `close` fault ended the connection in the middle of a response."""


class ResponseSession(Protocol):
    """What a response needs from the session it streams into (`RealtimeConnection` is the one there is)."""

    @property
    def runtime(self) -> SimRuntime:
        """The server's shared state (latency, config)."""

    @property
    def dialect(self) -> Dialect:
        """How events and items are shaped (GA or beta)."""

    @property
    def conversation_id(self) -> str:
        """The session's conversation, named in each in-conversation response."""

    def new_id(self, prefix: str) -> str:
        """A fresh id for an item, a call or a response."""

    def append_item(self, item: dict[str, Any], after: str | None = None, at_start: bool = False) -> str | None:
        """Add an item to the conversation; returns the id of the item before it."""

    def previous_id(self, item_id: str) -> str | None:
        """The id of the item before `item_id` in the conversation."""

    async def emit(self, event: dict[str, Any]) -> None:
        """Send one server event."""

    def delta_head(self, event_type: str, where: dict[str, Any]) -> DeltaHead:
        """The encoded start of a delta event, for `emit_delta`."""

    async def emit_delta(self, head: DeltaHead, delta: str, obfuscate: bool = False) -> None:
        """Send one delta event whose start `delta_head` encoded (with `obfuscation` padding if asked)."""

    def obfuscation(self, delta: str) -> str:
        """The `obfuscation` padding of one delta."""

    async def send_raw(self, text: str) -> None:
        """Send a frame as it is (the `malformed` fault)."""

    async def drop(self, close_code: int) -> None:
        """End the connection (the `close` fault)."""

    async def send_rate_limits(self, tokens_used: int) -> None:
        """`rate_limits.updated` after a response."""

    def remember_audio(self, item_id: str, timeline: SpokenTimeline) -> None:
        """Keep an assistant audio item's word timeline, for `conversation.item.truncate`."""


@dataclass
class _OpenItem:
    """The output item being streamed, and how far it got: what a cancel has to close."""

    item: dict[str, Any]
    output_index: int
    audio: bool = False
    where: dict[str, Any] | None = None
    """The delta address of its content part, once `response.content_part.added` is sent (messages only)."""
    sent: list[str] = field(default_factory=list)
    """The text (or transcript) deltas sent so far."""


@dataclass
class ResponseRun:
    """One response being streamed; `cancel()` ends it with status `cancelled`."""

    connection: ResponseSession
    response_id: str
    settings: SessionSettings
    reply: ModelReply
    in_conversation: bool
    metadata: dict[str, str] | None
    fault: Fault | None
    output: list[dict[str, Any]] = field(default_factory=list)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    cancel_reason: str = "client_cancelled"
    cancelled: bool = False
    """Whether `cancel()` was called: the response is ending, or has ended, as cancelled."""
    audio_bytes: int = 0
    ended: anyio.Event = field(default_factory=anyio.Event)
    """Set once `response.done` is sent (or the response could not finish)."""
    open_item: _OpenItem | None = None
    """The output item being streamed: the one a cancel that lands now must close."""
    mcp: McpStep | None = None
    """What the response does on an MCP server before it speaks (see `rtflow.sim.mcp`)."""

    def cancel(self, reason: str = "client_cancelled") -> None:
        """Stop streaming `cancel_delay_ms` from now; `response.done` then says cancelled with this reason.

        The first cancel decides: a second one (the client's, after the VAD's) neither delays nor renames it.
        """
        if self.cancelled:
            return
        self.cancelled = True
        self.cancel_reason = reason
        delay_ms = self.connection.runtime.config.voice.cancel_delay_ms
        if delay_ms > 0:
            # A deadline, not a sleeping task: it lands on time whatever the response is awaiting.
            self.scope.deadline = anyio.current_time() + delay_ms / 1000
        else:
            self.scope.cancel()

    async def _cancel_lands(self) -> None:
        """Idle until a pending cancel lands: a response that ran out of things to send still ends on time."""
        await anyio.sleep_forever()

    async def run(self) -> None:
        """Stream the whole response, however it ends."""
        conn = self.connection
        emit = conn.emit
        status: str = "completed"
        details: dict[str, Any] | None = None
        with self.scope:
            await emit({"type": "response.created", "response": self._body("in_progress", None, None)})
            if self.fault is not None and self.fault.kind == "malformed":
                await conn.send_raw('{"type": "response.output_text.delta", "delta": "unterminated')
            await conn.runtime.latency.first_delta()
            text, limited = self._limited_text()
            if self._comments():
                await self._stream_message(COMMENTARY, "commentary")
            if self.mcp is not None and self.mcp.kind == "call":
                await self._stream_mcp_call(self.mcp)
            elif self.mcp is not None and self.mcp.kind == "ask":
                await self._stream_approval_request(self.mcp)
            if text:
                await self._stream_message(text)
            if not limited:
                for call in self.reply.calls:
                    await self._stream_call(call.name, call.arguments)
            if self.cancelled:
                await self._cancel_lands()
            if limited:
                status, details = "incomplete", {"type": "incomplete", "reason": "max_output_tokens"}
            if self.fault is not None and self.fault.kind == "rate_limited":
                status = "failed"
                details = {
                    "type": "failed",
                    "error": {
                        "type": "rate_limit_exceeded",
                        "code": "rate_limit_exceeded",
                        "message": f"Rate limit reached for requests. Please try again in {self.fault.retry_after}s.",
                    },
                }
                self.output = []
        # `cancelled`, not `cancelled_caught`: a cancel that came before the response's first pause (it can,
        # when the VAD hears speech again at once) still ends it as cancelled, as the live service does.
        if self.cancelled:
            status, details = "cancelled", {"type": "cancelled", "reason": self.cancel_reason}
            await self._close_cancelled()
            for item in self.output:
                if "status" in item:  # MCP items have none
                    item["status"] = "incomplete"
        usage = self._usage()
        await emit({"type": "response.done", "response": self._body(status, details, usage)})
        await conn.send_rate_limits(usage["total_tokens"])

    def _phased(self) -> bool:
        """Whether assistant messages carry `phase` (GA, a phased model)."""
        return reasons(self.connection.dialect, self.settings.model)

    def _effort(self) -> str | None:
        """The session's reasoning effort, if it set one."""
        effort = (self.settings.reasoning or {}).get("effort")
        return effort if isinstance(effort, str) else None

    def _comments(self) -> bool:
        """Whether a `commentary` message precedes the answer: a phased model reasoning above `minimal`."""
        return self._phased() and self._effort() not in (None, "minimal") and bool(self.reply.text or self.reply.calls)

    def _limited_text(self) -> tuple[str | None, bool]:
        text = self.reply.text
        limit = self.settings.max_output_tokens
        if text is None or not isinstance(limit, int) or word_count(text) <= limit:
            return text, False
        return " ".join(text.split()[:limit]), True

    def _body(self, status: str, details: dict[str, Any] | None, usage: dict[str, Any] | None) -> dict[str, Any]:
        conversation_id = self.connection.conversation_id if self.in_conversation else None
        return self.connection.dialect.response(
            self.response_id,
            self.settings,
            status=status,
            output=self.output if status != "in_progress" else [],
            conversation_id=conversation_id,
            status_details=details,
            usage=usage,
            metadata=self.metadata,
        )

    def _usage(self) -> dict[str, Any]:
        text_out = self.reply.output_tokens
        audio_out = round(self.audio_bytes / BYTES_PER_SECOND[self.settings.output_format] * 10)
        text_in = self.reply.input_tokens
        image_in = self.reply.image_tokens
        input_tokens = text_in + image_in
        reasoning = _REASONING_TOKENS.get(self._effort() or "", 0) if self._phased() else 0
        output_tokens = text_out + audio_out + reasoning
        output_details: dict[str, Any] = {"text_tokens": text_out, "audio_tokens": audio_out}
        if not self.connection.dialect.is_beta:
            output_details["reasoning_tokens"] = reasoning  # live GA only; counted in output_tokens
        return {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {
                "cached_tokens": 0,
                "text_tokens": text_in,
                "audio_tokens": 0,
                "image_tokens": image_in,
                "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
            },
            "output_token_details": output_details,
        }

    async def _open_item(self, item: dict[str, Any], audio: bool = False) -> _OpenItem:
        conn = self.connection
        output_index = len(self.output)
        self.output.append(item)
        shown = conn.dialect.item(item)
        await conn.emit(
            {
                "type": "response.output_item.added",
                "response_id": self.response_id,
                "output_index": output_index,
                "item": shown,
            }
        )
        if self.in_conversation:
            previous = conn.append_item(item)
            if conn.dialect.is_beta:
                await conn.emit({"type": "conversation.item.created", "previous_item_id": previous, "item": shown})
            else:
                await conn.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": shown})
        self.open_item = _OpenItem(item, output_index, audio)
        return self.open_item

    async def _close_item(self, item: dict[str, Any], output_index: int, status: str = "completed") -> None:
        conn = self.connection
        self.open_item = None
        if "status" in item:  # MCP items have none
            item["status"] = status
        shown = conn.dialect.item(item)
        if not conn.dialect.is_beta:
            await conn.emit(
                {"type": "conversation.item.done", "previous_item_id": conn.previous_id(item["id"]), "item": shown}
            )
        await conn.emit(
            {
                "type": "response.output_item.done",
                "response_id": self.response_id,
                "output_index": output_index,
                "item": shown,
            }
        )

    async def _close_cancelled(self) -> None:
        """Close the item a cancel caught open, as the live service does, with what had been sent of it."""
        opened = self.open_item
        if opened is None:
            return
        if opened.where is not None:
            await self._finish_part(opened.where, "".join(opened.sent), opened.audio)
        await self._close_item(opened.item, opened.output_index, "incomplete")

    async def _finish_part(self, where: dict[str, Any], text: str, audio: bool) -> None:
        conn = self.connection
        dialect = conn.dialect
        emit = conn.emit
        if audio:
            await emit({"type": dialect.audio_done, **where})
            await emit({"type": dialect.transcript_done, **where, "transcript": text})
            await emit({"type": "response.content_part.done", **where, "part": {"type": "audio", "transcript": text}})
        else:
            await emit({"type": dialect.text_done, **where, "text": text})
            await emit({"type": "response.content_part.done", **where, "part": {"type": "text", "text": text}})

    async def _stream_message(self, text: str, phase: str = "final_answer") -> None:
        conn = self.connection
        audio = self.settings.output_modalities == ["audio"]
        item: dict[str, Any] = {
            "id": conn.new_id("item"),
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        if self._phased():
            item["phase"] = phase
        opened = await self._open_item(item, audio)
        where = {
            "response_id": self.response_id,
            "item_id": item["id"],
            "output_index": opened.output_index,
            "content_index": 0,
        }
        part_type = "audio" if audio else "text"
        empty_part = {"type": part_type, "transcript": ""} if audio else {"type": part_type, "text": ""}
        await conn.emit({"type": "response.content_part.added", **where, "part": empty_part})
        opened.where = where
        content: dict[str, Any] = {"type": "output_audio" if audio else "output_text"}
        item["content"].append(content)
        if audio:
            await self._speak(text, opened, content)
        else:
            await self._write(text, opened, content)
        if self.cancelled:
            await self._cancel_lands()
        self.open_item = None
        await self._finish_part(where, text, audio)
        await self._close_item(item, opened.output_index)

    async def _write(self, text: str, opened: _OpenItem, content: dict[str, Any]) -> None:
        """A text answer: one delta per word, `per_delta_ms` apart."""
        conn = self.connection
        assert opened.where is not None
        head = conn.delta_head(conn.dialect.text_delta, opened.where)
        obfuscate = not conn.dialect.is_beta
        words = text.split(" ")
        last = len(words) - 1
        sent = opened.sent
        for position, word in enumerate(words):
            if position:
                await conn.runtime.latency.per_delta()
            chunk = word if position == last else word + " "
            sent.append(chunk)
            await conn.emit_delta(head, chunk, obfuscate)
            content["text"] = "".join(sent)
            if position == 0 and self.fault is not None and self.fault.kind == "close":
                await conn.drop(self.fault.close_code)
                raise ConnectionDropped

    async def _speak(self, text: str, opened: _OpenItem, content: dict[str, Any]) -> None:
        """A spoken answer: audio deltas, each word's transcript just before the audio its start is in.

        Paced (`realtime_audio`), delta k leaves at t0 + k * chunk - lead, t0 being when the first left (so the
        first `audio_lead_ms` go at once, and the rest keep that far ahead of playback): sleeping until a time
        read from the loop's monotonic clock, not for a duration, so late wake-ups do not add up. The pace is the
        audio's own, so `per_delta_ms` applies only unpaced.
        """
        conn = self.connection
        voice = conn.runtime.config.voice
        assert opened.where is not None
        spoken = SpokenAnswer(text.split(" "), self.settings.output_format, voice.leading_silence_ms)
        timeline = spoken.timeline
        if self.in_conversation:
            conn.remember_audio(opened.item["id"], timeline)
        paced = voice.realtime_audio
        steps = spoken.paced_steps(voice.audio_chunk_ms) if paced else spoken.word_steps()
        audio_head = conn.delta_head(conn.dialect.audio_delta, opened.where)
        transcript_head = conn.delta_head(conn.dialect.transcript_delta, opened.where)
        chunk_s = voice.audio_chunk_ms / 1000
        lead_s = voice.audio_lead_ms / 1000
        started = 0.0
        sent = opened.sent
        obfuscate = not conn.dialect.is_beta
        for index, step in enumerate(steps):
            if paced:
                if index and index * chunk_s > lead_s:
                    await anyio.sleep_until(started + index * chunk_s - lead_s)
                else:
                    started = anyio.current_time()
            elif index:
                await conn.runtime.latency.per_delta()
            for piece in step.transcript:
                sent.append(piece)
                await conn.emit_delta(transcript_head, piece, obfuscate)
            await conn.emit_delta(audio_head, step.audio)
            self.audio_bytes += step.size
            if timeline.cut_ms is None:  # a truncated item keeps what the truncation left it
                timeline.audio_ms += spoken.ms(step.size)
                if step.transcript:
                    content["transcript"] = "".join(sent)
            if index == 0 and self.fault is not None and self.fault.kind == "close":
                await conn.drop(self.fault.close_code)
                raise ConnectionDropped

    async def _stream_call(self, name: str, arguments: str) -> None:
        conn = self.connection
        item: dict[str, Any] = {
            "id": conn.new_id("item"),
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": conn.new_id("call"),
            "arguments": "",
        }
        opened = await self._open_item(item)
        where = {
            "response_id": self.response_id,
            "item_id": item["id"],
            "output_index": opened.output_index,
            "call_id": item["call_id"],
        }
        delta: dict[str, Any] = {"type": "response.function_call_arguments.delta", **where, "delta": arguments}
        if not conn.dialect.is_beta:
            delta["obfuscation"] = conn.obfuscation(arguments)
        await conn.emit(delta)
        if self.fault is not None and self.fault.kind == "close" and self.reply.text is None:
            await conn.drop(self.fault.close_code)
            raise ConnectionDropped
        item["arguments"] = arguments
        if self.cancelled:
            await self._cancel_lands()
        self.open_item = None
        # `name` is declared by the GA type; the live beta service sends it too.
        await conn.emit(
            {"type": "response.function_call_arguments.done", **where, "arguments": arguments, "name": name}
        )
        await self._close_item(item, opened.output_index)

    async def _stream_mcp_call(self, step: McpStep) -> None:
        """The MCP server's call: its arguments as the model writes them, then the call and its output."""
        conn = self.connection
        item: dict[str, Any] = {
            "id": conn.new_id("mcp"),
            "type": "mcp_call",
            "server_label": step.server_label,
            "name": step.name,
            "arguments": "",
        }
        if step.approval_request_id is not None:
            item["approval_request_id"] = step.approval_request_id
        opened = await self._open_item(item)
        where = {"item_id": item["id"], "output_index": opened.output_index}
        delta = {"type": "response.mcp_call_arguments.delta", "response_id": self.response_id, **where}
        await conn.emit({**delta, "delta": step.arguments, "obfuscation": conn.obfuscation(step.arguments)})
        item["arguments"] = step.arguments
        done = {"type": "response.mcp_call_arguments.done", "response_id": self.response_id, **where}
        await conn.emit({**done, "arguments": step.arguments})
        await conn.emit({"type": "response.mcp_call.in_progress", **where})
        await conn.runtime.latency.per_delta()  # the server's call to the MCP server
        if self.cancelled:
            await self._cancel_lands()
        item["output"] = step.output
        await conn.emit({"type": "response.mcp_call.completed", **where})
        await self._close_item(item, opened.output_index)

    async def _stream_approval_request(self, step: McpStep) -> None:
        """The call waits for the client: the response ends with the request, whole at once."""
        item: dict[str, Any] = {
            "id": self.connection.new_id("mcpr"),
            "type": "mcp_approval_request",
            "server_label": step.server_label,
            "name": step.name,
            "arguments": step.arguments,
        }
        opened = await self._open_item(item)
        await self._close_item(item, opened.output_index)
