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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=5000, help="calls per steady-state figure (default 5000)")
    parser.add_argument("--runs", type=int, default=7, help="fresh bridges for the start-up median (default 7)")
    args = parser.parse_args()

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
