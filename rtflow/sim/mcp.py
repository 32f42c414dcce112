"""The simulator's MCP servers (GA dialect): fakes, since no real MCP server can be reached offline.

A session whose tools include `{type: mcp, server_label, server_url | connector_id | tunnel_id, ...}` gets, after
its `session.updated`, each new server's tool listing: `conversation.item.added` of an `mcp_list_tools` item,
`mcp_list_tools.in_progress`, `mcp_list_tools.completed`, `conversation.item.done` with the tools filled in. The
fake server's tools are the names of `allowed_tools` (a list, or a filter's `tool_names`), else one tool
`lookup`; each takes `{query: string}` and answers with a deterministic echo of its arguments
(`echo_output`). The session echoes an MCP tool without its `authorization` and `headers`: secrets go one way.

A response runs an MCP tool when the last item is a user message naming it (a word of 4+ letters of its name, as
the model does for function tools); the call's arguments are `{query: <the user's text>}`. Its output items, in
order: the `mcp_call` item (`response.output_item.added`, `conversation.item.added`,
`response.mcp_call_arguments.delta`, `.done`, `response.mcp_call.in_progress`, `response.mcp_call.completed`,
`conversation.item.done`, `response.output_item.done` with the output), then a text answer `Tool <name> on
<server> returned: <output>`. The official types do not pin where `mcp_call.in_progress` falls; the simulator
sends it once the arguments are known, as the call starts. When the tool needs approval (`require_approval:
always`, or a filter whose `always.tool_names` names it) the response instead ends with an `mcp_approval_request`
item; the client answers with a `conversation.item.create` of an `mcp_approval_response` and a `response.create`:
approved, that response runs the call (its `approval_request_id` set); denied, it says `Tool <name> on <server>
was not allowed.` Without `require_approval` no approval is asked (the live service may ask by default).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rtflow.sim.model import item_text, names_tool
from rtflow.sim.session_state import SettingsError, unknown_keys

__all__ = [
    "DEFAULT_TOOL",
    "McpServer",
    "McpStep",
    "check_approval_response",
    "check_mcp_tool",
    "echo_output",
    "list_new_servers",
    "list_tools_item",
    "mcp_servers",
    "plan_mcp_step",
    "shown_tool",
]

DEFAULT_TOOL = "lookup"
"""The fake server's one tool when the session's `allowed_tools` names none."""
_MCP_TOOL_KEYS = frozenset(
    {
        "type",
        "server_label",
        "server_url",
        "connector_id",
        "tunnel_id",
        "allowed_tools",
        "require_approval",
        "headers",
        "authorization",
        "server_description",
        "allowed_callers",
        "defer_loading",
    }
)
"""The keys of the official `Mcp` tool type; any other is refused like an unknown session key."""
_SECRET_KEYS = frozenset({"authorization", "headers"})
_INPUT_SCHEMA = {"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]}


def check_mcp_tool(param: str, tool: Mapping[str, Any]) -> dict[str, Any]:
    """An `mcp` tool of a session update as the session keeps it, or a SettingsError naming what is wrong."""
    unknown_keys(param, tool, _MCP_TOOL_KEYS)
    if not isinstance(tool.get("server_label"), str) or not tool["server_label"]:
        raise SettingsError("missing_required_parameter", f"Missing required parameter: '{param}.server_label'.", param)
    if not any(tool.get(key) for key in ("server_url", "connector_id", "tunnel_id")):
        raise SettingsError(
            "invalid_value", "One of 'server_url', 'connector_id' or 'tunnel_id' must be provided.", param
        )
    return dict(tool)


def shown_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    """A session tool as the session echoes it: an MCP tool's secrets left out."""
    if tool.get("type") != "mcp":
        return dict(tool)
    return {key: value for key, value in tool.items() if key not in _SECRET_KEYS}


@dataclass(frozen=True)
class McpServer:
    """One fake MCP server: its label, its tools, and which of them need the client's approval."""

    label: str
    tool_names: tuple[str, ...]
    require_approval: Any

    def needs_approval(self, name: str) -> bool:
        """Whether a call of `name` waits for the client's approval."""
        rule = self.require_approval
        if rule == "always":
            return True
        if isinstance(rule, Mapping):
            always = rule.get("always") or {}
            return name in (always.get("tool_names") or ())
        return False


def mcp_servers(tools: Sequence[Mapping[str, Any]]) -> list[McpServer]:
    """The session's MCP servers, in the order its tools name them."""
    servers = []
    for tool in tools:
        if tool.get("type") != "mcp":
            continue
        allowed = tool.get("allowed_tools")
        names = allowed.get("tool_names") if isinstance(allowed, Mapping) else allowed
        tool_names = tuple(str(name) for name in names or ()) or (DEFAULT_TOOL,)
        servers.append(McpServer(str(tool["server_label"]), tool_names, tool.get("require_approval")))
    return servers


