"""Settings shared by every test."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """rtflow runs on asyncio; the tests do too."""
    return "asyncio"
