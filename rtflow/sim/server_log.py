"""uvicorn's own log lines, told through rtflow's logger while a simulator serves.

uvicorn logs to the `uvicorn` and `uvicorn.error` loggers ("Invalid HTTP request received.", an exception in the
app with its traceback). Left alone they go wherever the host program's logging sends them; with uvicorn's own
`log_config` they would go to stderr, and `logging.config` would be applied to the whole process. Instead the
simulator starts uvicorn with no logging config and, while it serves, forwards those records to rtflow's logger
as `sim.server_log` events at info level: quiet in a run unless `-v`, and shown by `rtflow sim`, which logs
info. Forwarding stops when the last simulator of the process stops.
"""

from __future__ import annotations

import logging
import traceback

from rtflow.log import get_logger

__all__ = ["forwarding_server_logs"]

_UVICORN_LOGGERS = ("uvicorn", "uvicorn.error")


class _ToRtflowLog(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        fields = {"level": record.levelname.lower(), "message": record.getMessage()}
        if record.exc_info and record.exc_info[1] is not None:
            fields["error"] = "".join(traceback.format_exception(record.exc_info[1])).rstrip()
        get_logger().info("sim.server_log", **fields)


class _Forwarding:
    """Reference-counted: several simulators may serve in one process (tests do)."""

    def __init__(self) -> None:
        self._users = 0
        self._handler = _ToRtflowLog()
        self._saved: dict[str, tuple[bool, int]] = {}

    def __enter__(self) -> None:
        self._users += 1
        if self._users > 1:
            return
        for name in _UVICORN_LOGGERS:
            logger = logging.getLogger(name)
            self._saved[name] = (logger.propagate, logger.level)
            logger.addHandler(self._handler)
            logger.propagate = False  # the host's handlers do not print the simulator's tracebacks
            logger.setLevel(logging.INFO)

    def __exit__(self, *exc_info: object) -> None:
        self._users -= 1
        if self._users > 0:
            return
        for name, (propagate, level) in self._saved.items():
            logger = logging.getLogger(name)
            logger.removeHandler(self._handler)
            logger.propagate = propagate
            logger.setLevel(level)
        self._saved.clear()


forwarding_server_logs = _Forwarding()
"""`with forwarding_server_logs:` around a simulator's life."""
