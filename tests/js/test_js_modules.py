"""Calling user JavaScript: every module form promptfoo suites use, sync and async, with promptfoo's call shapes."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from rtflow.js import JsBridge, JsError

from .conftest import WriteFile

pytestmark = pytest.mark.anyio


async def test_commonjs_default_and_named_exports(js: JsBridge, write_js: WriteFile) -> None:
    """`module.exports = fn` is the default; `module.exports.name` is found by name."""
    file = write_js(
        "prompt.js",
        """
        module.exports = function (name) { return `Hello ${name}`; };
        module.exports.shout = (name) => `HELLO ${name.toUpperCase()}`;
        """,
    )
    assert await js.call(file, None, ["Ada"], timeout=10) == "Hello Ada"
    assert await js.call(file, "shout", ["Ada"], timeout=10) == "HELLO ADA"


async def test_commonjs_object_of_functions(js: JsBridge, write_js: WriteFile) -> None:
    """`module.exports = {a, b}` exposes each function by name."""
    file = write_js("tools.js", "module.exports = { add: (a, b) => a + b, pair: (a) => [a, a] };\n")
    assert await js.call(file, "add", [2, 3], timeout=10) == 5
    assert await js.call(file, "pair", [{"k": 1}], timeout=10) == [{"k": 1}, {"k": 1}]


async def test_esm_default_and_named_exports(js: JsBridge, write_js: WriteFile) -> None:
    """An `.mjs` file's `export default` and named exports are both callable."""
    file = write_js(
        "prompt.mjs",
        """
        export default function ({ vars }) { return `Q: ${vars.question}`; }
        export const count = (items) => items.length;
        """,
    )
    assert await js.call(file, None, [{"vars": {"question": "why?"}}], timeout=10) == "Q: why?"
    assert await js.call(file, "count", [[1, 2, 3]], timeout=10) == 3


async def test_js_file_in_a_module_package_is_esm(js: JsBridge, write_js: WriteFile) -> None:
    """A `.js` file under a package.json with `"type": "module"` loads as an ES module."""
    write_js("esm/package.json", '{"type": "module"}\n')
    file = write_js(
        "esm/prompt.js",
        """
        import { join } from 'node:path';
        export default () => join('a', 'b');
        export function named() { return 'named'; }
        """,
    )
    assert await js.call(file, None, [], timeout=10) == "a/b"
    assert await js.call(file, "named", [], timeout=10) == "named"


async def test_async_functions_are_awaited(js: JsBridge, write_js: WriteFile) -> None:
    """An async function's promise is awaited, in both module systems."""
    cjs = write_js(
        "slow.js",
        """
        module.exports = async (ms) => { await new Promise((r) => setTimeout(r, ms)); return { waited: ms }; };
        """,
    )
    esm = write_js("slow.mjs", "export default async () => 'esm done';\n")
    assert await js.call(cjs, None, [20], timeout=10) == {"waited": 20}
    assert await js.call(esm, None, [], timeout=10) == "esm done"


async def test_many_calls_in_flight_at_once(js: JsBridge, write_js: WriteFile) -> None:
    """Concurrent calls share one worker; each gets its own answer, whatever order they finish in."""
    file = write_js(
        "echo.js",
        """
        module.exports = async (i) => { await new Promise((r) => setTimeout(r, (i * 7) % 20)); return i * 2; };
        module.exports.pid = () => process.pid;
        """,
    )
    results: dict[int, int] = {}

    async def one(index: int) -> None:
        results[index] = await js.call(file, None, [index], timeout=10)

    async with anyio.create_task_group() as group:
        for index in range(200):
            group.start_soon(one, index)
    assert results == {index: index * 2 for index in range(200)}
    first_pid = await js.call(file, "pid", [], timeout=10)
    assert await js.call(file, "pid", [], timeout=10) == first_pid


async def test_prompt_function_returns_a_string(js: JsBridge, write_js: WriteFile) -> None:
    """promptfoo's prompt function shape: `({vars, provider}) => string`."""
    file = write_js(
        "prompt.js",
        """
        module.exports = async function ({ vars, provider }) {
          return `You are talking to ${provider.id}. Tell me about ${vars.topic}.`;
        };
        """,
    )
    context = {"vars": {"topic": "tides"}, "provider": {"id": "openai:realtime:gpt-realtime", "label": None}}
    prompt = await js.call(file, None, [context], timeout=10)
    assert prompt == "You are talking to openai:realtime:gpt-realtime. Tell me about tides."


