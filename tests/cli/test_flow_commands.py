"""`rtflow validate`, `rtflow graph` and `rtflow schema`, through click's runner and one real process."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from rtflow.cli import main

REPO_ROOT = Path(__file__).resolve().parents[2]

needs_graphviz = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed")

FLOW = """\
description: Realtime with chat fallback
providers:
  - id: openai:realtime:gpt-realtime
    label: realtime
    fallback: {id: openai:chat:gpt-4.1-mini, label: chat}
prompts:
  - "{{ question }}"
tests:
  - vars: {question: "What should I see in Japan?"}
    metadata: {conversationId: japan_travel}
    assert: [{type: icontains, value: kyoto}]
  - vars: {question: "And what should I eat?"}
    metadata: {conversationId: japan_travel}
  - vars: {question: "Say \\"cheese\\""}
    metadata: {conversationId: 'say_"cheese"'}
    assert: [{type: llm-rubric, value: says cheese}]
threads:
  tech:
    - question: How does real-time AI work?
    - question: Why is latency hard?
    - question: What is a WebSocket?
      assert: [{type: icontains, value: socket}]
"""


@pytest.fixture
def flow_file(tmp_path: Path) -> Path:
    """A small valid flow: two threads from tests (one with quotes in its id), one from `threads:`."""
    path = tmp_path / "flow.yaml"
    path.write_text(FLOW, encoding="utf-8")
    return path


@pytest.fixture
def bad_flow_file(tmp_path: Path) -> Path:
    """A flow with a misspelt top-level key."""
    path = tmp_path / "bad.yaml"
    path.write_text(FLOW.replace("tests:", "testz:"), encoding="utf-8")
    return path


def _invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_validate_prints_counts_critical_path_and_warnings(flow_file: Path) -> None:
    """validate exits 0 and reports the plan's counts, its critical path and the compiler's warnings."""
    code, out, _ = _invoke("validate", str(flow_file))
    assert code == 0, out
    assert f"{flow_file}: valid" in out
    rows = dict(
        re.split(r"\s{2,}", line.strip(), maxsplit=1)
        for line in out.splitlines()
        if re.match(r"^  [a-z][a-z ]+  ", line)
    )
    assert rows == {
        "threads": "3",
        "conversations": "3",
        "turns": "6",
        "call nodes": "12",
        "fallback nodes": "6",
        "grade nodes": "3",
        "providers": "realtime, chat",
        "critical path": "3 call nodes (realtime/tech/1 -> realtime/tech/2 -> realtime/tech/3)",
    }
    assert "model-graded assertions (llm-rubric)" in out


def test_validate_shows_each_provider_warning_once(tmp_path: Path) -> None:
    """What a provider warns about (temperature on GA Realtime) is listed once by validate."""
    path = tmp_path / "flow.yaml"
    path.write_text(
        FLOW.replace("    label: realtime\n", "    label: realtime\n    config: {temperature: 0.5}\n"), encoding="utf-8"
    )
    code, out, _ = _invoke("validate", str(path))
    assert code == 0, out
    assert out.count("temperature is not supported by the GA Realtime API") == 1


def test_validate_applies_repeat_and_thread_filter(flow_file: Path) -> None:
    """--repeat multiplies conversations and --thread narrows them to matching thread ids."""
    code, out, _ = _invoke("validate", str(flow_file), "--repeat", "2", "--thread", "japan_*")
    assert code == 0, out
    assert "conversations   2\n" in out
    assert "turns           4\n" in out
    code, _, err = _invoke("validate", str(flow_file), "--thread", "nothing*")
    assert code == 2
    assert "matches no thread; thread ids are: japan_travel" in err


def test_bad_flow_exits_2_with_the_loaders_message(bad_flow_file: Path) -> None:
    """A flow that does not load ends with exit code 2 and the loader's message naming the key, no traceback."""
    code, out, err = _invoke("validate", str(bad_flow_file))
    assert code == 2
    assert "unknown key `testz`; did you mean `tests`?" in err
    assert "Traceback" not in out + err
    code, _, err = _invoke("graph", str(bad_flow_file), "--dot")
    assert code == 2 and "testz" in err


def test_missing_flow_file_exits_2(tmp_path: Path) -> None:
    """A flow path that does not exist is a flow error, not a crash."""
    code, _, err = _invoke("validate", str(tmp_path / "absent.yaml"))
    assert code == 2
    assert "no such flow file" in err


@needs_graphviz
def test_graph_dot_pipes_into_graphviz(flow_file: Path) -> None:
    """`graph --dot` writes DOT to stdout that `dot -Tsvg` turns into an SVG of every node."""
    code, out, _ = _invoke("graph", str(flow_file), "--dot")
    assert code == 0
    assert out.startswith("digraph rtflow {")
    svg = subprocess.run(["dot", "-Tsvg"], input=out.encode(), capture_output=True, check=True).stdout.decode()
    assert "<svg" in svg
    assert svg.count('class="node"') == 12 + 3
    assert svg.count('class="cluster"') == 3


