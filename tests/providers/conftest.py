"""Fixtures shared by the provider tests: a tools module on disk, no ambient OpenAI key or base URL, and (when
asked for) no proxy settings."""

from __future__ import annotations

from pathlib import Path

import pytest

TOOLS_SOURCE = """
import asyncio
import json
import time


def get_weather(args):
    return {"city": args["city"], "temp_c": 21}


async def async_lookup(args):
    await asyncio.sleep(0)
    return "found " + args.get("query", "")


def explode(args):
    raise ValueError("the weather service is down")


def sleepy(args):
    time.sleep(1.0)
    return "too late"


def loop_forever(args):
    return "again"


def dispatch(name, arguments_json):
    return {"dispatched": name, "args": json.loads(arguments_json)}
"""


@pytest.fixture
def tools_dir(tmp_path: Path) -> Path:
    """A folder holding tools.py with sync, async, raising, slow and dispatching handlers."""
    (tmp_path / "tools.py").write_text(TOOLS_SOURCE)
    return tmp_path


@pytest.fixture(autouse=True)
def _no_ambient_openai_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Provider tests never see a developer's real key or base URL."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


@pytest.fixture
def no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy variable of the machine's in either spelling (urllib lets the lower-case one win)."""
    for scheme in ("http", "https", "all", "no", "ws", "wss", "socks"):
        for name in (f"{scheme}_proxy", f"{scheme.upper()}_PROXY"):
            monkeypatch.delenv(name, raising=False)
