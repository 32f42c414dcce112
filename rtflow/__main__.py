"""`python -m rtflow`: the same command line as the `rtflow` script."""

from __future__ import annotations

from rtflow.cli import main

if __name__ == "__main__":
    main(prog_name="rtflow")
