"""How long compiling a large suite takes, and how much memory it needs.

    python bench/compile_bench.py                      # 10,000 threads x 5 turns x 2 providers
    python bench/compile_bench.py --threads 2000 --turns 3 --no-fallback

The flow is built in memory through the spec models (as the loader would build it), then compiled: once
timed with nothing watching, with the process's peak resident size read before and after (it includes the
interpreter and the flow itself), then once more under tracemalloc for the peak of the compile's own
allocations.
The targets are 10 s and 1 GB for the default size.

`--from-file` measures what `rtflow validate` and `rtflow run` pay on a large suite: a promptfoo-style YAML file
(each test with `vars`, `metadata.conversationId` and an assertion, about 300 bytes) is written, then a child
process loads **and** compiles it, reporting its wall time and peak RSS:

    python bench/compile_bench.py --from-file --threads 1000 --turns 5      # goal <= 0.5 s
    python bench/compile_bench.py --from-file --threads 10000 --turns 5     # 15 MB; goal <= 15 s, <= 500 MB

`--threads-form` writes the same suite in rtflow's own `threads:` form, what every turn shares written once in
`default_test` (about 60 bytes a turn: 1,000 x 5 is the 300 KB suite the 0.5 s goal was set for):

    python bench/compile_bench.py --from-file --threads-form --threads 1000 --turns 5    # 0.3 MB; goal <= 0.5 s

`--tests-file jsonl` (or `csv`) keeps the same tests in a promptfoo test file beside a small flow that names it
(`tests: file://tests.jsonl`), the way large generated suites are kept:

    python bench/compile_bench.py --from-file --tests-file jsonl --threads 10000 --turns 5  # goal <= 3 s, <= 400 MB
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rtflow.flow.spec import FlowSpec


TIME_BUDGET_S = 10.0
MEMORY_BUDGET_MB = 1024.0


def build_flow(threads: int, turns: int, fallback: bool) -> FlowSpec:
    """A realtime provider (falling back to chat, when asked) and a chat provider; every turn has an assertion."""
    from rtflow.flow.spec import FlowSpec

    realtime: dict[str, Any] = {"id": "openai:realtime:gpt-realtime", "label": "realtime"}
    if fallback:
        realtime["fallback"] = "openai:chat:gpt-4.1-mini"
    document = {
        "providers": [realtime, {"id": "openai:chat:gpt-4.1-mini", "label": "chat"}],
        "prompts": ["{{ question }}"],
        "grader": "openai:chat:gpt-4.1-mini",
        "threads": {
            f"thread_{thread:05d}": [
                {"question": f"question {turn} of thread {thread}", "assert": [{"type": "icontains", "value": "x"}]}
                for turn in range(turns)
            ]
            for thread in range(threads)
        },
    }
    return FlowSpec.model_validate(document)


FILE_BUDGET_S = {1_000 * 5: 0.5, 10_000 * 5: 15.0}
FILE_MEMORY_BUDGET_MB = 500.0
TESTS_FILE_BUDGET_S = {10_000 * 5: 3.0}
TESTS_FILE_MEMORY_BUDGET_MB = 400.0

_TEST = """\
  - description: Thread {thread} turn {turn}, a question about topic {thread}
    vars:
      question: What is the answer to question {turn} of thread {thread}, in a few words?
    metadata:
      conversationId: thread_{thread:05d}
    assert:
      - type: icontains
        value: answer
      - type: not-icontains
        value: as an ai language model