def list_tools_item(server: McpServer, item_id: str, *, listed: bool) -> dict[str, Any]:
    """The `mcp_list_tools` item of `server` (its tools once `listed`)."""
    tools = [
        {"name": name, "input_schema": _INPUT_SCHEMA, "description": f"Echoes its arguments ({server.label})."}
        for name in server.tool_names
    ]
    return {"id": item_id, "type": "mcp_list_tools", "server_label": server.label, "tools": tools if listed else []}


def echo_output(name: str, arguments: str) -> str:
    """What a fake tool answers: its name and its arguments, deterministically."""
    try:
        parsed = json.loads(arguments)
    except ValueError:
        parsed = arguments
    return json.dumps({"tool": name, "echo": parsed}, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class McpStep:
    """What a response does with MCP: run a call, ask approval for one, or say a call was not allowed."""

    kind: Literal["call", "ask", "denied"]
    server_label: str
    name: str
    arguments: str
    approval_request_id: str | None = None

    @property
    def output(self) -> str:
        """The call's output (a fake tool's echo)."""
        return echo_output(self.name, self.arguments)

    @property
    def answer(self) -> str | None:
        """The text the response speaks after the step (none when it waits for an approval)."""
        if self.kind == "call":
            return f"Tool {self.name} on {self.server_label} returned: {self.output}"
        if self.kind == "denied":
            return f"Tool {self.name} on {self.server_label} was not allowed."
        return None


def plan_mcp_step(tools: Sequence[Mapping[str, Any]], context: Sequence[Mapping[str, Any]]) -> McpStep | None:
    """What the response to `context` does with the session's MCP servers, or None (the model answers as usual)."""
    servers = mcp_servers(tools)
    if not servers or not context:
        return None
    last = context[-1]
    if last.get("type") == "mcp_approval_response":
        request = next((item for item in context if item.get("id") == last.get("approval_request_id")), None)
        if request is None:
            return None
        kind: Literal["call", "denied"] = "call" if last.get("approve") else "denied"
        return McpStep(kind, request["server_label"], request["name"], request["arguments"], request["id"])
    if last.get("type") != "message" or last.get("role") != "user":
        return None
    text = item_text(last)
    for server in servers:
        for name in server.tool_names:
            if names_tool(name, text):
                arguments = json.dumps({"query": text})
                return McpStep("ask" if server.needs_approval(name) else "call", server.label, name, arguments)
    return None


def check_approval_response(item: dict[str, Any], items: Mapping[str, Mapping[str, Any]]) -> None:
    """A client's `mcp_approval_response` item: it must answer an approval request of this conversation."""
    request = items.get(item.get("approval_request_id"))  # type: ignore[arg-type]
    if request is None or request.get("type") != "mcp_approval_request":
        raise SettingsError(
            "invalid_value",
            f"No MCP approval request with id '{item.get('approval_request_id')}' found.",
            "item.approval_request_id",
        )
    if not isinstance(item.get("approve"), bool):
        raise SettingsError("invalid_type", "Invalid type for 'item.approve': expected a boolean.", "item.approve")


class _Conversation(Protocol):
    """What listing a server's tools needs of the session (`RealtimeConnection`)."""

    def new_id(self, prefix: str) -> str: ...

    def append_item(self, item: dict[str, Any], after: str | None = None, at_start: bool = False) -> str | None: ...

    def previous_id(self, item_id: str) -> str | None: ...

    async def emit(self, event: dict[str, Any]) -> None: ...


async def list_new_servers(session: _Conversation, tools: Sequence[Mapping[str, Any]], listed: set[str]) -> None:
    """List the tools of each MCP server the session has not listed yet (after its `session.updated`)."""
    for server in mcp_servers(tools):
        if server.label in listed:
            continue
        listed.add(server.label)
        item = list_tools_item(server, session.new_id("mcpl"), listed=False)
        previous = session.append_item(item)
        await session.emit({"type": "conversation.item.added", "previous_item_id": previous, "item": dict(item)})
        await session.emit({"type": "mcp_list_tools.in_progress", "item_id": item["id"]})
        item.update(list_tools_item(server, item["id"], listed=True))
        await session.emit({"type": "mcp_list_tools.completed", "item_id": item["id"]})
        await session.emit({"type": "conversation.item.done", "previous_item_id": previous, "item": item})
