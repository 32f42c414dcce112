"""What does running on Ray cost per turn, against one process?

Runs the same suite (N threads x K turns of the Realtime provider, the simulator answering each response after
L ms, in a process of its own) as a user would (`rtflow run` spawned, timed from the spawn to its exit): once in
one process, then with `--executor ray` and 1, 2 and 4 workers on a local Ray cluster started for the purpose
(`ray start --head`, so the cluster's start-up is not counted). For each it prints the wall time, its ratio to
the critical-path bound max(K, ceil(N*K/c)) x L, and the time per turn that Ray adds over the single process:
(wall - single wall) / turns. Last, the cost of one lease from the run's rate-limit actor (`RateLedger`): the
round trip of `--leases` leases asked one after another from the driver, the way a worker asks when its leased
requests run out. Run by hand:

    python bench/ray_bench.py --threads 2000 --turns 3 --latency-ms 200 --concurrency 400
    python bench/ray_bench.py --workers --leases 2000   # the lease cost alone
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _flow(folder: Path, url: str, threads: int, turns: int, concurrency: int) -> Path:
    tests = [
        {"vars": {"q": f"thread {t} turn {k}"}, "metadata": {"conversationId": f"t{t:05d}"}}
        for t in range(threads)
        for k in range(1, turns + 1)
    ]
    provider = {"id": "openai:realtime:gpt-realtime", "config": {"api_base_url": url, "modalities": ["text"]}}
    document = {
        "providers": [provider],
        "prompts": ["{{ q }}"],
        "execution": {"concurrency": concurrency},
        "tests": tests,
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _timed_run(folder: Path, flow: Path, env: dict[str, str], *extra: str) -> float:
    command = [sys.executable, "-m", "rtflow", "run", str(flow), "--no-progress", "--db", str(folder / "b.db")]
    started = time.perf_counter()
    done = subprocess.run([*command, *extra], cwd=folder, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"run failed ({' '.join(extra) or 'local'}):\n{done.stderr[-2000:]}")
    return wall


def _lease_cost(address: str, leases: int) -> None:
    """The round trip of one lease from a `RateLedger` actor, and what it comes to per request at a few limits."""
    import ray

    from rtflow.runner.rate_leases import RateLedger, request_batch

    ray.init(address=address, namespace="rtflow-bench", logging_level="warning", log_to_driver=False)
    try:
        ledger = ray.remote(RateLedger).options(num_cpus=0).remote()
        ray.get(ledger.lease.remote("key", 1e9, None, 1, 0))  # the actor is up
        started = time.perf_counter()
        for _ in range(leases):
            ray.get(ledger.lease.remote("key", 1e9, None, 1, 0))
        per_lease_ms = (time.perf_counter() - started) / leases * 1000
    finally:
        ray.shutdown()
    print(f"  one lease from the rate-limit actor: {per_lease_ms:.2f} ms round trip ({leases} in a row)")
    for rpm in (600, 10_000, 100_000):
        batch = request_batch(rpm)
        print(f"    at rpm {rpm:>7,}: {batch:>4} requests a lease, {per_lease_ms / batch:.3f} ms a request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--concurrency", type=int, default=400)
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 2, 4], help="none: skip the runs")
    parser.add_argument("--leases", type=int, default=2000)
    args = parser.parse_args()

    ray = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    env = {
        **os.environ,
        "OPENAI_API_KEY": "sk-bench",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_AUTH_MODE": "disabled",  # a loopback cluster for this measurement alone
    }
    folder = Path(tempfile.mkdtemp(prefix="ray-bench-"))
    sim_port, ray_port = _free_port(), _free_port()
    sim = subprocess.Popen(
        [sys.executable, "-m", "rtflow", "sim", "serve", "--port", str(sim_port), "--latency-ms", str(args.latency_ms)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sim.stdout is not None
    for line in sim.stdout:
        if line.startswith("OPENAI_BASE_URL="):
            break
    head = [ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(ray_port)]
    subprocess.run([*head, "--include-dashboard", "false"], env=env, check=True, capture_output=True)
    try:
        flow = _flow(folder, f"http://127.0.0.1:{sim_port}/v1", args.threads, args.turns, args.concurrency)
        turns = args.threads * args.turns
        bound = max(args.turns, math.ceil(turns / args.concurrency)) * args.latency_ms / 1000
        print(f"{args.threads} threads x {args.turns} turns, {args.latency_ms:.0f} ms per response, "
              f"concurrency {args.concurrency}: critical-path bound {bound:.2f} s")  # fmt: skip
        single = _timed_run(folder, flow, env) if args.workers else 0.0
        if args.workers:
            print(f"  one process      {single:7.2f} s  ratio {single / bound:5.2f}")
        for workers in args.workers:
            options = ["--executor", "ray", "--ray-address", f"127.0.0.1:{ray_port}", "--workers", str(workers)]
            wall = _timed_run(folder, flow, env, *options)
            added_ms = (wall - single) / turns * 1000
            print(f"  ray, {workers} worker{'s' if workers > 1 else ' '}  {wall:7.2f} s  ratio {wall / bound:5.2f}"
                  f"  Ray adds {added_ms:+.2f} ms per turn")  # fmt: skip
        _lease_cost(f"127.0.0.1:{ray_port}", args.leases)
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True)
        sim.send_signal(signal.SIGINT)
        sim.communicate(timeout=20)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
