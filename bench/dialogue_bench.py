"""How close do simulated dialogues get to their critical-path lower bound?

N dialogues of up to T agent turns run at concurrency c against the simulator (in a child process, so its CPU is
not the client's) answering every request after L ms: the caller model (Chat Completions), the agent (Realtime)
and the grader (the caller check after each dialogue). The simulator plays each caller by its rule (the goal's
sentences, then the stop phrase), so dialogue i takes 1 + i % T agent turns: lengths vary as real dialogues do.

The bound counts the requests the dialogues really made, each L long, in the order a dialogue must make them
(caller line, agent answer, ... the stop phrase, the caller check): the longest dialogue's chain, or all requests
spread over c at once, whichever is longer. Goal: wall <= 1.2 x bound. Run by hand:

    python bench/dialogue_bench.py --dialogues 200 --max-turns 8 --concurrency 100 --latency-ms 200
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import anyio
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from sim_child import raise_fd_limit, simulator_child


def _flow(folder: Path, port: int, dialogues: int, max_turns: int, concurrency: int) -> Path:
    base = {"api_base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-bench"}
    threads = {}
    for index in range(dialogues):
        sentences = 1 + index % max_turns
        goal = " ".join(f"Sentence {n} of dialogue {index}." for n in range(1, sentences + 1))
        threads[f"d{index:03d}"] = [
            {
                "simulate": {
                    "caller": {"id": "openai:chat:gpt-4.1-mini", "config": base},
                    "goal": goal,
                    "max_turns": max_turns,
                }
            }
        ]
    document = {
        "providers": [{"id": "openai:realtime:gpt-realtime", "label": "agent", "config": base}],
        "prompts": ["{{ caller }}"],
        "grader": {"id": "openai:chat:gpt-4.1-mini", "config": base},
        "threads": threads,
        "execution": {"concurrency": concurrency, "grading_concurrency": concurrency},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dialogues", type=int, default=200)
    parser.add_argument("--max-turns", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    args = parser.parse_args()
    raise_fd_limit(4 * args.dialogues + 256)

    import rtflow
    from rtflow.log import configure_logging
    from rtflow.sim import SimConfig

    configure_logging(level="error")
    latency = args.latency_ms / 1000
    config = SimConfig(latency={"first_delta_ms": args.latency_ms})
    with tempfile.TemporaryDirectory() as scratch, simulator_child(config.model_dump_json()) as sim:
        flow = _flow(Path(scratch), sim.port, args.dialogues, args.max_turns, args.concurrency)
        started = time.perf_counter()
        result = anyio.run(lambda: rtflow.arun(flow, store=False))
        wall = time.perf_counter() - started
    by_dialogue: dict[str, int] = {}
    for turn in result.turns:
        by_dialogue[turn.thread_id] = by_dialogue.get(turn.thread_id, 0) + 1
    # Per dialogue: a caller line and an answer per agent turn, the stop phrase, then the caller check.
    chains = [2 * turns + 2 for turns in by_dialogue.values()]
    requests = sum(chains)
    bound = max(max(chains), math.ceil(requests / args.concurrency)) * latency
    passed = sum(1 for turn in result.turns if turn.status == "passed")
    shape = f"{len(by_dialogue)} (up to {args.max_turns} agent turns), concurrency {args.concurrency}"
    print(f"dialogues            {shape}")
    print(f"agent turns          {len(result.turns)} ({passed} passed)")
    print(f"requests             {requests} at {args.latency_ms:g} ms each (caller, agent, grader)")
    print(f"wall                 {wall:.3f} s")
    print(f"critical-path bound  {bound:.3f} s")
    print(f"ratio                {wall / bound:.3f}  (goal <= 1.2)")


if __name__ == "__main__":
    main()
