"""The simulator in a child process, so that a benchmark measures one side alone; plus /proc readings (Linux).

with simulator_child() as sim:   # sim.port, sim.pid, sim.peak_sessions()
    ...
"""

from __future__ import annotations

import resource
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

_CHILD = """
import sys, anyio
from rtflow.sim import SimConfig, SimServer

async def main() -> None:
    config = SimConfig.model_validate_json(sys.argv[1]) if len(sys.argv) > 1 else SimConfig()
    async with SimServer(config) as sim:
        print(sim.port, flush=True)
        # Each line read asks for the peak number of open sessions; the end of stdin stops the server.
        while await anyio.to_thread.run_sync(sys.stdin.readline):
            print(sim.peak_sessions, flush=True)

anyio.run(main)
"""


@dataclass
class SimulatorChild:
    """A running simulator child: its process and the port it listens on."""

    process: subprocess.Popen[str]
    port: int

    @property
    def pid(self) -> int:
        return self.process.pid

    def peak_sessions(self) -> int:
        """The most Realtime sessions the child has held open at once."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("peak\n")
        self.process.stdin.flush()
        return int(self.process.stdout.readline())


@contextmanager
def simulator_child(config_json: str | None = None) -> Iterator[SimulatorChild]:
    """Start the simulator (default config, or a `SimConfig` as JSON) in a child process; stop it when the block
    ends."""
    argv = [sys.executable, "-c", _CHILD, *([config_json] if config_json else [])]
    child = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        yield SimulatorChild(child, int(child.stdout.readline()))
    finally:
        if child.stdin is not None:
            child.stdin.close()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def raise_fd_limit(needed: int) -> None:
    """Raise this process's open-file limit to `needed` (capped at the hard limit); children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, needed), hard))


def rss_kb(pid: int | str = "self") -> int:
    """Resident set size of a process (this one by default) in KB."""
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS in /proc/{pid}/status")