def test_graph_mermaid_and_json_outputs(flow_file: Path) -> None:
    """--mermaid prints a flowchart with a subgraph per conversation; --json prints node-link data."""
    code, out, _ = _invoke("graph", str(flow_file), "--mermaid")
    assert code == 0
    assert out.startswith("flowchart TB\n")
    assert out.count("\n  subgraph ") == 3
    code, out, _ = _invoke("graph", str(flow_file), "--json")
    assert code == 0
    graph = nx.node_link_graph(json.loads(out), directed=True, multigraph=False)
    assert graph.number_of_nodes() == 15
    assert graph.nodes['realtime/say_"cheese"/1~chat']["is_fallback"] is True
    assert {kind for _, _, kind in graph.edges(data="kind")} == {"sequence", "fallback", "grade"}


def test_graph_output_file_format_follows_the_suffix(flow_file: Path, tmp_path: Path) -> None:
    """-o x.mmd writes Mermaid and -o x.json node-link JSON, when no format flag is given."""
    mermaid, node_link = tmp_path / "plan.mmd", tmp_path / "plan.json"
    assert _invoke("graph", str(flow_file), "-o", str(mermaid))[0] == 0
    assert _invoke("graph", str(flow_file), "-o", str(node_link))[0] == 0
    assert mermaid.read_text(encoding="utf-8").startswith("flowchart TB")
    assert len(json.loads(node_link.read_text(encoding="utf-8"))["nodes"]) == 15


@needs_graphviz
def test_graph_output_svg_is_drawn_by_graphviz(flow_file: Path, tmp_path: Path) -> None:
    """-o x.svg renders through Graphviz into an SVG file."""
    svg = tmp_path / "plan.svg"
    code, _, err = _invoke("graph", str(flow_file), "-o", str(svg))
    assert code == 0, err
    text = svg.read_text(encoding="utf-8")
    assert "<svg" in text and text.count('class="node"') == 15


def test_graph_image_without_graphviz_says_how_to_install_it(flow_file: Path, tmp_path: Path) -> None:
    """With no `dot` on PATH, -o x.svg fails with install instructions for apt and brew."""
    code, _, err = _invoke("graph", str(flow_file), "-o", str(tmp_path / "plan.svg"), env={"PATH": str(tmp_path)})
    assert code == 1
    assert "apt-get install graphviz" in err and "brew install graphviz" in err
    assert not (tmp_path / "plan.svg").exists()


def test_graph_image_refuses_a_non_dot_format(flow_file: Path, tmp_path: Path) -> None:
    """An image can only be drawn from DOT, so --mermaid -o x.svg is a usage error."""
    code, _, err = _invoke("graph", str(flow_file), "--mermaid", "-o", str(tmp_path / "plan.svg"))
    assert code == 2
    assert "drawn from DOT" in err


def test_schema_prints_the_committed_schema() -> None:
    """`rtflow schema` prints exactly the text of schemas/flow.schema.json."""
    committed = REPO_ROOT / "schemas" / "flow.schema.json"
    code, out, _ = _invoke("schema")
    assert code == 0
    parsed = json.loads(out)
    assert parsed["title"] == "rtflow flow file"
    assert out.endswith("}\n") and out.startswith('{\n  "')
    if not committed.exists():
        pytest.fail("schemas/flow.schema.json is missing: generate it with `rtflow schema -o schemas/flow.schema.json`")
    assert out == committed.read_text(encoding="utf-8")


def test_real_process_validates_and_fails_cleanly(flow_file: Path, bad_flow_file: Path) -> None:
    """`python -m rtflow.cli` validates a flow (exit 0) and reports a bad one with exit 2 and no traceback."""
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    good = subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "validate", str(flow_file)], capture_output=True, text=True, env=env
    )
    assert good.returncode == 0, good.stderr
    assert "conversations   3" in good.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "rtflow.cli", "validate", str(bad_flow_file)], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2
    assert "unknown key `testz`" in bad.stderr
    assert "Traceback" not in bad.stderr + bad.stdout
    helped = subprocess.run([sys.executable, "-m", "rtflow.cli", "--help"], capture_output=True, text=True, env=env)
    assert helped.stdout.startswith("Usage: rtflow ")


@needs_graphviz
def test_console_script_graph_pipes_into_dot(flow_file: Path) -> None:
    """The installed `rtflow` script's `graph --dot` output, piped into `dot -Tsvg`, becomes an SVG."""
    script = Path(sys.executable).with_name("rtflow")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "rtflow.cli"]
    graph = subprocess.Popen([*command, "graph", str(flow_file), "--dot"], stdout=subprocess.PIPE)
    assert graph.stdout is not None
    drawn = subprocess.run(["dot", "-Tsvg"], stdin=graph.stdout, capture_output=True, check=False)
    graph.stdout.close()
    assert graph.wait(timeout=60) == 0
    assert drawn.returncode == 0, drawn.stderr
    svg = drawn.stdout.decode()
    assert "<svg" in svg and svg.count('class="node"') == 15
    assert "realtime/tech/3" in svg
