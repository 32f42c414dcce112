"""Simulator benchmark (run by hand): concurrent Realtime sessions held, text turns/s, server RSS.

    /work/venv/bin/python bench/sim_bench.py --sessions 1000 --turns 3

Each session opens a WebSocket (GA), sets text output, and runs `--turns` text turns at zero latency; every
session stays open until all have connected, so the peak is truly concurrent. Reports errors, the peak number of
open sessions the server saw, turns per second, and the process RSS (client and server share the process, so the
RSS is an upper bound for the server).
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import anyio
from websockets.asyncio.client import connect

from rtflow.sim import SimConfig, SimServer


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def one_session(url: str, turns: int, all_open: anyio.Event, opened: list[int], errors: list[str]) -> None:
    try:
        async with connect(url, additional_headers={"Authorization": "Bearer sk-bench"}, max_queue=None) as ws:
            await ws.recv()
            await ws.send(json.dumps({"type": "session.update",
                                      "session": {"type": "realtime", "output_modalities": ["text"]}}))
            opened[0] += 1
            await all_open.wait()
            for turn in range(turns):
                await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                    "type": "message", "role": "user", "content": [{"type": "input_text", "text": f"turn {turn}"}]}}))
                await ws.send(json.dumps({"type": "response.create"}))
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "error":
                        errors.append(event["error"]["message"])
                    if event["type"] == "response.done":
                        break
    except Exception as exc:  # a benchmark reports every failure instead of stopping at the first
        errors.append(f"{type(exc).__name__}: {exc}")
        opened[0] += 1


async def main(sessions: int, turns: int) -> None:
    baseline = rss_mb()
    async with SimServer(SimConfig()) as sim:
        url = f"{sim.ws_base_url}/realtime?model=gpt-realtime"
        all_open = anyio.Event()
        opened, errors = [0], []
        started = time.perf_counter()
        async with anyio.create_task_group() as tasks:
            for _ in range(sessions):
                tasks.start_soon(one_session, url, turns, all_open, opened, errors)
            while opened[0] < sessions:
                await anyio.sleep(0.01)
            connected = time.perf_counter()
            held_rss = rss_mb()
            peak = sim.peak_sessions
            all_open.set()
        finished = time.perf_counter()
    total_turns = sessions * turns
    print(f"sessions requested        {sessions}")
    print(f"peak concurrent sessions  {peak}")
    print(f"errors                    {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(f"connect all               {connected - started:.2f} s")
    print(f"text turns                {total_turns} in {finished - connected:.2f} s "
          f"= {total_turns / (finished - connected):.0f} turns/s")
    print(f"RSS with all open         {held_rss:.0f} MB (baseline {baseline:.0f} MB, "
          f"+{held_rss - baseline:.0f} MB for clients and server)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3)
    arguments = parser.parse_args()
    anyio.run(main, arguments.sessions, arguments.turns)
