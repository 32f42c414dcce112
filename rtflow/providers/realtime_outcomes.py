"""What the Realtime server's events mean for a turn: which response is the turn's, its outcome, `error` events.

Pure logic over events already read by `realtime_wire`, shared by every session; the WebSocket itself stays in
`openai_realtime`.

- `ResponseMatcher` decides which events belong to the response the turn waits for, by `response_id` (and, for
  an event without one, by the `item_id` of an item the response added). The turn's response is the first
  response created after the turn asked for one that is not out-of-band (`conversation_id: null`) and not
  already finished; events of any other response (out-of-band, interleaved, a stray `response.done` of an
  earlier one) are counted and never end or pollute the turn. After an idle timeout the next response the
  server starts is its prompt to the caller, not the turn's: the matcher tells its events apart (`prompts`).
- `finish_response` reads a finished response: its text, calls and usage, or the error its status means. It
  fails with a ProtocolError only when the answer cannot be read: the response is unreadable, or nothing of it
  could be read while some of it was skipped.
- `IDLE_TIMEOUT` is the outcome of a turn during which the server's idle timeout fired (the caller stayed silent
  `idle_timeout_ms` after the answer, and the server answered the silence with a prompt of its own);
  `idle_timeout_detail` says so on the turn's `input_audio_buffer.timeout_triggered` event mark, with the prompt,
  which never joins the turn's answer; `idle_timeout_entry` says the same, with when it fired, for the turn's
  `idle_timeouts`.
- `error_from_body` classifies an `error` event (authentication, rate limit with the wait its message names,
  expired session, server fault, invalid request). Server text is redacted before it enters a message.
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Any

from rtflow.errors import (
    AuthenticationError,
    InvalidRequestError,
    ProtocolError,
    ProviderConnectionError,
    ProviderError,
    RateLimitError,
    ResponseFailedError,
    ServerError,
)
from rtflow.messages import Usage
from rtflow.providers.endpoints import SecretKey, server_text
from rtflow.providers.ratelimits import DEFAULT_MAX_RETRY_AFTER, retry_after_from_text, retry_hint
from rtflow.providers.realtime_mcp import McpApprovalRequest, McpCallItem
from rtflow.providers.realtime_wire import (
    ErrorBody,
    ErrorEvent,
    IdleTimeout,
    Note,
    OutputItemAdded,
    ResponseCreated,
    ResponseDone,
    read_object,
)
from rtflow.providers.tools import PendingCall

__all__ = [
    "IDLE_TIMEOUT",
    "ResponseMatcher",
    "ResponseResult",
    "error_from_body",
    "error_from_event",
    "finish_response",
    "idle_timeout_detail",
    "idle_timeout_entry",
    "usage_from",
]

IDLE_TIMEOUT = "idle_timeout"
"""The outcome of a turn during which the server's idle timeout fired."""
_FAILED_STATUSES = frozenset({"failed", "incomplete", "cancelled"})
_AUTH_WORDS = re.compile(r"api_key|authenticat|unauthori[sz]ed|permission|forbidden", re.IGNORECASE)
"""Error codes and types that mean the key was refused (`invalid_api_key`, `authentication_error`, ...)."""


@dataclass
class ResponseResult:
    """What one `response.create` produced."""

    text: str = ""
    calls: list[PendingCall] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    mcp: list[McpCallItem | McpApprovalRequest] = field(default_factory=list)
    """What the server did with MCP tools in this response (it runs them; rtflow only answers approvals)."""

    @property
    def approval_requests(self) -> list[McpApprovalRequest]:
        """The MCP calls the server waits to have approved before it makes them."""
        return [item for item in self.mcp if isinstance(item, McpApprovalRequest)]


