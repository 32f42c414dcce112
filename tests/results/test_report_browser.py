"""The HTML report in a real headless Chromium: it loads cleanly, escapes model output and shows its charts."""

from __future__ import annotations

from pathlib import Path

from browser_support import launched_chromium, needs_chromium, open_tab
from results_samples import HOSTILE_OUTPUT

from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report import write_export

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = needs_chromium


def test_report_renders_safely_in_chromium(
    tmp_path: Path, run_record: RunRecord, turn_records: list[TurnRecord]
) -> None:
    """No console errors or dialogs; hostile output shows as text; matrix, timeline, charts and audio are there."""
    report = write_export(run_record, turn_records, tmp_path / "report" / "index.html")
    with launched_chromium() as browser:
        tab = open_tab(browser, report.as_uri(), width=1200)
        page = tab.page

        hostile = page.locator(".output-text", has_text="alert(1)")
        assert hostile.count() == 1
        assert hostile.inner_text() == HOSTILE_OUTPUT
        assert page.locator(".output-text script").count() == 0
        assert page.locator(".output-text img").count() == 0

        assert page.locator("table.matrix td.cell").count() == 3
        assert page.locator("table.matrix").inner_text().count("/") >= 3
        assert page.locator("svg.timeline rect.bar").count() == sum(len(turn.calls) for turn in turn_records)
        assert page.locator("svg.timeline rect.bar.retry").count() == 2
        assert page.locator("svg.timeline rect.bar.fallback").count() == 1
        assert page.locator("svg.histogram").count() == 2
        # Both clips embedded, each once; the matrix's players borrow the transcript's source.
        sources = page.locator("details.conversation audio").evaluate_all(
            "elements => elements.map(e => e.getAttribute('src'))"
        )
        assert len(sources) == 2 and all(source.startswith("data:audio/wav;base64,") for source in sources)
        borrowed = page.locator(".results-matrix audio").evaluate_all("elements => elements.map(e => e.src)")
        assert borrowed and set(borrowed) <= set(sources)
        assert "get_weather" in page.locator(".tool-call").inner_text()

        # The report's own script runs (the CSP nonce lets it) and its filter hides passing turns.
        assert page.evaluate("document.documentElement.classList.contains('scripted')")
        page.click("button[data-filter=problems]")
        assert page.locator("article.turn:visible").count() == 3

        ARTIFACTS.mkdir(exist_ok=True)
        page.click("button[data-filter=all]")
        page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert tab.dialogs == []
    assert tab.errors == []
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
