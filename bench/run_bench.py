"""How close does a run get to its critical-path lower bound?

Generates N threads x K turns, runs them through the whole stack (loader, compiler, scheduler, Realtime
provider, run store) against the simulator with a response latency of L ms at concurrency c, and prints:

    wall time, the bound max(K, ceil(N*K/c)) x L, their ratio, the client's CPU seconds and peak RSS.

The simulator runs in a child process so that its CPU is not the client's. `--provider bench:sleep` replaces
the Realtime provider and the simulator with a provider that only sleeps L: what is left is the scheduler's
own overhead (rendering, history, limits, the run store). Run by hand:

    python bench/run_bench.py --threads 20 --turns 5 --concurrency 20 --latency-ms 200
    python bench/run_bench.py --threads 1000 --turns 5 --concurrency 200 --latency-ms 100
    python bench/run_bench.py --threads 1000 --turns 5 --concurrency 200 --latency-ms 100 --provider bench:sleep

`--whole-process` spawns `rtflow run` as a user would and times it from the spawn to its exit, so Python's
start-up, imports, loading and compiling count too (goal at 200 x 5, 500 ms, concurrency 200: <= 1.2 x bound):

    python bench/run_bench.py --threads 200 --turns 5 --concurrency 200 --latency-ms 500 --whole-process
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import shutil
import subprocess
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import anyio
import yaml


def _serve(latency_ms: float, conn: Connection) -> None:
    from rtflow.sim import SimConfig, SimServer
    from rtflow.sim.config import LatencyConfig

    async def main() -> None:
        config = SimConfig(latency=LatencyConfig(first_delta_ms=latency_ms))
        async with SimServer(config) as server:
            conn.send(server.http_base_url)
            await anyio.to_thread.run_sync(conn.recv)  # run until the parent says stop

    anyio.run(main)


class SleepProvider:
    """A provider that answers after exactly `latency_ms`: the cost of everything but the model."""

    @staticmethod
    def register() -> None:
        from rtflow.messages import TurnOutput, TurnRequest
        from rtflow.providers.base import Provider, ProviderSession
        from rtflow.providers.registry import register

        class _Session:
            def __init__(self, delay: float) -> None:
                self.delay = delay

            async def send(self, request: TurnRequest) -> TurnOutput:
                await anyio.sleep(self.delay)
                users = sum(1 for m in request.messages if m.role == "user")
                return TurnOutput(text=f"{users} user messages; last: {request.messages[-1].text}")

            async def aclose(self) -> None:
                return None

        class _Provider(Provider):
            kind = "bench:sleep"

            def session(self, conversation_id: str) -> ProviderSession:
                return _Session(float(self.info.config["latency_ms"]) / 1000)

        register("bench:sleep", _Provider)


def flow_document(
    threads: int, turns: int, concurrency: int, base_url: str, provider: str, latency_ms: float = 0.0
) -> dict[str, Any]:
    config: dict[str, Any] = {"api_base_url": base_url, "api_key": "sk-bench-local-key"}
    if provider.startswith("bench:"):
        config = {"latency_ms": latency_ms}
    return {
        "description": f"benchmark: {threads} threads x {turns} turns",
        "providers": [
            {
                "id": provider,
                "label": "bench",
                "config": config,
            }
        ],
        "prompts": ["{{ question }}"],
        "threads": {
            f"thread{t}": [{"question": f"thread {t} question {k}"} for k in range(turns)] for t in range(threads)
        },
        "execution": {"concurrency": concurrency, "timeout": "120s", "retries": 0},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--turns", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--provider", default="openai:realtime:gpt-realtime")
    parser.add_argument("--no-store", action="store_true", help="keep nothing on disk (default: a temporary SQLite)")
    parser.add_argument("--whole-process", action="store_true", help="time a spawned `rtflow run`, start-up included")
    args = parser.parse_args()
    if args.whole_process:
        whole_process(args)
        return

    import rtflow
    from rtflow.flow.loader import load

    simulated = not args.provider.startswith("bench:")
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(args.latency_ms, child), daemon=True)
    if simulated:
        server.start()
        base_url = parent.recv()
    else:
        SleepProvider.register()
        base_url = ""
    with tempfile.TemporaryDirectory() as folder:
        flow_path = Path(folder) / "bench.yaml"
        document = flow_document(args.threads, args.turns, args.concurrency, base_url, args.provider, args.latency_ms)
        flow_path.write_text(yaml.safe_dump(document))
        flow = load(flow_path)
        cpu_before = time.process_time()
        started = time.perf_counter()
        result = rtflow.run(flow, store=not args.no_store, db=Path(folder) / "bench.db")
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_before
    if simulated:
        parent.send("stop")
        server.join(timeout=5)
    sim_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    sim_cpu_s = sim_cpu.ru_utime + sim_cpu.ru_stime

    total = args.threads * args.turns
    rounds = max(args.turns, math.ceil(total / args.concurrency))
    bound = rounds * args.latency_ms / 1000
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    counts = dict(result.counts)
    print(f"threads x turns      {args.threads} x {args.turns} = {total} turns, concurrency {args.concurrency}")
    print(f"provider             {args.provider}" + (" against the simulator" if simulated else ""))
    print(f"latency              {args.latency_ms:g} ms per response")
    print(f"statuses             {counts}")
    print(f"wall time            {wall:.3f} s")
    print(f"critical-path bound  {bound:.3f} s  (max({args.turns}, ceil({total}/{args.concurrency})) x L)")
    print(f"ratio                {wall / bound:.3f}")
    print(f"client CPU           {cpu:.2f} s  ({cpu / total * 1000:.2f} ms per turn)")
    print(f"client peak RSS      {peak_rss_mb:.0f} MB")
    if simulated:
        print(f"simulator CPU        {sim_cpu_s:.2f} s  ({sim_cpu_s / total * 1000:.2f} ms per turn, separate process)")
    print(f"scheduler wall       {result.duration_s:.3f} s  (ratio {result.duration_s / bound:.3f}; without load,")
    print("                     compile, provider set-up and imports)")


def whole_process(args: argparse.Namespace) -> None:
    """`rtflow run` in a child process against the simulator in another: the wall time a user sees."""
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(args.latency_ms, child), daemon=True)
    server.start()
    base_url = parent.recv()
    try:
        with tempfile.TemporaryDirectory() as folder:
            flow_path = Path(folder) / "bench.yaml"
            document = flow_document(args.threads, args.turns, args.concurrency, base_url, args.provider)
            flow_path.write_text(yaml.safe_dump(document))
            command = [shutil.which("rtflow") or "rtflow", "run", str(flow_path), "--no-progress"]
            command += ["--db", str(Path(folder) / "bench.db")]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True)
            wall = time.perf_counter() - started
            child_cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    finally:
        parent.send("stop")
        server.join(timeout=5)
    total = args.threads * args.turns
    rounds = max(args.turns, math.ceil(total / args.concurrency))
    bound = rounds * args.latency_ms / 1000
    print(f"threads x turns      {args.threads} x {args.turns} = {total} turns, concurrency {args.concurrency}")
    print(f"latency              {args.latency_ms:g} ms per response, against the simulator")
    print(f"rtflow run exit      {done.returncode}" + ("" if done.returncode == 0 else f": {done.stderr[-400:]}"))
    print(f"whole-process wall   {wall:.3f} s  (spawn to exit: start-up, load, compile, run, store)")
    print(f"critical-path bound  {bound:.3f} s")
    print(f"ratio                {wall / bound:.3f}  (goal <= 1.2 at 200 x 5, 500 ms, concurrency 200)")
    print(f"rtflow run CPU       {child_cpu.ru_utime + child_cpu.ru_stime:.2f} s")


if __name__ == "__main__":
    main()
