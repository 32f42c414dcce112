"""What the JavaScript bridge costs: the first call on a fresh bridge, then each call at steady state.

A small promptfoo-style prompt function (`({vars, provider}) => string`) is called through `JsBridge`:

- start-up: a fresh bridge's first call (spawning Node, loading the worker and the prompt file), the median
  of several bridges, beside the one-off cost of finding Node (`node --version`, cached after that);
- sequential: calls one after another, each waiting for its answer, as one conversation's prompts do;
- concurrent: all calls in flight at once, as a run's many conversations do;
- for scale, the floor no bridge can beat: a line to a bare Node echo script and back, from blocking Python.

    python bench/js_bench.py
    python bench/js_bench.py --calls 20000 --runs 10
    RTFLOW_NODE=/path/to/node python bench/js_bench.py

Goals on a 2-core machine: first call <= 150 ms, <= 0.3 ms per call at steady state (sequential and concurrent).

`--run` also runs a whole flow twice in this process against the simulator, 200 threads x 5 turns (by default),
once with a JavaScript prompt function and once with the same function in Python, and prints the ratio of their
wall times (goal <= 1.1): what JavaScript costs a run, not a call.

    python bench/js_bench.py --run --threads 200 --turns 5
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import anyio

from rtflow.js import JsBridge, find_node

GOALS = {"first call": 0.150, "sequential": 0.0003, "concurrent": 0.0003}
PROMPT = """
module.exports = async function ({ vars, provider }) {
  return `You are a concise assistant for ${provider.id}. Answer: ${vars.question}`;
};
"""
CONTEXT = {"vars": {"question": "What is the capital of France?"}, "provider": {"id": "openai:chat:gpt-4.1-mini"}}
TIMEOUT_S = 30.0
ECHO = """
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (chunk) => {
  const lines = (pending + chunk).split('\\n');
  pending = lines.pop();
  for (const line of lines) process.stdout.write(line + '\\n');
});
"""


def _pipe_floor_s(node: Path, folder: Path, calls: int) -> float:
    """Per round trip of one request-sized line through a Node that only echoes it."""
    script = folder / "echo.js"
    script.write_text(ECHO, encoding="utf-8")
    line = b'{"id":1,"op":"call","file":"/x/prompt.js","export":null,"args":[{"vars":{"question":"?"}}]}\n'
    with subprocess.Popen([str(node), str(script)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0) as echo:
        assert echo.stdin is not None and echo.stdout is not None
        for _ in range(200):
            echo.stdin.write(line)
            echo.stdout.readline()
        started = time.perf_counter()
        for _ in range(calls):
            echo.stdin.write(line)
            echo.stdout.readline()
        elapsed = (time.perf_counter() - started) / calls
        echo.stdin.close()
    return elapsed


async def _first_call_s(prompt: Path) -> float:
    started = time.perf_counter()
    async with JsBridge() as js:
        await js.call(prompt, None, [CONTEXT], timeout=TIMEOUT_S)
        return time.perf_counter() - started


async def _steady_per_call_s(prompt: Path, calls: int) -> tuple[float, float]:
    async with JsBridge() as js:
        for _ in range(200):  # warm-up: the module cache, V8's compiled code, the event loop's free lists
            await js.call(prompt, None, [CONTEXT], timeout=TIMEOUT_S)

        started = time.perf_counter()
        for _ in range(calls):
            await js.call(prompt, None, [CONTEXT], timeout=TIMEOUT_S)
        sequential = (time.perf_counter() - started) / calls

        async def one() -> None:
            await js.call(prompt, None, [CONTEXT], timeout=TIMEOUT_S)

        started = time.perf_counter()
        async with anyio.create_task_group() as group:
            for _ in range(calls):
                group.start_soon(one)
        concurrent = (time.perf_counter() - started) / calls
    return sequential, concurrent


_JS_CONVERSATION = """
module.exports = ({ vars }) => {
  const messages = [{ role: 'system', content: 'Be brief.' }];
  for (const turn of vars._conversation) {
    messages.push({ role: 'user', content: turn.input }, { role: 'assistant', content: turn.output });
  }
  messages.push({ role: 'user', content: vars.question });
  return messages;
};
"""
_PY_CONVERSATION = """
def build(context):
    vars = context["vars"]
    messages = [{"role": "system", "content": "Be brief."}]
    for turn in vars["_conversation"]:
        messages += [{"role": "user", "content": turn["input"]}, {"role": "assistant", "content": turn["output"]}]
    messages.append({"role": "user", "content": vars["question"]})
    return messages
