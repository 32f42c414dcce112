"""`rtflow view` in a real headless Chromium, started as a subprocess the way people start it: the runs list, a
run's report, two runs compared, and a run in progress whose report grows while its page stays open."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from browser_support import Tab, launched_chromium, needs_chromium, open_tab
from playwright.sync_api import Browser, Page

from tests.viewer.support import TwoRuns, Viewer, start_viewer, two_finished_runs, wait_for_run, write_flow

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> TwoRuns:
    return two_finished_runs(tmp_path_factory.mktemp("viewer-browser"))


@pytest.fixture(scope="module")
def viewer(runs: TwoRuns) -> Iterator[Viewer]:
    started = start_viewer(runs.db, cwd=runs.db.parent.parent)
    yield started
    started.stop()


@pytest.fixture(scope="module")
def browser(runs: TwoRuns) -> Iterator[Browser]:
    """Chromium, started after the runs: `rtflow.run` starts an event loop, which it cannot do inside the one
    Playwright's sync API keeps running."""
    with launched_chromium() as launched:
        yield launched


def close_clean(tab: Tab) -> None:
    tab.page.close()
    assert tab.errors == []


# The report in the live page's frame, read in one go (the frame is the viewer's own origin).
_REPORT_STATE = """
() => {
  const frame = document.getElementById("report");
  const report = frame && frame.contentDocument;
  if (!report || !report.querySelector("body > header")) { return null; }
  return {
    turns: report.querySelectorAll("article.turn").length,
    finished: report.querySelector("body > header .badge.run-finished") !== null,
    running: report.querySelector("body > header .badge.run-running") !== null,
    hash: frame.contentWindow.location.hash,
    search: report.getElementById("filter-search").value,
    bar: document.getElementById("live").innerText,
  };
}
"""


def report_state(page: Page) -> dict[str, object] | None:
    state: dict[str, object] | None = page.evaluate(_REPORT_STATE)
    return state


def wait_for_report(page: Page, timeout_s: float = 15.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = report_state(page)
        if state is not None:
            return state
        time.sleep(0.05)
    raise AssertionError("the report did not load in the live page")


def test_the_runs_list_shows_both_runs_with_their_pass_rates(browser: Browser, viewer: Viewer, runs: TwoRuns) -> None:
    """Newest first, each with its status, pass rate and counts from its summary, linking to its page."""
    tab = open_tab(browser, viewer.url, count_requests=True)
    page = tab.page
    rows = page.locator("tr.run")
    assert rows.evaluate_all("rows => rows.map(r => r.dataset.run)") == [
        runs.current.run.run_id,
        runs.baseline.run.run_id,
    ]
    assert page.locator("td.pass-rate").all_inner_texts() == ["33%", "67%"]
    assert page.locator("td[data-count=passed]").all_inner_texts() == ["1", "2"]
    assert page.locator("td[data-count=failed]").all_inner_texts() == ["2", "1"]
    assert rows.first.locator(".badge.run-finished").inner_text() == "finished"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "viewer-runs.png"), full_page=True)

    rows.nth(1).locator("a").first.click()
    page.wait_for_url(f"**/runs/{runs.baseline.run.run_id}")
    state = wait_for_report(page)
    assert state["turns"] == 3 and state["finished"]
    close_clean(tab)


def test_a_finished_runs_report_opens_with_its_filters_and_polls_nothing(
    browser: Browser, viewer: Viewer, runs: TwoRuns
) -> None:
    """The report shows the run; the filters in the address reach it and its own changes come back to the
    address; a run that has ended is never polled."""
    run_id = runs.baseline.run.run_id
    tab = open_tab(browser, f"{viewer.url}runs/{run_id}#q=France", count_requests=True)
    page = tab.page
    state = wait_for_report(page)
    assert state["search"] == "France" and state["hash"] == "#q=France"
    report = page.frame_locator("#report")
    assert run_id in report.locator("body > header").inner_text()
    assert report.locator("[data-figure=passed]").first.inner_text() == "2"
    report.locator("#filter-search").fill("purple")
    page.wait_for_function("() => location.hash === '#q=purple'")
    page.wait_for_timeout(2000)  # longer than a poll interval: an ended run is not asked about
    assert tab.polls == []
    close_clean(tab)


