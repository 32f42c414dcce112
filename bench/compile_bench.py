"""How long compiling a large suite takes, and how much memory it needs.

    python bench/compile_bench.py                      # 10,000 threads x 5 turns x 2 providers
    python bench/compile_bench.py --threads 2000 --turns 3 --no-fallback

The flow is built in memory through the spec models (as the loader would build it), then compiled: once
timed with nothing watching, with the process's peak resident size read before and after (it includes the
interpreter and the flow itself), then once more under tracemalloc for the peak of the compile's own
allocations.
The targets are 10 s and 1 GB for the default size.
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import tracemalloc
from typing import Any

from rtflow.compiler import compile_flow
from rtflow.spec import FlowSpec

TIME_BUDGET_S = 10.0
MEMORY_BUDGET_MB = 1024.0


def build_flow(threads: int, turns: int, fallback: bool) -> FlowSpec:
    """A realtime provider (falling back to chat, when asked) and a chat provider; every turn has an assertion."""
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


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # ru_maxrss is in kilobytes on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--no-fallback", action="store_true", help="no fallback chain on the realtime provider")
    args = parser.parse_args()

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
