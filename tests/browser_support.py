"""A real headless Chromium for the browser tests: where it is, the marks that skip a module without it, how it
is started, and a tab that records what went wrong on its page.

Imported as `browser_support` (pytest puts `tests/` on the path for `tests/conftest.py`), like the other
support modules."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
"""The Chromium the tests launch: the one on PATH, else Debian's."""

# A module's `pytestmark`: it needs Chromium, and is skipped when it is not installed.
needs_chromium = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Chromium is not installed (on PATH or /usr/bin)"),
]


@contextmanager
def launched_chromium() -> Iterator[Browser]:
    """Chromium, closed on the way out. Start it only after any `rtflow.run` the test needs: `rtflow.run` starts
    an event loop, which it cannot do inside the one Playwright's sync API keeps running."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            yield browser
        finally:
            browser.close()


@dataclass
class Tab:
    """A page, every console error and uncaught exception it had, and (when counted) its requests to `/api/`."""

    page: Page
    errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    """The message of every dialog the page opened (each dismissed): an injected `alert(...)` lands here."""
    polls: list[float] = field(default_factory=list)
    """When each request to `/api/` was made (the viewer's status polls); empty unless `open_tab` counts them."""


def open_tab(browser: Browser, url: str, count_requests: bool = False, width: int = 1300) -> Tab:
    """A new page `width` pixels wide and 900 high at `url`, loaded, recording its errors and dialogs and, with
    `count_requests`, its `/api/` polls."""
    page = browser.new_page(viewport={"width": width, "height": 900})
    tab = Tab(page)
    page.on("console", lambda message: tab.errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: tab.errors.append(str(error)))

    def on_dialog(dialog: Dialog) -> None:
        tab.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    if count_requests:
        page.on("request", lambda request: tab.polls.append(time.monotonic()) if "/api/" in request.url else None)
    page.goto(url)
    page.wait_for_load_state("load")
    return tab
