"""What goes wrong in user JavaScript is reported with its file and line, and never breaks the bridge for long."""

from __future__ import annotations

import os
from pathlib import Path

import anyio
import pytest

from rtflow.js import JsBridge, JsError, JsFunctionRef, JsTimeoutError, JsWorkerError, NodeRuntime
from rtflow.log import capture_events

from .conftest import WriteFile

pytestmark = pytest.mark.anyio


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A killed child that is not yet reaped still answers; its /proc status says it is a zombie.
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            return "zombie" not in status.read()
    except FileNotFoundError:
        return False


async def test_syntax_error_in_commonjs_names_file_and_line(js: JsBridge, write_js: WriteFile) -> None:
    """A CommonJS syntax error is a load error at the line V8 reports."""
    file = write_js("prompt.js", "module.exports = function () {\n  return 1 +;\n};\n")
    with pytest.raises(JsError) as failed:
        await js.call(file, None, [], timeout=10)
    assert (failed.value.kind, failed.value.file, failed.value.line, failed.value.name) == (
        "load",
        file,
        2,
        "SyntaxError",
    )
    assert "prompt.js:2: SyntaxError: Unexpected token" in str(failed.value)


async def test_syntax_error_in_esm_names_file_and_line(js: JsBridge, write_js: WriteFile) -> None:
    """An ES module's syntax error, whose line Node keeps off the error object, still names file:line."""
    file = write_js("prompt.mjs", "export default function () {\n  return 1;\n}\nconst = 4;\n")
    with pytest.raises(JsError) as failed:
        await js.call(file, None, [], timeout=10)
    assert (failed.value.kind, failed.value.file, failed.value.line) == ("load", file, 4)
    assert "prompt.mjs:4: SyntaxError:" in str(failed.value)


async def test_thrown_error_names_file_and_line(js: JsBridge, write_js: WriteFile) -> None:
    """A TypeError inside the function points at the line in the user's file, not at the worker."""
    file = write_js(
        "prompt.js",
        """
        module.exports = function ({ vars }) {
          const settings = vars.settings;
          return settings.x;
        };
        """,
    )
    with pytest.raises(JsError) as failed:
        await js.call(file, None, [{"vars": {}}], timeout=10)
    error = failed.value
    assert (error.kind, error.file, error.line, error.name) == ("threw", file, 3, "TypeError")
    assert str(error).endswith("prompt.js:3: TypeError: Cannot read properties of undefined (reading 'x')")
    assert error.stack is not None and "prompt.js:3" in error.stack


async def test_rejected_promise_and_thrown_non_errors(js: JsBridge, write_js: WriteFile) -> None:
    """An async rejection is reported like a throw; throwing a plain value says what was thrown."""
    file = write_js(
        "fail.mjs",
        """
        export async function rejects() {
          await null;
          throw new RangeError('out of range');
        }
        export function throwsString() { throw 'plain text'; }
        """,
    )
    with pytest.raises(JsError) as rejected:
        await js.call(file, "rejects", [], timeout=10)
    assert (rejected.value.line, rejected.value.name) == (3, "RangeError")
    with pytest.raises(JsError, match=r"fail\.mjs: threw 'plain text'"):
        await js.call(file, "throwsString", [], timeout=10)


async def test_error_inside_a_helper_points_at_the_called_file(js: JsBridge, write_js: WriteFile) -> None:
    """An error thrown in a helper module is located at the called file's frame, the line the user wrote."""
    write_js("lib/helper.js", "exports.parse = (text) => JSON.parse(text);\n")
    file = write_js("prompt.js", "const { parse } = require('./lib/helper');\nmodule.exports = () => parse('{');\n")
    with pytest.raises(JsError) as failed:
        await js.call(file, None, [], timeout=10)
    assert (failed.value.file, failed.value.line, failed.value.name) == (file, 2, "SyntaxError")


async def test_error_through_a_symlink_names_the_path_given(js: JsBridge, write_js: WriteFile) -> None:
    """Node names a module by its real path; the error still names the file as rtflow was given it."""
    target = write_js("real/prompt.js", "module.exports = () => {\n  throw new Error('linked');\n};\n")
    link = target.parent.parent / "linked.js"
    link.symlink_to(target)
    with pytest.raises(JsError) as failed:
        await js.call(link, None, [], timeout=10)
    assert (failed.value.file, failed.value.line) == (link, 2)