"""


_HEAD = (
    "providers:\n"
    "  - id: openai:realtime:gpt-realtime\n"
    "    label: realtime\n"
    "    fallback: openai:chat:gpt-4.1-mini\n"
    "prompts:\n"
    "  - '{{ question }}'\n"
)
"""What both forms of the suite start with: one provider with a fallback, and a template prompt."""


def write_flow_file(path: Path, threads: int, turns: int) -> None:
    """A promptfoo-style suite: `threads x turns` tests, each with its description, vars, thread and assertions."""
    with path.open("w") as out:
        out.write(_HEAD + "tests:\n")
        for thread in range(threads):
            for turn in range(turns):
                out.write(_TEST.format(thread=thread, turn=turn))


def write_threads_flow_file(path: Path, threads: int, turns: int) -> None:
    """The same suite in rtflow's own `threads:` form, what the turns share written once in `default_test`: about
    60 bytes a turn, so 1,000 x 5 is the 300 KB suite the load goal was set for."""
    with path.open("w") as out:
        out.write(
            _HEAD + "default_test:\n"
            "  assert:\n"
            "    - type: icontains\n"
            "      value: answer\n"
            "    - type: not-icontains\n"
            "      value: as an ai language model\n"
            "threads:\n"
        )
        for thread in range(threads):
            out.write(f"  thread_{thread:05d}:\n")
            for turn in range(turns):
                out.write(f"    - question: What is the answer to question {turn} of thread {thread}?\n")


def _test_object(thread: int, turn: int) -> dict[str, Any]:
    return {
        "description": f"Thread {thread} turn {turn}, a question about topic {thread}",
        "vars": {"question": f"What is the answer to question {turn} of thread {thread}, in a few words?"},
        "metadata": {"conversationId": f"thread_{thread:05d}"},
        "assert": [
            {"type": "icontains", "value": "answer"},
            {"type": "not-icontains", "value": "as an ai language model"},
        ],
    }


def write_tests_file(folder: Path, threads: int, turns: int, kind: str) -> Path:
    """The same suite as `write_flow_file`, its tests in `tests.jsonl` or `tests.csv`; returns the flow's path."""
    tests = folder / f"tests.{kind}"
    with tests.open("w", newline="") as out:
        if kind == "csv":
            import csv

            writer = csv.writer(out)
            writer.writerow(["question", "__description", "__metadata:conversationId", "__expected1", "__expected2"])
            for thread in range(threads):
                for turn in range(turns):
                    test = _test_object(thread, turn)
                    writer.writerow([test["vars"]["question"], test["description"], f"thread_{thread:05d}",
                                     "icontains:answer", "not-icontains:as an ai language model"])  # fmt: skip
        else:
            for thread in range(threads):
                for turn in range(turns):
                    out.write(json.dumps(_test_object(thread, turn)) + "\n")
    flow = folder / "suite.yaml"
    flow.write_text(
        "providers:\n  - id: openai:realtime:gpt-realtime\n    label: realtime\n"
        "    fallback: openai:chat:gpt-4.1-mini\nprompts:\n  - '{{ question }}'\n"
        f"tests: file://{tests.name}\n"
    )
    return flow


def _load_and_compile_child(path: str) -> None:
    """Runs in a fresh process: import, load and compile, then print the figures as JSON."""
    started = time.perf_counter()
    import rtflow
    import rtflow.flow.loader
    import rtflow.plan.compiler  # the modules load and compile need, so that "load" is the work alone

    imported = time.perf_counter()
    flow = rtflow.load(path)
    loaded = time.perf_counter()
    plan = rtflow.compile(flow)
    compiled = time.perf_counter()
    figures = {
        "import_s": imported - started,
        "load_s": loaded - imported,
        "compile_s": compiled - loaded,
        "turns": plan.counts.turns,
        "peak_rss_mb": _peak_rss_mb(),
    }
    print(json.dumps(figures))


