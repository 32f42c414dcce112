"""A simulated dialogue's report in a real headless Chromium: it reads as caller and agent taking turns, ends with
why it stopped and the verdicts, and loads with no console errors; a hostile caller line stays text."""

from __future__ import annotations

from pathlib import Path

from browser_support import launched_chromium, needs_chromium, open_tab
from dialogue_samples import ANSWERS, CALLER_LINES, HOSTILE_CALLER, VERDICTS, dialogue_turns
from results_samples import make_run

from rtflow.results.report import write_export

pytestmark = needs_chromium


def test_a_dialogue_renders_as_a_transcript_in_chromium(tmp_path: Path) -> None:
    """Caller lines and answers in order, the stop reason and the verdicts' reasons; no console errors or dialogs."""
    report = write_export(make_run(), dialogue_turns(), tmp_path / "report.html")
    with launched_chromium() as browser:
        tab = open_tab(browser, report.as_uri(), width=1200)
        page = tab.page

        bubbles = page.locator("details.conversation .bubble .text").all_inner_texts()
        assert bubbles == [piece for pair in zip(CALLER_LINES, ANSWERS, strict=True) for piece in pair]
        assert page.locator(".caller-line", has_text="alert(").inner_text() == HOSTILE_CALLER
        assert page.locator(".bubble script").count() == 0
        ending = page.locator(".dialogue-end")
        assert ending.locator(".stop-reason").inner_text().startswith("stopped the caller said the stop phrase")
        assert ending.locator(".reason").all_inner_texts() == [result.reason for result in VERDICTS]
        assert page.locator("article.turn ul.assertions").count() == 0
    assert tab.dialogs == []
    assert tab.errors == []
