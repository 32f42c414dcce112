"""`python -m rtflow.cli`: the same command line as the `rtflow` script, and a way out past stuck user code."""

from __future__ import annotations

import sys
import traceback

from rtflow.cli import main
from rtflow.user_code import exit_past_stuck_calls, stuck_calls


def run() -> None:
    """Run the command line, then leave even when a flow's function is stuck in a thread rtflow abandoned.

    Python joins its worker threads before the process ends, and a thread running a user function cannot be
    stopped (see `rtflow.user_code`): without this, a tool handler that never returns keeps the process alive
    after the summary was printed. Only then is the process ended with `os._exit`; otherwise it ends as usual.
    """
    try:
        main(prog_name="rtflow")
    except SystemExit as exc:  # every command ends here, click's `standalone_mode` sees to it
        if stuck_calls() and not isinstance(exc.code, int | None):
            print(exc.code, file=sys.stderr)  # what Python prints for `sys.exit("message")`; `os._exit` does not
        exit_past_stuck_calls(_exit_status(exc.code))
        raise
    except BaseException as exc:  # a crash: shown as Python shows it, then the same way out
        if stuck_calls():
            traceback.print_exception(exc)
            exit_past_stuck_calls(1)
        raise


def _exit_status(code: object) -> int:
    """The status `sys.exit(code)` would end the process with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1


if __name__ == "__main__":
    run()
