"""A voice run's report in a real headless Chromium: the heard part of a cut answer reads normally, the rest is
struck through and labelled, hostile text stays text, and the barge-in sits on the timeline."""

from __future__ import annotations

from pathlib import Path

from browser_support import launched_chromium, needs_chromium
from playwright.sync_api import Dialog
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
    console_errors: list[str] = []
    dialogs: list[str] = []
    with launched_chromium() as browser:
        page = browser.new_page(viewport={"width": 1200, "height": 900})
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: console_errors.append(str(error)))

        def on_dialog(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", on_dialog)
        page.goto(report.as_uri())
        page.wait_for_load_state("load")

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
    assert dialogs == []
    assert console_errors == []