class ResponseMatcher:
    """Which events belong to the one response a turn (or a tool round) is waiting for.

    `finished` holds the ids of responses the session already read to their end: their late events are foreign.
    `prompting` says that the idle timeout has fired and its prompt not yet ended; `prompt_id` is that prompt's
    response if an earlier reader saw it start.
    An event with no response id at all (nor an item that names one) is taken as the turn's: a server that
    sends no ids cannot interleave anything the client could tell apart.
    """

    def __init__(self, finished: Container[str], *, prompting: bool = False, prompt_id: str | None = None) -> None:
        self.response_id: str | None = None
        """The turn's response, once known."""
        self.prompt_id = prompt_id
        """The server's prompt after an idle timeout, once it has started."""
        self._prompt_expected = prompting and prompt_id is None
        self._finished = finished
        self._items: dict[str, str] = {}
        self.ignored: dict[str, int] = {}
        """Events of other responses that were ignored, counted by response id."""

    def idle_timeout(self) -> None:
        """The server's idle timeout fired: the next response it starts prompts the caller to go on."""
        self._prompt_expected = True

    def created(self, event: ResponseCreated) -> bool:
        """Whether this response is the turn's (the first one that is neither out-of-band nor finished, nor the
        server's prompt after an idle timeout)."""
        response_id = event.response_id
        new_response = response_id is not None and not event.out_of_band and response_id not in self._finished
        if self._prompt_expected and new_response:
            self._prompt_expected = False
            self.prompt_id = response_id
            return False
        return self._claim(response_id, event.out_of_band, "response.created")

    def prompts(self, response_id: str | None, item_id: str | None) -> bool:
        """Whether an event (of this response, or of the item this item id names) belongs to the server's prompt."""
        return self.prompt_id is not None and self._owner(response_id, item_id) == self.prompt_id

    def item_added(self, event: OutputItemAdded) -> None:
        """Remember which response an item belongs to (its deltas may name only the item)."""
        if event.item_id is not None and event.response_id is not None:
            self._items[event.item_id] = event.response_id

    def owns(self, response_id: str | None, item_id: str | None) -> bool:
        """Whether a delta (of this response, or of the item this item id names) belongs to the turn."""
        return self._claim(self._owner(response_id, item_id), False, "delta")

    def _owner(self, response_id: str | None, item_id: str | None) -> str | None:
        return response_id if response_id is not None else self._items.get(item_id) if item_id else None

    def done(self, event: ResponseDone) -> bool:
        """Whether this `response.done` ends the turn's response."""
        return self._claim(event.response_id, event.out_of_band, "response.done")

    def _claim(self, response_id: str | None, out_of_band: bool, what: str) -> bool:
        if response_id is None:
            return not out_of_band
        if response_id == self.response_id:
            return True
        unclaimed = response_id not in self._finished and response_id not in self.ignored
        if self.response_id is None and not out_of_band and unclaimed:
            self.response_id = response_id
            return True
        self.ignored[response_id] = self.ignored.get(response_id, 0) + 1
        return False

    def report(self, note: Note) -> None:
        """Tell `note` which other responses' events were ignored (once each), then forget them."""
        for response_id, count in self.ignored.items():
            note(f"{count} event(s) of response {response_id!r}, not this turn's response, were ignored")
        self.ignored.clear()


def finish_response(
    event: dict[str, Any] | ResponseDone,
    streamed_text: str,
    label: str,
    *,
    note: Note | None = None,
    lost_frames: bool = False,
    key: SecretKey | None = None,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
) -> ResponseResult:
    """The outcome of the turn's `response.done`, or the error its status means.

    `streamed_text` is the text of the response's deltas; the response's own output wins when it differs (a
    delta may have been lost). `lost_frames` says that frames were skipped while the response streamed: when
    nothing of the answer could then be read, the answer is lost and the turn fails with a ProtocolError.
    """
    warnings: list[str] = []
    tell = note if note is not None else warnings.append
    done = event if isinstance(event, ResponseDone) else read_object(event, tell)
    if not isinstance(done, ResponseDone) or not done.readable:
        raise ProtocolError("response.done without a readable response: the answer cannot be read", provider=label)
    if done.status in _FAILED_STATUSES:
        raise _failed_response(done, label, key, max_retry_after)
    if done.status not in (None, "completed"):
        tell(f"response.done: unknown status {done.status!r}, read as completed")
    result = ResponseResult(text=streamed_text, calls=list(done.calls), usage=done.usage, mcp=list(done.mcp))
    final_text = "".join(done.texts)
    if final_text and final_text != streamed_text:
        if streamed_text:
            tell("the response's streamed text differs from its final output; the final output is used")
        result.text = final_text
    if not result.text and not result.calls and not result.mcp and (done.unreadable or lost_frames):
        parts = ", ".join(done.unreadable) if done.unreadable else "frames that could not be read"
        raise ProtocolError(f"the answer cannot be read: {parts} were skipped", provider=label)
    return result