"""


def _run_ratio(threads: int, turns: int) -> float:
    """Wall time of the flow with the JavaScript prompt function over the same with the Python one."""
    import yaml

    import rtflow

    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "conversation.js").write_text(_JS_CONVERSATION)
        (root / "conversation.py").write_text(_PY_CONVERSATION)
        walls = {}
        # Each measured twice, alternating, the better kept: the first run of a process pays for imports.
        rounds = [("python", "file://conversation.py:build"), ("javascript", "file://conversation.js")] * 2
        for name, prompt in rounds:
            flow = root / f"{name}.yaml"
            tests = [
                {"vars": {"question": f"question {turn} of {thread}"}, "metadata": {"conversationId": f"t{thread}"}}
                for thread in range(threads)
                for turn in range(turns)
            ]
            document = {"providers": ["openai:realtime:gpt-realtime"], "prompts": [prompt], "tests": tests}
            flow.write_text(yaml.safe_dump(document))
            started = time.perf_counter()
            result = rtflow.run(flow, sim=True, store=False, concurrency=threads)
            walls[name] = min(walls.get(name, float("inf")), time.perf_counter() - started)
            assert len(result.turns) == threads * turns and result.counts.get("error", 0) == 0, result
            print(f"{name:<11} {walls[name]:.2f} s for {threads} x {turns} turns")
    return walls["javascript"] / walls["python"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000, help="calls per steady-state figure (default 5000)")
    parser.add_argument("--runs", type=int, default=7, help="fresh bridges for the start-up median (default 7)")
    parser.add_argument("--run", action="store_true", help="also compare whole runs: JavaScript and Python prompts")
    parser.add_argument("--threads", type=int, default=200)
    parser.add_argument("--turns", type=int, default=5)
    args = parser.parse_args()
    if args.run:
        ratio = _run_ratio(args.threads, args.turns)
        print(f"javascript / python wall time: {ratio:.2f} (goal <= 1.1)")

    started = time.perf_counter()
    node = find_node()
    find_s = time.perf_counter() - started
    print(f"node: {node.describe()}")

    with tempfile.TemporaryDirectory() as folder:
        prompt = Path(folder) / "prompt.js"
        prompt.write_text(PROMPT, encoding="utf-8")
        first_calls = [anyio.run(_first_call_s, prompt) for _ in range(args.runs)]
        sequential, concurrent = anyio.run(_steady_per_call_s, prompt, args.calls)
        floor = _pipe_floor_s(node.executable, Path(folder), args.calls)

    figures = {
        "find Node": (find_s, None),
        "first call": (statistics.median(first_calls), GOALS["first call"]),
        "sequential": (sequential, GOALS["sequential"]),
        "concurrent": (concurrent, GOALS["concurrent"]),
        "pipe floor": (floor, None),
    }
    within = True
    print(f"{'measure':<12} {'figure':>11}           goal")
    for name, (seconds, goal) in figures.items():
        unit = "per call" if name in ("sequential", "concurrent", "pipe floor") else ""
        verdict = "" if goal is None else f"{goal * 1000:g} ms {'ok' if seconds <= goal else 'OVER'}"
        within = within and (goal is None or seconds <= goal)
        print(f"{name:<12} {seconds * 1000:8.3f} ms {unit:<9} {verdict}".rstrip())
    print(f"first calls (ms): {', '.join(f'{seconds * 1000:.0f}' for seconds in first_calls)}")
    print(f"calls per second: {1 / sequential:,.0f} sequential, {1 / concurrent:,.0f} concurrent")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
