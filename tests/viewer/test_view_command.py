"""`rtflow view` as people start it: it prints its address first, listens where `--host` and `--port` say,
refuses a port in use with a clear message, and stops on Ctrl-C with exit 0 and no traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.viewer.support import Viewer, start_viewer


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def viewers() -> Iterator[list[Viewer]]:
    """The viewers a test starts, each stopped (killed if need be) when it ends."""
    started: list[Viewer] = []
    yield started
    for viewer in started:
        viewer.stop()


def test_host_and_port_are_honoured_and_ctrl_c_ends_quietly(tmp_path: Path, viewers: list[Viewer]) -> None:
    """The first line is the address asked for; it answers there; Ctrl-C exits 0 without a traceback."""
    port = _free_port()
    viewer = start_viewer(tmp_path / "rtflow.db", "--host", "127.0.0.1", "--port", str(port), cwd=tmp_path)
    viewers.append(viewer)
    assert viewer.url == f"http://127.0.0.1:{port}/"
    with httpx.Client(trust_env=False, timeout=10) as client:
        page = client.get(viewer.url)
    assert page.status_code == 200 and "there is no run store at" in page.text
    assert viewer.stop() == 0
    assert "Traceback" not in viewer.stderr and "KeyboardInterrupt" not in viewer.stderr


def test_port_zero_picks_a_free_port_and_a_busy_port_is_refused(tmp_path: Path, viewers: list[Viewer]) -> None:
    """`--port 0` prints the port it got; a second viewer on that port says it cannot listen and exits 2."""
    viewer = start_viewer(tmp_path / "rtflow.db", "--host", "localhost", cwd=tmp_path)
    viewers.append(viewer)
    port = int(viewer.url.rstrip("/").rsplit(":", 1)[1])
    assert port > 0
    with httpx.Client(trust_env=False, timeout=10) as client:
        assert client.get(viewer.url).status_code == 200
        assert client.get(viewer.url, headers={"host": f"attacker.example:{port}"}).status_code == 400
    busy = subprocess.run(
        [sys.executable, "-m", "rtflow", "view", "--db", str(tmp_path / "rtflow.db"), "--port", str(port)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=30,
        check=False,
    )
    assert busy.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in busy.stderr and "Traceback" not in busy.stderr
