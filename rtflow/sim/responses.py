"""Streaming one Realtime response: the event sequence of a text, audio or function-call answer.

GA order (as the live service sends it): `response.created`, then per output item `response.output_item.added`,
`conversation.item.added`, `response.content_part.added`, deltas, `*.done`, `response.content_part.done`,
`conversation.item.done`, `response.output_item.done`; then `response.done` and `rate_limits.updated`. Beta sends
`conversation.item.created` in place of the added/done pair. Out-of-band responses (`conversation: "none"`)
get no conversation item events and leave the conversation unchanged.

A response sees its session only through `ResponseSession`, the few things it asks of it: `rtflow.sim.realtime`
imports this module, never the other way round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import anyio

from rtflow.audio.formats import BYTES_PER_SECOND
from rtflow.sim.audio import synthesize_word
from rtflow.sim.config import Fault
from rtflow.sim.dialects import Dialect
from rtflow.sim.model import ModelReply, word_count
from rtflow.sim.runtime import SimRuntime
from rtflow.sim.session_state import SessionSettings

__all__ = ["ConnectionDropped", "ResponseRun", "ResponseSession"]


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

    def delta_head(self, event_type: str, where: dict[str, Any]) -> str:
        """The encoded start of a delta event, for `emit_delta`."""

    async def emit_delta(self, head: str, delta: str) -> None:
        """Send one delta event whose start `delta_head` encoded."""

    async def send_raw(self, text: str) -> None:
        """Send a frame as it is (the `malformed` fault)."""

    async def drop(self, close_code: int) -> None:
        """End the connection (the `close` fault)."""

    async def send_rate_limits(self, tokens_used: int) -> None:
        """`rate_limits.updated` after a response."""


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
    audio_bytes: int = 0
    ended: anyio.Event = field(default_factory=anyio.Event)
    """Set once `response.done` is sent (or the response could not finish)."""

    @property
    def cancelled(self) -> bool:
        """Whether `cancel()` was called: the response is ending, or has ended, as cancelled."""
        return self.scope.cancel_called

    def cancel(self, reason: str = "client_cancelled") -> None:
        """Stop streaming; `response.done` then says cancelled with this reason."""
        self.cancel_reason = reason
        self.scope.cancel()

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
            if text:
                await self._stream_message(text)
            if not limited:
                for call in self.reply.calls:
                    await self._stream_call(call.name, call.arguments)
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
        # `cancel_called`, not `cancelled_caught`: a cancel that came before the response's first pause (it can,
        # when the VAD hears speech again at once) still ends it as cancelled, as the live service does.
        if self.scope.cancel_called:
            status, details = "cancelled", {"type": "cancelled", "reason": self.cancel_reason}
            for item in self.output:
                item["status"] = "incomplete"
        usage = self._usage()
        await emit({"type": "response.done", "response": self._body(status, details, usage)})
        await conn.send_rate_limits(usage["total_tokens"])

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
        input_tokens = self.reply.input_tokens
        output_tokens = text_out + audio_out
        return {
            "total_tokens": input_tokens + output_tokens,
            "input_tokens": input_tokens,
            "output_tokens": output_tokens,
            "input_token_details": {"cached_tokens": 0, "text_tokens": input_tokens, "audio_tokens": 0},
            "output_token_details": {"text_tokens": text_out, "audio_tokens": audio_out},
        }

    async def _open_item(self, item: dict[str, Any]) -> int:
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
        return output_index

    async def _close_item(self, item: dict[str, Any], output_index: int) -> None:
        conn = self.connection
        item["status"] = "completed"
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

    async def _stream_message(self, text: str) -> None:
        conn = self.connection
        dialect = conn.dialect
        audio = self.settings.output_modalities == ["audio"]
        item: dict[str, Any] = {
            "id": conn.new_id("item"),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        output_index = await self._open_item(item)
        where = {
            "response_id": self.response_id,
            "item_id": item["id"],
            "output_index": output_index,
            "content_index": 0,
        }
        part_type = "audio" if audio else "text"
        empty_part = {"type": part_type, "transcript": ""} if audio else {"type": part_type, "text": ""}
        await conn.emit({"type": "response.content_part.added", **where, "part": empty_part})
        content: dict[str, Any] = {"type": "output_audio" if audio else "output_text"}
        item["content"].append(content)
        words = text.split(" ")
        sent: list[str] = []
        text_head = conn.delta_head(dialect.text_delta, where)
        emit: Callable[[dict[str, Any]], Awaitable[None]] = conn.emit
        for position, word in enumerate(words):
            if position:
                await conn.runtime.latency.per_delta()
            chunk = word if position == len(words) - 1 else word + " "
            sent.append(chunk)
            if audio:
                data = synthesize_word(word, self.settings.output_format)
                self.audio_bytes += len(data) * 3 // 4
                await emit({"type": dialect.audio_delta, **where, "delta": data})
                await emit({"type": dialect.transcript_delta, **where, "delta": chunk})
            else:
                await conn.emit_delta(text_head, chunk)
            content["transcript" if audio else "text"] = "".join(sent)
            if position == 0 and self.fault is not None and self.fault.kind == "close":
                await conn.drop(self.fault.close_code)
                raise ConnectionDropped
        if audio:
            await emit({"type": dialect.audio_done, **where})
            await emit({"type": dialect.transcript_done, **where, "transcript": text})
            await emit({"type": "response.content_part.done", **where, "part": {"type": "audio", "transcript": text}})
        else:
            await emit({"type": dialect.text_done, **where, "text": text})
            await emit({"type": "response.content_part.done", **where, "part": {"type": "text", "text": text}})
        await self._close_item(item, output_index)

    async def _stream_call(self, name: str, arguments: str) -> None:
        conn = self.connection
        item: dict[str, Any] = {
            "id": conn.new_id("item"),
            "object": "realtime.item",
            "type": "function_call",
            "status": "in_progress",
            "name": name,
            "call_id": conn.new_id("call"),
            "arguments": "",
        }
        output_index = await self._open_item(item)
        where = {
            "response_id": self.response_id,
            "item_id": item["id"],
            "output_index": output_index,
            "call_id": item["call_id"],
        }
        await conn.emit({"type": "response.function_call_arguments.delta", **where, "delta": arguments})
        if self.fault is not None and self.fault.kind == "close" and self.reply.text is None:
            await conn.drop(self.fault.close_code)
            raise ConnectionDropped
        item["arguments"] = arguments
        done: dict[str, Any] = {"type": "response.function_call_arguments.done", **where, "arguments": arguments}
        if not conn.dialect.is_beta:
            done["name"] = name
        await conn.emit(done)
        await self._close_item(item, output_index)
