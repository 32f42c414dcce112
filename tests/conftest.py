"""Settings shared by every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import rtflow.log


@pytest.fixture
def anyio_backend() -> str:
    """rtflow runs on asyncio; the tests do too."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_logging() -> Iterator[None]:
    """rtflow's logging set-up is process-wide: a test that configures it must not change the next test's."""
    yield
    rtflow.log._current = None