def _failed_response(done: ResponseDone, label: str, key: SecretKey | None, cap: float) -> ProviderError:
    status = str(done.status)
    reason = server_text(done.reason, key, limit=80) if done.reason else None
    error = done.error or ErrorBody()
    code = server_text(error.code, key, limit=80) if error.code else None
    message = f"response {status}" + (f" ({reason})" if reason else "")
    if error.message:
        message += f": {server_text(error.message, key)}"
    if "rate_limit" in f"{code} {error.type}":
        wait, hint = retry_hint(retry_after_from_text(error.message), cap)
        return RateLimitError(message + hint, provider=label, code=code, retry_after=wait)
    return ResponseFailedError(message, response_status=status, reason=reason, provider=label, code=code)


def error_from_event(
    event: dict[str, Any] | ErrorEvent,
    label: str,
    *,
    key: SecretKey | None = None,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
) -> ProviderError:
    """The rtflow error an `error` event means (by its type and code)."""
    read = event if isinstance(event, ErrorEvent) else read_object(event, lambda _warning: None)
    body = read.error if isinstance(read, ErrorEvent) else ErrorBody()
    return error_from_body(body, label, key=key, max_retry_after=max_retry_after)


def error_from_body(
    error: ErrorBody,
    label: str,
    *,
    key: SecretKey | None = None,
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER,
) -> ProviderError:
    """The rtflow error an `error` event's body means; the server's words redacted."""
    error_type = server_text(error.type, key, limit=80) if error.type else ""
    code = server_text(error.code, key, limit=80) if error.code else None
    message = f"{error_type or 'error'}: {server_text(error.message, key) if error.message else 'no message'}"
    if code:
        message += f" (code {code})"
    if code == "session_expired":
        return ProviderConnectionError(message, provider=label, code=code)
    if _AUTH_WORDS.search(f"{code or ''} {error_type}"):
        source = f" (from {key.source})" if key else ""
        return AuthenticationError(
            f"the server refused the API key{source}: {message}", provider=label, code=code, retryable=False
        )
    if "rate_limit" in f"{code} {error_type}":
        wait, hint = retry_hint(retry_after_from_text(error.message), max_retry_after)
        return RateLimitError(message + hint, provider=label, code=code, retry_after=wait)
    if error_type == "server_error":
        return ServerError(message, provider=label, code=code)
    return InvalidRequestError(message, provider=label, code=code)


def idle_timeout_detail(event: IdleTimeout, prompt: str | None) -> str:
    """What a turn's `timeout_triggered` mark says: the outcome, the silent stretch, and what the agent prompted."""
    account = _idle_timeout_account(event, prompt)
    return f"{IDLE_TIMEOUT}: {account}" if account else IDLE_TIMEOUT


def idle_timeout_entry(event: IdleTimeout, prompt: str | None, at_ms: float) -> str:
    """One entry of `TurnOutput.idle_timeouts`: when the timeout fired (`at_ms` from the start of the turn), the
    silent stretch, and what the agent prompted."""
    when = f"at {at_ms:.0f} ms into the turn"
    account = _idle_timeout_account(event, prompt)
    return f"{when}: {account}" if account else when


def _idle_timeout_account(event: IdleTimeout, prompt: str | None) -> str:
    """The silent stretch of input audio and the agent's prompt, as far as the server told them."""
    pieces: list[str] = []
    if event.audio_start_ms is not None and event.audio_end_ms is not None:
        silent = f"from {event.audio_start_ms:g} to {event.audio_end_ms:g} ms of input audio"
        pieces.append(f"the caller was silent {silent}")
    if prompt:
        pieces.append(f"the agent prompted: {prompt!r}")
    return "; ".join(pieces)


def usage_from(raw: Any) -> Usage:
    """Token counts of a `response.done` usage block (zeros when it is missing or unreadable)."""
    done = read_object({"type": "response.done", "response": {"usage": raw}}, lambda _warning: None)
    return done.usage if isinstance(done, ResponseDone) else Usage()
