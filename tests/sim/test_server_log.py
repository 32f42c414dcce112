"""The in-process simulator's own log lines (uvicorn's) go through rtflow's logger, never straight to stderr."""

from __future__ import annotations

import logging
import socket

import anyio
import pytest

from rtflow.log import capture_events
from rtflow.sim import SimServer

pytestmark = pytest.mark.anyio


async def test_a_bad_request_is_a_quiet_sim_log_event(capfd: pytest.CaptureFixture[str]) -> None:
    uvicorn_error = logging.getLogger("uvicorn.error")
    before = (uvicorn_error.propagate, uvicorn_error.level, list(uvicorn_error.handlers))
    with capture_events() as events:
        async with SimServer() as sim:
            with socket.create_connection((sim.host, sim.port)) as raw:
                raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
                with anyio.fail_after(5):
                    while not any(e["event"] == "sim.server_log" and "Invalid HTTP" in e["message"] for e in events):
                        await anyio.sleep(0.01)
    captured = capfd.readouterr()
    assert "Invalid HTTP" not in captured.err and "Traceback" not in captured.err, captured.err
    logged = [e for e in events if e["event"] == "sim.server_log"]
    assert any(e["level"] == "warning" and "Invalid HTTP request" in e["message"] for e in logged), logged
    # Stopped, the simulator leaves uvicorn's loggers as it found them.
    assert (uvicorn_error.propagate, uvicorn_error.level, list(uvicorn_error.handlers)) == before
