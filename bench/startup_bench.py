"""What a user waits for before rtflow does any work: the start-up of the CLI and of `import rtflow`.

Each command runs as a whole new process, 10 times after one warm-up, and the median wall time is reported
beside a bare `python -c pass` for scale (the interpreter's own start-up, which rtflow cannot shave):

    python bench/startup_bench.py
    python bench/startup_bench.py --runs 20

Goals on a 2-core machine: `rtflow --version` <= 0.15 s, `import rtflow` <= 0.15 s, `rtflow validate` of the
example flow <= 0.45 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS_S = {"rtflow --version": 0.15, "import rtflow": 0.15, "rtflow validate": 0.45}


def _commands() -> dict[str, list[str]]:
    rtflow = shutil.which("rtflow") or "rtflow"
    return {
        "python -c pass": [sys.executable, "-c", "pass"],
        "rtflow --version": [rtflow, "--version"],
        "import rtflow": [sys.executable, "-c", "import rtflow"],
        "rtflow validate": [rtflow, "validate", str(ROOT / "flows" / "conversation.yaml")],
    }


def _median_wall_s(command: list[str], runs: int) -> float:
    subprocess.run(command, check=True, capture_output=True)  # warm-up: the file cache, .pyc files
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        walls.append(time.perf_counter() - started)
    return statistics.median(walls)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    within = True
    print(f"{'command':<20} {'median':>8}  goal")
    for name, command in _commands().items():
        median = _median_wall_s(command, args.runs)
        goal = GOALS_S.get(name)
        verdict = "" if goal is None else f"{goal:.2f} s {'ok' if median <= goal else 'OVER'}"
        within = within and (goal is None or median <= goal)
        print(f"{name:<20} {median:>6.3f} s  {verdict}")
    return 0 if within else 1


if __name__ == "__main__":
    sys.exit(main())
