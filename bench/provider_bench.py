"""Client overhead of the Realtime provider: CPU per text turn and memory per open session.

Run by hand (not a test):

    python bench/provider_bench.py --sessions 1000 --turns 3

The simulator runs in a child process so that only the client's CPU and memory are measured here. Every session
opens its own WebSocket and keeps it open; after the first turn (which connects) the remaining turns are
steady-state text turns on open sockets, and their CPU time (time.process_time of this process) divided by their
count is the figure reported. Memory per session is the growth of this process's resident set size while the
sessions are open, divided by the number of sessions. Goals: <= 1 ms CPU per turn, <= 100 KB per session.
"""

from __future__ import annotations

import argparse
import gc
import logging
import time

import anyio
import structlog
from sim_child import raise_fd_limit, rss_kb, simulator_child

from rtflow.messages import Message, TurnRequest
from rtflow.providers.base import ProviderInfo
from rtflow.providers.openai_realtime import RealtimeProvider, RealtimeSession


async def run(sessions: int, turns: int, connect_parallel: int, port: int) -> None:
    info = ProviderInfo(
        id="openai:realtime:gpt-realtime",
        label="bench",
        config={"api_base_url": f"http://127.0.0.1:{port}/v1", "api_key": "sk-bench", "websocket_timeout": "120s"},
    )
    provider = RealtimeProvider(info)
    open_sessions: list[RealtimeSession] = [provider.session(f"bench-{n}") for n in range(sessions)]
    histories: list[list[Message]] = [[] for _ in range(sessions)]
    limiter = anyio.CapacityLimiter(connect_parallel)

    async def turn(index: int, turn_index: int) -> None:
        async with limiter:
            history = histories[index]
            history.append(Message.of("user", f"Session {index} turn {turn_index}: how is the weather today?"))
            output = await open_sessions[index].send(
                TurnRequest(conversation_id=f"bench-{index}", turn_index=turn_index, messages=list(history))
            )
            history.append(Message.of("assistant", output.text))

    gc.collect()
    rss_before = rss_kb()
    cpu_start, wall_start = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for index in range(sessions):
            group.start_soon(turn, index, 0)
    connect_cpu, connect_wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    gc.collect()
    rss_open = rss_kb()

    cpu_start, wall_start = time.process_time(), time.perf_counter()
    for turn_index in range(1, turns):
        async with anyio.create_task_group() as group:
            for index in range(sessions):
                group.start_soon(turn, index, turn_index)
    steady_cpu, steady_wall = time.process_time() - cpu_start, time.perf_counter() - wall_start
    steady_turns = sessions * (turns - 1)
    gc.collect()
    rss_after = rss_kb()

    for session in open_sessions:
        await session.aclose()
    held = sum(len(h) for h in histories)
    print(f"sessions open at once:          {sessions}")
    print(f"first turns (connect + turn):   {connect_wall:.2f} s wall, {1000 * connect_cpu / sessions:.3f} ms CPU each")
    if steady_turns:
        print(f"steady text turns:              {steady_turns} in {steady_wall:.2f} s wall")
        print(f"client CPU per text turn:       {1000 * steady_cpu / steady_turns:.3f} ms   (goal <= 1 ms)")
    print(f"RSS before / open / after:      {rss_before} / {rss_open} / {rss_after} KB")
    print(f"RSS per open session:           {(rss_open - rss_before) / sessions:.1f} KB   (goal <= 100 KB)")
    print(f"RSS per session after turns:    {(rss_after - rss_before) / sessions:.1f} KB  ({held} messages held)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3, help="turns per session (the first one connects)")
    parser.add_argument("--connect-parallel", type=int, default=200, help="turns in flight at once")
    args = parser.parse_args()
    # Debug events (one per connect) would be printed by structlog's default console renderer.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    raise_fd_limit(2 * args.sessions + 256)  # inherited by the simulator child too
    with simulator_child() as sim:
        anyio.run(run, args.sessions, args.turns, args.connect_parallel, sim.port)


if __name__ == "__main__":
    main()