async def test_error_in_a_function_defined_elsewhere_points_there(js: JsBridge, write_js: WriteFile) -> None:
    """When the called file is not on the stack at all, the first user frame is named instead."""
    helper = write_js("lib/tools.js", "exports.handler = () => {\n  throw new Error('tool failed');\n};\n")
    config = write_js("promptfooconfig.js", "module.exports = { handler: require('./lib/tools').handler };\n")
    with pytest.raises(JsError) as failed:
        await js.call_ref(JsFunctionRef(file=config, path="handler"), [], timeout=10)
    assert (failed.value.file, failed.value.line) == (helper, 2)
    assert str(failed.value).endswith("tools.js:2: Error: tool failed")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("() => () => 1", "returned a function (anonymous), which cannot be sent as JSON"),
        ("() => ({ count: 10n })", "returned a BigInt (10n) at result.count, which cannot be sent as JSON"),
        ("() => { const a = { b: {} }; a.b.up = a; return a; }", "returned a cycle at result.b.up"),
        ("() => ['a', undefined]", "returned undefined at result[1] inside an array"),
        ("() => ({ later: Promise.resolve(1) })", "returned a Promise at result.later (a missing await?)"),
        ("() => ({ seen: new Set([1]) })", "returned a Set at result.seen (convert it to an object or an array)"),
    ],
)
async def test_result_that_is_not_json_is_named(js: JsBridge, write_js: WriteFile, body: str, expected: str) -> None:
    """A result JSON cannot carry fails saying what it was and where, instead of arriving damaged."""
    file = write_js("prompt.js", f"module.exports = {body};\n")
    with pytest.raises(JsError) as failed:
        await js.call(file, None, [], timeout=10)
    assert failed.value.kind == "result"
    assert f"prompt.js: the default export {expected}" in str(failed.value)


async def test_console_output_goes_to_the_log_not_the_protocol(js: JsBridge, write_js: WriteFile) -> None:
    """console.log and process.stdout.write in user code reach rtflow's log; the call still returns."""
    file = write_js(
        "chatty.js",
        """
        console.log('loading chatty.js');
        module.exports = async (n) => {
          console.log('{"id": 1, "ok": true, "value": "forged"}');
          process.stdout.write('partial line without newline');
          console.error('to stderr', n);
          return n + 1;
        };
        """,
    )
    with capture_events() as events:
        assert await js.call(file, None, [41], timeout=10) == 42
        assert await js.call(file, None, [1], timeout=10) == 2
        await anyio.sleep(0.1)  # stderr is read by its own task
    lines = [event["line"] for event in events if event["event"] == "js.output"]
    assert "loading chatty.js" in lines
    assert '{"id": 1, "ok": true, "value": "forged"}' in lines
    assert any(line.startswith("partial line without newline") for line in lines)
    assert "to stderr 41" in "\n".join(lines)
    assert all(event["log_level"] == "info" for event in events if event["event"] == "js.output")


async def test_timeout_kills_the_worker_and_the_next_call_gets_a_fresh_one(js: JsBridge, write_js: WriteFile) -> None:
    """A never-settling call times out; calls in flight beside it fail saying why; the next call works."""
    file = write_js(
        "hang.js",
        """
        module.exports.hang = () => new Promise(() => {});
        module.exports.slow = () => new Promise((resolve) => setTimeout(() => resolve('late'), 5000));
        module.exports.pid = () => process.pid;
        """,
    )
    first_pid = await js.call(file, "pid", [], timeout=10)
    neighbour_error: list[BaseException] = []

    async def neighbour() -> None:
        try:
            await js.call(file, "slow", [], timeout=10)
        except JsWorkerError as exc:
            neighbour_error.append(exc)

    async with anyio.create_task_group() as group:
        group.start_soon(neighbour)
        await anyio.sleep(0.05)
        with pytest.raises(JsTimeoutError) as timed_out:
            await js.call(file, "hang", [], timeout=0.3)

    assert timed_out.value.timeout == 0.3
    assert timed_out.value.kind == "timeout"
    assert "hang.js: did not return within 0.3 s" in str(timed_out.value)
    assert [str(error) for error in neighbour_error] == [
        f"{file}: the JavaScript worker was restarted because {file} did not return within 0.3 s"
    ]
    second_pid = await js.call(file, "pid", [], timeout=10)
    assert second_pid != first_pid
    assert not _alive(first_pid)


