"""JavaScript configs (`promptfooconfig.js`): loaded as dicts, their inline functions called later by reference."""

from __future__ import annotations

import pytest

from rtflow.js import JsBridge, JsError, JsFunctionRef, NodeRuntime, load_js_config

from .conftest import WriteFile

HANDLER_CONFIG = """
module.exports = {
  description: 'tools in JavaScript',
  prompts: ['Weather in {{city}}?'],
  providers: [
    {
      id: 'openai:realtime:gpt-realtime',
      config: {
        functionCallHandler: async (name, args) => {
          const parsed = JSON.parse(args);
          return JSON.stringify({ tool: name, city: parsed.city, temp_c: 21 });
        },
      },
    },
  ],
  tests: [{ vars: { city: 'Kyoto' } }],
};
"""


def test_config_object_with_an_inline_handler(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """`module.exports = {...}` comes back as a dict; its inline function as a JsFunctionRef by key path."""
    file = write_js("promptfooconfig.js", HANDLER_CONFIG)
    config = load_js_config(file)
    handler = config["providers"][0]["config"]["functionCallHandler"]
    assert handler == JsFunctionRef(file=file, path="providers.0.config.functionCallHandler")
    assert config["tests"] == [{"vars": {"city": "Kyoto"}}]
    assert config["prompts"] == ["Weather in {{city}}?"]


@pytest.mark.anyio
async def test_call_ref_calls_the_inline_handler(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """A reference from `load_js_config` calls the inline function through a bridge's own worker."""
    file = write_js("promptfooconfig.js", HANDLER_CONFIG)
    handler = load_js_config(file)["providers"][0]["config"]["functionCallHandler"]
    async with JsBridge() as js:
        output = await js.call_ref(handler, ["get_weather", '{"city": "Oslo"}'], timeout=10)
    assert output == '{"tool":"get_weather","city":"Oslo","temp_c":21}'


@pytest.mark.anyio
async def test_call_ref_keeps_this(js: JsBridge, write_js: WriteFile) -> None:
    """A method is called on the object that holds it, so `this` works as in JavaScript."""
    file = write_js(
        "promptfooconfig.js",
        """
        module.exports = {
          providers: [{ id: 'custom', prefix: '>> ', callApi(prompt) { return this.prefix + prompt; } }],
        };
        """,
    )
    ref = load_js_config(file)["providers"][0]["callApi"]
    assert await js.call_ref(ref, ["hi"], timeout=10) == ">> hi"


def test_config_exporting_a_function(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """A config module that exports a (possibly async) function is called; its result is the config."""
    file = write_js(
        "promptfooconfig.mjs",
        """
        export default async function () {
          return { prompts: ['p'], providers: ['openai:chat:gpt-4.1-mini'], env: { built: 'by a function' } };
        }
        """,
    )
    assert load_js_config(file) == {
        "prompts": ["p"],
        "providers": ["openai:chat:gpt-4.1-mini"],
        "env": {"built": "by a function"},
    }


def test_config_exporting_a_promise(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """A config module that exports a promise is awaited."""
    file = write_js(
        "promptfooconfig.js",
        """
        module.exports = new Promise((resolve) => setTimeout(() => resolve({ prompts: ['later'] }), 10));
        """,
    )
    assert load_js_config(file) == {"prompts": ["later"]}


def test_large_config_arrives_whole(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """A config far larger than a pipe's buffer (generated tests) arrives whole before the worker exits."""
    file = write_js(
        "promptfooconfig.js",
        """
        const tests = Array.from({ length: 20000 }, (_, i) => ({ vars: { question: `question number ${i}` } }));
        module.exports = { prompts: ['{{question}}'], tests };
        """,
    )
    config = load_js_config(file)
    assert len(config["tests"]) == 20000
    assert config["tests"][-1] == {"vars": {"question": "question number 19999"}}


def test_config_that_is_not_an_object(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """A config module whose export is not an object is refused, saying what it was."""
    file = write_js("promptfooconfig.js", "module.exports = ['a', 'list'];\n")
    with pytest.raises(JsError, match="the config must be an object, but the module gives an array"):
        load_js_config(file)


def test_config_that_throws_names_its_line(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """A config that throws while loading fails with its file and line."""
    file = write_js(
        "promptfooconfig.js",
        """
        const base = { prompts: [] };
        throw new Error('no API key in the environment');
        """,
    )
    with pytest.raises(JsError) as failed:
        load_js_config(file)
    assert failed.value.kind == "load"
    assert (failed.value.file, failed.value.line) == (file, 2)
    assert str(failed.value).endswith("promptfooconfig.js:2: Error: no API key in the environment")


@pytest.mark.anyio
async def test_call_ref_to_a_path_without_a_function(js: JsBridge, write_js: WriteFile) -> None:
    """A reference whose key path names no function fails saying which path."""
    file = write_js("promptfooconfig.js", "module.exports = { providers: [{ id: 'x' }] };\n")
    with pytest.raises(JsError, match=r"the config has no function at providers\.0\.id"):
        await js.call_ref(JsFunctionRef(file=file, path="providers.0.id"), [], timeout=10)


def test_a_problem_in_a_javascript_configs_data_names_its_key_path(
    node_present: NodeRuntime, write_js: WriteFile
) -> None:
    """A JavaScript config has no YAML marks: a problem in its data is named by the whole key path (not placed at
    1:1 with no key, as if the file's first character were at fault)."""
    from rtflow.errors import FlowLoadError
    from rtflow.flow.loader import load

    for bad, expected in [
        ("{ typ: 'icontains', value: 'hi' }", "tests.0.assert.0.typ: unknown key `typ`; did you mean `type`?"),
        ("{ type: 'latency', value: 'soon' }", "tests.0.assert.0.value: latency needs a number (milliseconds)"),
        ("{ type: 'cost', value: 'cheap' }", "defaultTest.assert.0.value: cost needs a number"),  # as written
    ]:
        where = (
            "defaultTest: { assert: [%s] }, tests: [{ vars: { q: 'hi' } }]"
            if "cost" in bad
            else ("tests: [{ vars: { q: 'hi' }, assert: [%s] }]")
        )
        file = write_js(
            "promptfooconfig.js",
            f"""
            module.exports = {{
              providers: ['openai:chat:gpt-4.1-mini'],
              prompts: ['{{{{q}}}}'],
              {where % bad},
            }};
            """,
        )
        with pytest.raises(FlowLoadError) as failed:
            load(file)
        assert f"{file}: {expected}" in str(failed.value)
