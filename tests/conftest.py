"""Settings shared by every test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    """rtflow runs on asyncio; the tests do too."""
    return "asyncio"


@pytest.fixture(autouse=True)
def _fresh_structlog() -> Iterator[None]:
    """Logging configuration is process-wide: a run that configures it must not change the next test's."""
    yield
    structlog.reset_defaults()
