"""A voice run's report in a real headless Chromium: the heard part of a cut answer reads normally, the rest is
struck through and labelled, hostile text stays text, and the barge-in sits on the timeline."""

from __future__ import annotations

from pathlib import Path

from browser_support import launched_chromium, needs_chromium, open_tab
from results_samples import HOSTILE_OUTPUT, make_run
from turn_taking_samples import CUT, FULL_ANSWER, HEARD, voice_turn, voice_turns

from rtflow.messages import TurnMetrics
from rtflow.results.report import write_export

pytestmark = needs_chromium


def test_cut_answers_render_heard_and_unheard_parts_in_chromium(tmp_path: Path) -> None:
    """No console errors or dialogs; heard text plain, unheard struck through after its label; hostile text inert."""
    hostile = voice_turn(
        "voice",
        "hostile",
        0,
        TurnMetrics(ttfa_ms=90.0),
        text=f"{HOSTILE_OUTPUT} and more",
        heard_text=HOSTILE_OUTPUT,
        interruption=CUT,
        start=0.4,
    )
    report = write_export(make_run(), [*voice_turns(), hostile], tmp_path / "report.html")
    with launched_chromium() as browser:
        tab = open_tab(browser, report.as_uri(), width=1200)
        page = tab.page

        heard = page.locator(".answer-heard").all_inner_texts()
        unheard = page.locator(".answer-unheard")
        # Conversations by id: voice/hostile, then voice/rome.
        assert [text.strip() for text in heard] == [HOSTILE_OUTPUT, HEARD]
        assert unheard.all_inner_texts() == ["and more", FULL_ANSWER.removeprefix(HEARD + " ")]
        assert "line-through" in unheard.first.evaluate("e => getComputedStyle(e).textDecorationLine")
        assert "line-through" not in page.locator(".answer-heard").first.evaluate(
            "e => getComputedStyle(e).textDecorationLine"
        )
        assert page.locator(".cut-label").all_inner_texts() == ["not heard — cut at 600 ms"] * 2
        assert page.locator(".output-text script, .output-text img").count() == 0
        assert page.locator(".interruption").count() == 2
        assert page.locator("svg.timeline line.barge-in").count() == 2
        assert page.locator("table.turn-taking tr[data-scope=all]").count() == 7
    assert tab.dialogs == []
    assert tab.errors == []