async def test_prompt_function_returns_chat_messages(js: JsBridge, write_js: WriteFile) -> None:
    """A prompt function may return a list of chat messages; they arrive as dicts."""
    file = write_js(
        "chat.mjs",
        """
        export default async ({ vars }) => [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: vars.question, name: undefined },
        ];
        """,
    )
    messages = await js.call(file, None, [{"vars": {"question": "What is 2+2?"}, "provider": {"id": "x"}}], timeout=10)
    assert messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 2+2?"}]


async def test_json_values_round_trip(js: JsBridge, write_js: WriteFile) -> None:
    """Arguments and results keep their JSON types; undefined becomes None, a Date its ISO text."""
    file = write_js(
        "values.js",
        """
        module.exports.echo = (value) => value;
        module.exports.nothing = () => undefined;
        module.exports.date = () => ({ at: new Date(0) });
        """,
    )
    value = {"s": "é ✓", "n": 1.5, "i": -3, "b": True, "none": None, "list": [1, "two", [3]], "nested": {"k": {}}}
    assert await js.call(file, "echo", [value], timeout=10) == value
    assert await js.call(file, "nothing", [], timeout=10) is None
    assert await js.call(file, "date", [], timeout=10) == {"at": "1970-01-01T00:00:00.000Z"}


async def test_large_arguments_and_results(js: JsBridge, write_js: WriteFile) -> None:
    """Megabyte-sized values cross in both directions, beside small calls in flight."""
    file = write_js("big.js", "module.exports = (text) => text + text;\nmodule.exports.small = () => 'small';\n")
    text = "x" * 700_000
    results: list[object] = []

    async def small() -> None:
        results.append(await js.call(file, "small", [], timeout=10))

    async with anyio.create_task_group() as group:
        group.start_soon(small)
        assert await js.call(file, None, [text], timeout=10) == text + text
    assert results == ["small"]


async def test_export_that_is_not_a_function_is_named(js: JsBridge, write_js: WriteFile) -> None:
    """Asking for a missing export says so and lists what the module has."""
    file = write_js("tools.js", "module.exports = { add: (a, b) => a + b, limit: 3 };\n")
    with pytest.raises(JsError) as missing:
        await js.call(file, "subtract", [], timeout=10)
    assert missing.value.kind == "export"
    assert "export `subtract` is not a function (there is none)" in str(missing.value)
    assert "add, limit" in str(missing.value)


async def test_missing_file_is_a_load_error(js: JsBridge, tmp_path: Path) -> None:
    """A file that does not exist fails with its path, not a Node stack."""
    with pytest.raises(JsError) as missing:
        await js.call(tmp_path / "nowhere.js", None, [], timeout=10)
    assert missing.value.kind == "load"
    assert str(missing.value).endswith("nowhere.js: no such file")


async def test_inline_expression_and_body(js: JsBridge, tmp_path: Path) -> None:
    """Inline code follows promptfoo's rule: one line is an expression, several lines a body with `return`."""
    flow = tmp_path / "flow.yaml"
    context = {"vars": {"city": "Paris"}}
    params = {"output": "In Paris.", "context": context}
    passed = await js.evaluate("output.includes(context.vars.city)", params, file=flow, line=9, timeout=10)
    assert passed is True
    body = "const words = output.split(' ');\nreturn { pass: words.length < 5, score: 1 / words.length };"
    assert await js.evaluate(body, {"output": "one two", "context": context}, file=flow, timeout=10) == {
        "pass": True,
        "score": 0.5,
    }


async def test_inline_code_errors_point_into_the_flow_file(js: JsBridge, tmp_path: Path) -> None:
    """A mistake in inline code is reported at the flow file's line where the code is written."""
    flow = tmp_path / "flow.yaml"
    with pytest.raises(JsError) as failed:
        await js.evaluate(
            "const n = output.lenght;\nreturn n.toFixed(1);", {"output": "x"}, file=flow, line=20, timeout=10
        )
    assert (failed.value.file, failed.value.line, failed.value.name) == (flow, 21, "TypeError")
    with pytest.raises(JsError) as broken:
        await js.evaluate("output.(", {"output": "x"}, file=flow, line=7, timeout=10)
    assert (broken.value.kind, broken.value.line, broken.value.name) == ("load", 7, "SyntaxError")
    assert str(broken.value).endswith("flow.yaml:7: SyntaxError: Unexpected token '('")