async def test_busy_loop_is_timed_out_too(js: JsBridge, write_js: WriteFile) -> None:
    """A synchronous endless loop (which blocks Node's event loop) is stopped by the same timeout."""
    file = write_js("spin.js", "module.exports = () => { for (;;) {} };\nmodule.exports.ok = () => 'ok';\n")
    with anyio.fail_after(5), pytest.raises(JsTimeoutError):
        await js.call(file, None, [], timeout=0.3)
    assert await js.call(file, "ok", [], timeout=10) == "ok"


async def test_process_exit_in_user_code(js: JsBridge, write_js: WriteFile) -> None:
    """process.exit() in user code fails the call with the exit code; the next call starts a new worker."""
    file = write_js(
        "quits.js",
        """
        module.exports = () => { console.error('giving up'); process.exit(3); };
        module.exports.ok = () => 'still here';
        """,
    )
    with pytest.raises(JsWorkerError) as exited:
        await js.call(file, None, [], timeout=10)
    assert exited.value.worker_exit_code == 3
    assert "the JavaScript worker exited with code 3 while this file was running" in str(exited.value)
    assert "its last output: giving up" in str(exited.value)
    assert await js.call(file, "ok", [], timeout=10) == "still here"


async def test_stray_rejection_does_not_take_the_worker_down(js: JsBridge, write_js: WriteFile) -> None:
    """An unhandled rejection or a throw in a timer is logged; the worker and other calls carry on."""
    file = write_js(
        "sloppy.js",
        """
        module.exports = () => {
          Promise.reject(new Error('nobody listens'));
          setTimeout(() => { throw new Error('thrown in a timer'); }, 0);
          return new Promise((resolve) => setTimeout(() => resolve(process.pid), 30));
        };
        """,
    )
    with capture_events() as events:
        pid = await js.call(file, None, [], timeout=10)
        assert await js.call(file, None, [], timeout=10) == pid
        await anyio.sleep(0.1)
    output = "\n".join(event["line"] for event in events if event["event"] == "js.output")
    assert "unhandled promise rejection: Error: nobody listens" in output
    assert "uncaught exception: Error: thrown in a timer" in output


async def test_no_node_process_outlives_the_bridge(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """Leaving the bridge stops its worker, also when the block is cancelled with a call in flight."""
    file = write_js("hang.js", "module.exports.hang = () => new Promise(() => {});\nexports.pid = () => process.pid;\n")
    async with JsBridge() as js:
        calm_pid = await js.call(file, "pid", [], timeout=10)
    assert not _alive(calm_pid)

    with anyio.move_on_after(0.3):
        async with JsBridge() as js:
            cancelled_pid = await js.call(file, "pid", [], timeout=10)
            await js.call(file, "hang", [], timeout=60)
    assert not _alive(cancelled_pid)


async def test_bridge_used_outside_its_block(node_present: NodeRuntime, write_js: WriteFile) -> None:
    """A bridge that was not entered says how to use it."""
    file = write_js("prompt.js", "module.exports = () => 1;\n")
    with pytest.raises(RuntimeError, match="async with JsBridge"):
        await JsBridge().call(file, None, [], timeout=10)


async def test_an_endless_inline_loop_fails_alone_and_its_neighbours_answer(js: JsBridge, tmp_path: Path) -> None:
    """Inline code (a `javascript` assertion) that loops for ever is stopped by the worker a little before its
    timeout: it fails with its own reason, and the calls queued behind it (blocked while it spun) still answer
    on the same worker, where killing the worker used to fail them all."""
    flow = tmp_path / "flow.yaml"
    pid = await js.evaluate("process.pid", {}, file=flow, line=1, timeout=10)

    async def neighbour(results: list[object], code: str) -> None:
        try:
            results.append(await js.evaluate(code, {"output": "four"}, file=flow, line=9, timeout=3))
        except JsError as exc:
            results.append(exc)

    looped: list[object] = []
    threw: list[object] = []
    passed: list[object] = []
    async with anyio.create_task_group() as group:
        group.start_soon(neighbour, looped, "while (true) {}\nreturn true;")
        await anyio.sleep(0.05)
        group.start_soon(neighbour, threw, "throw new Error('boom');\n")
        group.start_soon(neighbour, passed, "output.includes('four')")
    (loop_error,) = looped
    assert isinstance(loop_error, JsError) and not isinstance(loop_error, JsWorkerError)
    assert "ran for 2.7 s without returning (a loop that never ends?) and was stopped" in str(loop_error)
    (boom,) = threw
    assert isinstance(boom, JsError) and "Error: boom" in str(boom)
    assert passed == [True]
    assert await js.evaluate("process.pid", {}, file=flow, line=1, timeout=10) == pid  # the same worker
