"""`python -m rtflow`: the same command line as the `rtflow` script."""

from __future__ import annotations

from rtflow.cli.__main__ import run

if __name__ == "__main__":
    run()