def from_file(threads: int, turns: int, tests_file: str | None = None, *, threads_form: bool = False) -> bool:
    with tempfile.TemporaryDirectory() as folder:
        if tests_file is None:
            path = Path(folder) / "suite.yaml"
            (write_threads_flow_file if threads_form else write_flow_file)(path, threads, turns)
            size_mb = path.stat().st_size / 2**20
        else:
            path = write_tests_file(Path(folder), threads, turns, tests_file)
            size_mb = (Path(folder) / f"tests.{tests_file}").stat().st_size / 2**20
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--child", str(path)], check=True, capture_output=True, text=True
        )
        wall_s = time.perf_counter() - started
    figures = json.loads(child.stdout.strip().splitlines()[-1])
    work_s = figures["load_s"] + figures["compile_s"]
    budget_s = (TESTS_FILE_BUDGET_S if tests_file else FILE_BUDGET_S).get(threads * turns)
    memory_budget_mb = TESTS_FILE_MEMORY_BUDGET_MB if tests_file else FILE_MEMORY_BUDGET_MB
    kind = f"tests.{tests_file} beside a flow" if tests_file else "one YAML flow"
    if threads_form:
        kind += ", `threads:` form"
    print(f"suite ({kind}): {threads} threads x {turns} turns = {threads * turns} tests, {size_mb:.2f} MB")
    print(f"imports:            {figures['import_s']:.2f} s")
    print(f"load:               {figures['load_s']:.2f} s")
    print(f"compile:            {figures['compile_s']:.2f} s")
    print(f"load + compile:     {work_s:.2f} s" + (f" (goal {budget_s:g} s)" if budget_s else ""))
    print(f"whole process:      {wall_s:.2f} s")
    print(f"process peak RSS:   {figures['peak_rss_mb']:.0f} MB (goal {memory_budget_mb:.0f} MB)")
    within = (budget_s is None or work_s <= budget_s) and figures["peak_rss_mb"] <= memory_budget_mb
    print("within budget" if within else "OVER BUDGET")
    return within


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in kilobytes on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--no-fallback", action="store_true", help="no fallback chain on the realtime provider")
    parser.add_argument("--from-file", action="store_true", help="load and compile a YAML file in a fresh process")
    parser.add_argument("--tests-file", choices=["jsonl", "csv"], help="with --from-file: tests in a test file")
    parser.add_argument(
        "--threads-form", action="store_true", help="with --from-file: rtflow's `threads:` form (60 bytes a turn)"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _load_and_compile_child(args.child)
        return 0
    if args.from_file:
        return 0 if from_file(args.threads, args.turns, args.tests_file, threads_form=args.threads_form) else 1
    from rtflow.plan.compiler import compile_flow

    started = time.perf_counter()
    flow = build_flow(args.threads, args.turns, fallback=not args.no_fallback)
    build_seconds = time.perf_counter() - started

    gc.collect()
    rss_before_mb = _peak_rss_mb()
    started = time.perf_counter()
    plan = compile_flow(flow)
    compile_seconds = time.perf_counter() - started
    rss_mb = _peak_rss_mb()
    counts = plan.counts
    started = time.perf_counter()
    critical_path = plan.critical_path()
    order = plan.topological_order()
    query_seconds = time.perf_counter() - started
    del plan, order
    gc.collect()

    tracemalloc.start()
    plan = compile_flow(flow)
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    traced_mb = traced_peak / 2**20
    print(f"suite: {args.threads} threads x {args.turns} turns x 2 providers (fallback: {not args.no_fallback})")
    print(
        f"plan: {counts.conversations} conversations, {counts.turns} turns, {counts.call_nodes} call nodes "
        f"({counts.fallback_nodes} fallback), {counts.grade_nodes} grade nodes, "
        f"{plan.graph.number_of_edges()} edges; critical path {len(critical_path)}"
    )
    print(f"flow build (spec models): {build_seconds:.2f} s")
    print(f"compile:                  {compile_seconds:.2f} s (budget {TIME_BUDGET_S:.0f} s)")
    print(f"critical path + topo:     {query_seconds * 1000:.1f} ms")
    print(f"compile peak (traced):    {traced_mb:.0f} MB")
    print(
        f"process peak RSS:         {rss_mb:.0f} MB (budget {MEMORY_BUDGET_MB:.0f} MB; "
        f"{rss_before_mb:.0f} MB before compiling)"
    )
    within = compile_seconds < TIME_BUDGET_S and rss_mb < MEMORY_BUDGET_MB
    print("within budget" if within else "OVER BUDGET")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
