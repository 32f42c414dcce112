"""Flows whose Realtime provider offers an MCP tool, run against the simulator: calls recorded, approvals answered."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

import rtflow
from rtflow.sim.mcp import echo_output

SECRET = "mcp-bearer-token-never-logged-42"
QUESTION = "please search the docs for refunds"


def run_flow(folder: Path, tool: dict[str, Any] | None = None, **config: Any) -> Any:
    mcp = {
        "type": "mcp",
        "server_label": "docs",
        "server_url": "https://mcp.example.com/sse",
        "authorization": SECRET,
        "allowed_tools": ["search_docs"],
        **(tool or {}),
    }
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "rt", "config": {"tools": [mcp], **config}}],
        "prompts": ["{{ question }}"],
        "threads": {"t": [{"question": QUESTION}]},
        "execution": {"retries": 0, "timeout": "10s"},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return rtflow.run(path, sim=True, store=False)


def only_output(result: Any) -> Any:
    (turn,) = result.turns
    assert turn.output is not None, (turn.status, turn.error)
    return turn.output


def test_mcp_call_is_recorded_and_its_output_answers(tmp_path: Path) -> None:
    """The server's MCP call is a ToolCall with its server; the answer holds its output; marks show the events."""
    output = only_output(run_flow(tmp_path))
    (call,) = output.tool_calls
    assert call.server_label == "docs" and call.name == "search_docs" and call.approved is None
    assert json.loads(call.arguments) == {"query": QUESTION}
    assert call.output == echo_output("search_docs", call.arguments)
    assert call.output in output.text
    marks = [mark.type for mark in output.events]
    assert "mcp_list_tools.completed" in marks and "response.mcp_call.completed" in marks


def test_approval_required_and_approved_by_default(tmp_path: Path) -> None:
    """require_approval always, mcp_approval unset (approve): the call runs, recorded as approved."""
    output = only_output(run_flow(tmp_path, {"require_approval": "always"}))
    (call,) = output.tool_calls
    assert call.approved is True and call.output is not None and call.output in output.text
    approvals = [mark for mark in output.events if mark.type == "conversation.item.create" and mark.detail]
    assert [mark.detail for mark in approvals] == ["mcp_approval_response docs.search_docs: approved"]


def test_approval_denied(tmp_path: Path) -> None:
    """mcp_approval deny: no call is made, the record says denied, the answer says it was not allowed."""
    output = only_output(run_flow(tmp_path, {"require_approval": "always"}, mcp_approval="deny"))
    (call,) = output.tool_calls
    assert call.approved is False and call.output is None
    assert output.text == "Tool search_docs on docs was not allowed."


def test_handler_decides_by_tool_name(tmp_path: Path) -> None:
    """A handler gets {server_label, name, arguments}: it approves search_docs and nothing else."""
    (tmp_path / "handlers.py").write_text(
        "def decide(request):\n"
        "    assert set(request) == {'server_label', 'name', 'arguments'}\n"
        "    return request['name'] == 'search_docs'\n"
    )
    approving = only_output(
        run_flow(tmp_path, {"require_approval": "always"}, mcp_approval="file://handlers.py:decide")
    )
    assert approving.tool_calls[0].approved is True
    denying = only_output(
        run_flow(
            tmp_path,
            {"require_approval": "always", "allowed_tools": ["search_tickets"]},
            mcp_approval="file://handlers.py:decide",
        )
    )
    assert denying.tool_calls[0].approved is False and denying.tool_calls[0].name == "search_tickets"


def test_authorization_never_reaches_the_records(tmp_path: Path) -> None:
    """The MCP tool's token appears nowhere in the run's records."""
    result = run_flow(tmp_path, {"require_approval": "always"})
    dumped = json.dumps([turn.model_dump(mode="json") for turn in result.turns])
    assert "search_docs" in dumped  # the records are there, and hold the call
    assert SECRET not in dumped
