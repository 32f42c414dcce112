"""Simulator benchmark (run by hand): concurrent Realtime sessions held, server CPU per turn, server RSS.

    /work/venv/bin/python bench/sim_bench.py --sessions 1000 --turns 3

The simulator runs in a child process, so its CPU time and resident memory are its own (read from /proc).
Each session opens a WebSocket (GA, no compression, like rtflow's provider), sets text output, and runs
`--turns` text turns at zero latency; every session stays open until all have connected, so the peak is truly
concurrent. Reports errors, the peak number of open sessions the server saw, the server's CPU per connection
(handshake, session.created, session.update) and per text turn, turns per second, and the server's RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import anyio
from sim_child import raise_fd_limit, rss_kb, simulator_child
from websockets.asyncio.client import connect


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process (Linux)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def one_session(
    url: str, turns: int, all_open: anyio.Event, opened: list[int], done: list[int], errors: list[str]
) -> None:
    try:
        async with connect(
            url, additional_headers={"Authorization": "Bearer sk-bench"}, max_queue=None, compression=None
        ) as ws:
            await ws.recv()
            await ws.send(
                json.dumps({"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
            )
            await ws.recv()
            opened[0] += 1
            await all_open.wait()
            for turn in range(turns):
                item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": f"turn {turn}"}]}
                await ws.send(json.dumps({"type": "conversation.item.create", "item": item}))
                await ws.send(json.dumps({"type": "response.create"}))
                while True:
                    event = json.loads(await ws.recv())
                    if event["type"] == "error":
                        errors.append(event["error"]["message"])
                    if event["type"] == "response.done":
                        break
            done[0] += 1
            await all_open.wait()
    except Exception as exc:  # a benchmark reports every failure instead of stopping at the first
        errors.append(f"{type(exc).__name__}: {exc}")
        opened[0] += 1
        done[0] += 1


async def main(sessions: int, turns: int, pid: int, port: int) -> None:
    url = f"ws://127.0.0.1:{port}/v1/realtime?model=gpt-realtime"
    all_open = anyio.Event()
    opened, done = [0], [0]
    errors: list[str] = []
    idle_rss = rss_kb(pid) / 1024
    cpu_start, started = process_cpu_s(pid), time.perf_counter()
    async with anyio.create_task_group() as tasks:
        for _ in range(sessions):
            tasks.start_soon(one_session, url, turns, all_open, opened, done, errors)
        while opened[0] < sessions:
            await anyio.sleep(0.01)
        cpu_connected, connected = process_cpu_s(pid), time.perf_counter()
        held_rss = rss_kb(pid) / 1024
        all_open.set()
        while done[0] < sessions:
            await anyio.sleep(0.005)
        cpu_finished, finished = process_cpu_s(pid), time.perf_counter()
    total_turns = sessions * turns
    print(f"sessions requested        {sessions}")
    print(f"errors                    {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    print(
        f"connect all               {connected - started:.2f} s, server CPU "
        f"{1000 * (cpu_connected - cpu_start) / sessions:.3f} ms per connection"
    )
    print(
        f"text turns                {total_turns} in {finished - connected:.2f} s "
        f"= {total_turns / (finished - connected):.0f} turns/s"
    )
    print(f"server CPU per text turn  {1000 * (cpu_finished - cpu_connected) / total_turns:.3f} ms")
    print(
        f"server RSS                {held_rss:.0f} MB with all open (idle {idle_rss:.0f} MB, "
        f"{1024 * (held_rss - idle_rss) / sessions:.1f} KB per session)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3)
    arguments = parser.parse_args()
    raise_fd_limit(2 * arguments.sessions + 256)
    with simulator_child() as sim:
        anyio.run(main, arguments.sessions, arguments.turns, sim.pid, sim.port)
        print(f"peak concurrent sessions  {sim.peak_sessions()}")
