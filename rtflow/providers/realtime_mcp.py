"""MCP tools of a Realtime GA session: the server runs them; rtflow records what it did and answers approvals.

A tool of `type: mcp` in the provider's `tools` is sent in `session.update` as the flow wrote it (`native_tools`).
Its secrets (`authorization`, `headers` values) are registered with `rtflow.log.register_secret` when the
provider is built, so no log line carries them; nothing of them is ever copied into a turn's record.

During a turn the server lists the MCP server's tools (`mcp_list_tools.*`) and may call them: an `mcp_call` output
item with the tool's name, arguments and output (or error). rtflow does not run these calls (no handler is asked,
the tool-round loop never sees them): each becomes a `ToolCall` of the turn with `server_label` set. A tool that
needs approval arrives as an `mcp_approval_request` item at the end of a response; the client must answer with an
`mcp_approval_response` item and a `response.create`. Who decides is config `mcp_approval`: `approve` (the
default, so a flow whose MCP tools need approval still sees them run), `deny`, or a Python (or JavaScript)
function `file://handlers.py:decide` that gets `{server_label, name, arguments}` and returns a bool. The decision
is the `approved` of the call's `ToolCall`; a handler that fails denies, and its failure is the record's `error`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rtflow.log import register_secret
from rtflow.messages import ToolCall
from rtflow.providers.tools import load_handler
from rtflow.providers.wire_fields import Note, field_text, preview
from rtflow.user_code import UserCodeError, call_user_code

__all__ = [
    "APPROVE",
    "DENY",
    "MCP_ITEM_TYPES",
    "McpApprovalRequest",
    "McpApprover",
    "McpCallItem",
    "McpRecords",
    "approval_detail",
    "read_mcp_item",
    "register_mcp_secrets",
]

APPROVE = "approve"
DENY = "deny"
MCP_ITEM_TYPES = frozenset({"mcp_call", "mcp_approval_request"})
"""Output items of a response that are the MCP server's doing."""


@dataclass(frozen=True, slots=True)
class McpCallItem:
    """An `mcp_call` item: a call the server made on an MCP server, and what came of it."""

    item_id: str
    server_label: str
    name: str
    arguments: str
    output: str | None
    error: str | None
    approval_request_id: str | None


@dataclass(frozen=True, slots=True)
class McpApprovalRequest:
    """An `mcp_approval_request` item: the server waits for the client's yes or no before calling the tool."""

    request_id: str
    server_label: str
    name: str
    arguments: str


def register_mcp_secrets(tools: Iterable[Mapping[str, Any]]) -> None:
    """Never log an MCP tool's `authorization` token or its header values."""
    for tool in tools:
        if tool.get("type") != "mcp":
            continue
        authorization = tool.get("authorization")
        if isinstance(authorization, str):
            register_secret(authorization)
        headers = tool.get("headers")
        if isinstance(headers, Mapping):
            for value in headers.values():
                if isinstance(value, str):
                    register_secret(value)
                    # `Bearer TOKEN`: the token alone may appear elsewhere (an echo, an error message).
                    register_secret(value.partition(" ")[2] or None)


def read_mcp_item(item: dict[str, Any], where: str, note: Note) -> McpCallItem | McpApprovalRequest | None:
    """An MCP output item of `response.done`, or None (and `note` told why) when it cannot be read."""
    item_type = item.get("type")
    fields = {key: field_text(item, key, where, note) for key in ("id", "server_label", "name", "arguments")}
    if any(value is None for value in fields.values()):
        note(f"{where}: an {item_type} item without string id, server_label, name and arguments was skipped")
        return None
    item_id, server_label, name, arguments = (str(fields[key]) for key in ("id", "server_label", "name", "arguments"))
    if item_type == "mcp_approval_request":
        return McpApprovalRequest(item_id, server_label, name, arguments)
    return McpCallItem(
        item_id=item_id,
        server_label=server_label,
        name=name,
        arguments=arguments,
        output=field_text(item, "output", where, note),
        error=_error_text(item.get("error"), where, note),
        approval_request_id=field_text(item, "approval_request_id", where, note),
    )


def _error_text(error: Any, where: str, note: Note) -> str | None:
    """An MCP call's error (`{type, code?, message}`) as one line."""
    if error is None:
        return None
    if not isinstance(error, dict):
        note(f"{where}.error is {preview(error)}, not an object")
        return "the MCP call failed"
    kind = error.get("type") if isinstance(error.get("type"), str) else "error"
    message = error.get("message") if isinstance(error.get("message"), str) else ""
    code = error.get("code")
    coded = f" (code {code})" if isinstance(code, int | str) and not isinstance(code, bool) else ""
    return f"{kind}{coded}: {message}" if message else f"{kind}{coded}"


class McpApprover:
    """Decides the server's MCP approval requests by config `mcp_approval`."""

    def __init__(self, policy: str, base_dir: Path, timeout: float) -> None:
        self.policy = policy
        # Loaded now, so a bad reference is a FlowError before any session opens.
        self._handler = load_handler(policy, base_dir, timeout) if policy not in (APPROVE, DENY) else None
        self._timeout = timeout

    async def decide(self, request: McpApprovalRequest) -> tuple[bool, str | None]:
        """(approved, the handler's failure if it failed); a failing handler denies."""
        if self._handler is None:
            return self.policy == APPROVE, None
        asked = {"server_label": request.server_label, "name": request.name, "arguments": request.arguments}
        what = f"mcp_approval handler {self.policy} for tool {request.name!r}"
        try:
            answer = await call_user_code(self._handler, asked, deadline_s=self._timeout, what=what)
        except UserCodeError as exc:
            return False, exc.message
        if not isinstance(answer, bool):
            return False, f"{what} returned {type(answer).__name__}, not a bool; the call was denied"
        return answer, None


class McpRecords:
    """A turn's MCP calls, as `ToolCall`s in the order the server made (or asked for) them."""

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []
        self._asked: dict[str, ToolCall] = {}

    def asked(self, request: McpApprovalRequest, approved: bool, failure: str | None) -> None:
        """The server asked approval for a call: its record, with the decision (the call's output comes later)."""
        record = ToolCall(
            call_id=request.request_id,
            name=request.name,
            arguments=request.arguments,
            server_label=request.server_label,
            approved=approved,
            error=failure,
        )
        self._asked[request.request_id] = record
        self.calls.append(record)

    def ran(self, call: McpCallItem) -> None:
        """The server ran a call: the record of its approval gets the outcome, or a new record is made."""
        record = self._asked.pop(call.approval_request_id, None) if call.approval_request_id else None
        if record is None:
            record = ToolCall(call_id=call.item_id, name=call.name, arguments=call.arguments)
            self.calls.append(record)
        record.call_id = call.item_id
        record.server_label = call.server_label
        record.output = call.output
        record.error = call.error


def approval_detail(request: McpApprovalRequest, approved: bool) -> str:
    """What the client's approval answer says on the turn's timeline."""
    return f"mcp_approval_response {request.server_label}.{request.name}: {'approved' if approved else 'denied'}"
