"""What Chat Completions sends back: bodies, stream chunks, usage, and error statuses as rtflow errors.

Pure functions and small assemblers over already-received data; the HTTP client stays in `openai_chat`.
A 429's wait comes from `Retry-After`, else from the reset time of the exhausted `x-ratelimit-*` limit, else from
the message's "try again in"; it is capped by `max_retry_after`. A field of the wrong type in a reply is skipped
and told to the turn's protocol warnings (`note`); a reply fails with a ProtocolError only when it cannot be read
at all (a body or chunk that is not JSON, a body without `choices[0].message`). Server text in an error message
is redacted (`server_text`).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import anyio

if TYPE_CHECKING:  # only annotations here: httpx loads when a request is made
    import httpx

from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderError,
    RateLimitError,
    ServerError,
)
from rtflow.messages import Usage as TurnUsage
from rtflow.providers.endpoints import SecretKey, server_text
from rtflow.providers.ratelimits import (
    DEFAULT_MAX_RETRY_AFTER,
    pause_from_headers,
    retry_after_from_text,
    retry_after_header,
    retry_hint,
)
from rtflow.providers.tools import PendingCall
from rtflow.providers.wire_fields import Note, field_count, field_list, field_mapping, field_text

__all__ = [
    "ChatReply",
    "StreamedReply",
    "parse_json",
    "read_to_the_end",
    "reply_from_body",
    "retry_after_seconds",
    "sse_events",
    "status_error",
    "usage_from",
]


"""Where the readers tell what they skipped (a turn's `ProtocolNotes`)."""

_MAX_CALLS = 128
"""The most tool calls one streamed reply may assemble (a call `index` beyond this is not a real index)."""


def _ignore(_warning: str) -> None:
    return None


class ChatReply:
    """One completion: its text, the function calls it asked for, its usage."""

    def __init__(self, text: str, calls: list[PendingCall], usage: TurnUsage, model: str | None) -> None:
        self.text = text
        self.calls = calls
        self.usage = usage
        self.model = model
        self.after_done_s = 0.0
        """Seconds spent reading the stream's end after its `[DONE]` (`read_to_the_end`): not the answer's."""


class StreamedReply:
    """Assembles a reply from stream chunks (tool call arguments arrive in pieces, by index)."""

    def __init__(self, note: Note = _ignore) -> None:
        self.pieces: list[str] = []
        self.calls: dict[int, dict[str, str]] = {}
        self.usage = TurnUsage()
        self.model: str | None = None
        self._note = note

    def absorb(self, chunk: dict[str, Any]) -> bool:
        """Take one chunk; True when it carried text. Fields of the wrong type are skipped (and noted)."""
        note = self._note
        if self.model is None:
            self.model = field_text(chunk, "model", "chunk", note)
        if chunk.get("usage") is not None:
            self.usage = usage_from(chunk["usage"], note)
        carried_text = False
        for choice in field_list(chunk, "choices", "chunk", note):
            if not isinstance(choice, dict):
                note("chunk.choices holds something that is not an object; skipped")
                continue
            delta = field_mapping(choice, "delta", "chunk.choices[]", note)
            content = field_text(delta, "content", "chunk.choices[].delta", note)
            if content:
                self.pieces.append(content)
                carried_text = True
            for call in field_list(delta, "tool_calls", "chunk.choices[].delta", note):
                self._absorb_call(call)
        return carried_text

    def _absorb_call(self, call: Any) -> None:
        note = self._note
        where = "chunk.choices[].delta.tool_calls[]"
        if not isinstance(call, dict):
            note(f"{where} is not an object; skipped")
            return
        index = call.get("index", 0)
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < _MAX_CALLS:
            note(f"{where}.index is not a small integer; the call piece was skipped")
            return
        slot = self.calls.setdefault(index, {"id": "", "name": "", "arguments": ""})
        slot["id"] = field_text(call, "id", where, note) or slot["id"]
        function = field_mapping(call, "function", where, note)
        slot["name"] += field_text(function, "name", f"{where}.function", note) or ""
        slot["arguments"] += field_text(function, "arguments", f"{where}.function", note) or ""

    def finish(self) -> ChatReply:
        calls = [(slot["id"], slot["name"], slot["arguments"]) for _, slot in sorted(self.calls.items())]
        return ChatReply("".join(self.pieces), calls, self.usage, self.model)


def reply_from_body(body: Any, label: str, note: Note = _ignore) -> ChatReply:
    """The reply in a non-streamed completion body; ProtocolError when it has none."""
    choices = body.get("choices") if isinstance(body, dict) else None
    message = (
        choices[0].get("message") if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    )
    if not isinstance(message, dict):
        raise ProtocolError("the completion has no choices[0].message", provider=label)
    where = "completion.choices[0].message"
    content = message.get("content")
    if content is not None and not isinstance(content, str):
        note(f"{where}.content is not a string; skipped")
        content = None
    calls: list[PendingCall] = []
    for call in field_list(message, "tool_calls", where, note):
        function = call.get("function") if isinstance(call, dict) else None
        call_id = call.get("id") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        arguments = function.get("arguments") if isinstance(function, dict) else None
        if not isinstance(call_id, str) or not isinstance(name, str) or not isinstance(arguments, str | None):
            note(f"{where}.tool_calls holds a call without string id, name and arguments; skipped")
            continue
        calls.append((call_id, name, arguments or ""))
    if content is None and not calls and (message.get("content") is not None or message.get("tool_calls")):
        raise ProtocolError(f"the answer cannot be read: {where} has no usable content or call", provider=label)
    model = body.get("model")
    return ChatReply(
        content or "", calls, usage_from(body.get("usage"), note), model if isinstance(model, str) else None
    )


async def sse_events(
    lines: AsyncIterator[str], label: str, key: SecretKey | None = None
) -> AsyncIterator[dict[str, Any]]:
    """The JSON chunks of a server-sent event stream, up to `[DONE]`."""
    async for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        chunk = parse_json(data.encode(), label)
        if not isinstance(chunk, dict):
            raise ProtocolError("a stream chunk is not a JSON object", provider=label)
        error = chunk.get("error")
        if error is not None:
            message = error.get("message") if isinstance(error, dict) else error
            said = server_text(message, key) if isinstance(message, str) else "no message"
            raise ServerError(f"the stream failed: {said}", provider=label)
        yield chunk


AFTER_DONE_BYTES = 64 * 1024
AFTER_DONE_SECONDS = 0.2


async def read_to_the_end(response: httpx.Response, lines: AsyncIterator[str]) -> float:
    """Read what is left of a stream after its `[DONE]` (normally nothing but the end of the chunked body); the
    seconds it took, which are not the answer's.

    A response closed with bytes unread takes its connection down with it, so every request would open a new
    one (a TCP and, on the real endpoint, a TLS handshake each). The answer is complete already, so nothing here
    can fail the turn: a server that goes on sending past `[DONE]` (more than `AFTER_DONE_BYTES`), stalls (longer
    than `AFTER_DONE_SECONDS`) or breaks the connection loses that connection, nothing else.
    """
    import httpx

    started = time.perf_counter()
    at_done = response.num_bytes_downloaded
    with anyio.move_on_after(AFTER_DONE_SECONDS):
        try:
            async for _ in lines:
                if response.num_bytes_downloaded - at_done > AFTER_DONE_BYTES:
                    break
        except httpx.HTTPError:
            pass
    return time.perf_counter() - started


def parse_json(content: bytes, label: str) -> Any:
    """`content` as JSON, or a ProtocolError."""
    try:
        return json.loads(content)
    except (ValueError, RecursionError):
        raise ProtocolError("the server sent a body that is not JSON", provider=label) from None


def usage_from(raw: Any, note: Note = _ignore) -> TurnUsage:
    """Token counts of a Chat `usage` block (zeros when it is missing; a count of the wrong type reads as 0)."""
    if not isinstance(raw, dict):
        if raw is not None:
            note("usage is not an object; no usage was read")
        return TurnUsage()
    prompt_details = field_mapping(raw, "prompt_tokens_details", "usage", note)
    completion_details = field_mapping(raw, "completion_tokens_details", "usage", note)
    return TurnUsage(
        input_tokens=field_count(raw, "prompt_tokens", "usage", note),
        output_tokens=field_count(raw, "completion_tokens", "usage", note),
        total_tokens=field_count(raw, "total_tokens", "usage", note),
        cached_tokens=field_count(prompt_details, "cached_tokens", "usage.prompt_tokens_details", note),
        input_audio_tokens=field_count(prompt_details, "audio_tokens", "usage.prompt_tokens_details", note),
        output_audio_tokens=field_count(completion_details, "audio_tokens", "usage.completion_tokens_details", note),
    )


# A 429 says some budget is spent: a budget whose remaining count is not sent is taken to be the spent one.
_SPENT_UNLESS_SAID = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-remaining-tokens": "0"}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """How long a 429 asks to wait: `Retry-After`, else the reset time of the exhausted `x-ratelimit-*` budget."""
    stated = retry_after_header(response.headers.get("retry-after"))
    if stated is not None:
        return stated
    return pause_from_headers({**_SPENT_UNLESS_SAID, **response.headers})


def _error_fields(content: bytes) -> tuple[str, str | None]:
    """The `error.message` and `error.code` of an error body, as far as they can be read."""
    try:
        error = json.loads(content).get("error")
    except (ValueError, RecursionError, AttributeError):
        return "", None
    if not isinstance(error, dict):
        return (error, None) if isinstance(error, str) else ("", None)
    message, code = error.get("message"), error.get("code")
    numeric = isinstance(code, int) and not isinstance(code, bool) and abs(code) < 10**18
    return (message if isinstance(message, str) else "", str(code) if numeric or isinstance(code, str) else None)


def status_error(
    response: httpx.Response,
    label: str,
    key: SecretKey | None,
    *,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
) -> ProviderError:
    """The rtflow error an HTTP error status means; the server's message is kept, the key redacted."""
    status = response.status_code
    message, code = _error_fields(response.content)
    code = server_text(code, key, limit=80) if code else None
    detail = server_text(message, key)
    suffix = f": {detail}" if detail else ""
    if status == 429:
        asked = retry_after_seconds(response)
        retry_after, hint = retry_hint(asked if asked is not None else retry_after_from_text(message), max_retry_after)
        return RateLimitError(
            f"rate limited (HTTP 429){hint}{suffix}", provider=label, status=status, retry_after=retry_after, code=code
        )
    if status in (401, 403):
        source = f" (key from {key.source})" if key else ""
        return AuthenticationError(
            f"the server refused the request (HTTP {status}){source}{suffix}", provider=label, status=status, code=code
        )
    if status >= 500:
        return ServerError(f"the server failed (HTTP {status}){suffix}", provider=label, status=status, code=code)
    if 300 <= status < 400:
        return InvalidRequestError(
            f"the server redirected the request (HTTP {status}) with nothing rtflow could follow{suffix}",
            provider=label,
            status=status,
            code=code,
        )
    return InvalidRequestError(
        f"the request was refused (HTTP {status}){suffix}", provider=label, status=status, code=code
    )