def test_the_compare_page_opens_with_the_changed_verdicts_first(
    browser: Browser, viewer: Viewer, runs: TwoRuns
) -> None:
    """The runs list's form compares the newest run with the one before; the changed test leads."""
    tab = open_tab(browser, viewer.url, count_requests=True)
    page = tab.page
    page.get_by_role("button", name="Compare").click()
    page.wait_for_url(f"**/compare/{runs.baseline.run.run_id}/{runs.current.run.run_id}")
    wait_for_report(page)
    compare = page.frame_locator("#report").locator("section#compare")
    kinds = compare.locator("tr.compared").evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == ["newly failing", "same", "same"]
    assert "What is the capital of France?" in compare.locator("tr.compared").first.inner_text()
    assert "against baseline" in page.locator("#live").inner_text()
    close_clean(tab)


LIVE_TURNS = 12


@pytest.mark.slow
def test_a_run_in_progress_grows_while_its_page_stays_open(browser: Browser, tmp_path: Path) -> None:
    """Opened as a run starts, the page shows more turns as they are stored, keeps its filters, ends on the
    finished run and then stops polling; the page itself is never reloaded."""
    db = tmp_path / "live.db"
    flow = write_flow(tmp_path / "live.yaml", {f"c{index:02}": "capital" for index in range(LIVE_TURNS)}, concurrency=1)
    viewer = start_viewer(db, cwd=tmp_path)
    # 300 ms before each answer, one turn at a time: the run lasts a few seconds, several polls long.
    command = ["run", str(flow), "--sim", "--sim-latency-ms", "300", "--db", str(db), "--no-progress"]
    run = subprocess.Popen(
        [sys.executable, "-m", "rtflow", *command],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    try:
        run_id = wait_for_run(db)
        tab = open_tab(browser, f"{viewer.url}runs/{run_id}#q=capital", count_requests=True)
        page = tab.page
        page.evaluate("() => { window.stillTheSamePage = true; }")
        seen: list[int] = []
        seen_running: set[int] = set()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            state = report_state(page)
            if state is not None:
                seen.append(int(str(state["turns"])))
                if state["running"]:
                    seen_running.add(seen[-1])
                if state["finished"] and state["turns"] == LIVE_TURNS:
                    break
            time.sleep(0.1)
        assert run.wait(timeout=30) == 0
        assert seen and seen[-1] == LIVE_TURNS, seen
        assert seen == sorted(seen), seen  # the report only ever gains turns
        # Shown again while the run was still going, not only once at the start and once at the end.
        assert len(seen_running) >= 2 and max(seen_running) < LIVE_TURNS, seen_running
        # The report can show the end before a poll has (it is rendered after the status it was asked for):
        # the page is done once its own status says so and no fresh report is loading.
        page.wait_for_function(
            "() => document.getElementById('live-status').textContent === 'finished'"
            " && !document.querySelector('#frames iframe.loading')"
        )
        final = wait_for_report(page)
        assert final["finished"] and final["hash"] == "#q=capital" and final["search"] == "capital"
        assert page.locator("#live-status").inner_text() == "finished"
        assert page.locator("#live-turns").inner_text() == f"{LIVE_TURNS} of {LIVE_TURNS} turns stored"
        assert page.evaluate("() => window.stillTheSamePage === true")
        polls_at_end = len(tab.polls)
        page.wait_for_timeout(3500)  # two poll intervals and more (a Playwright wait: it takes in the page's events)
        assert len(tab.polls) == polls_at_end
        assert report_state(page) == final
        close_clean(tab)
    finally:
        run.kill()
        run.wait()
        viewer.stop()
