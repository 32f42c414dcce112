"""The HTML report of a mixed suite in a real headless Chromium: the results matrix, search and filters kept in
the address, each turn's details, the timeline's colours, embedded audio, and the compare view."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser_support import Tab, launched_chromium, needs_chromium, open_tab
from playwright.sync_api import Browser, Page

from rtflow import RunResult
from rtflow.results.report import ReportBaseline, write_export
from rtflow.results.summary import STATUS_ORDER, RunSummary, primary_provider
from tests.report.mixed_suite import run_mixed

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = needs_chromium


@dataclass(frozen=True)
class Suite:
    """Two runs of the mixed suite and their reports."""

    folder: Path
    baseline: RunResult
    """The suite as first written: the fruit turn fails by design."""
    current: RunResult
    """The suite changed: the fruit turn passes, the first geography turn fails."""
    report: Path
    """The baseline run's report."""
    compare_report: Path
    """The current run's report, compared with the baseline run."""


@pytest.fixture(scope="module")
def suite(tmp_path_factory: pytest.TempPathFactory) -> Suite:
    folder = tmp_path_factory.mktemp("mixed")
    store = folder / "store" / "rtflow.db"
    # One folder for both versions: a clip's variable holds its absolute path, which is part of a test's key.
    baseline = run_mixed(folder / "suite", store, "flow.yaml")
    current = run_mixed(folder / "suite", store, "flow-v2.yaml", fruit_check="purple", geography_check="paris")
    report = write_export(baseline.run, baseline.turns, folder / "reports" / "report.html")
    compare_report = write_export(
        current.run,
        current.turns,
        folder / "reports" / "compare.html",
        baseline=ReportBaseline(baseline.run, baseline.turns),
    )
    return Suite(folder, baseline, current, report, compare_report)


@pytest.fixture(scope="module")
def browser(suite: Suite) -> Iterator[Browser]:
    """Chromium, started after the suite has run: `rtflow.run` starts an event loop, which it cannot do inside
    the one Playwright's sync API keeps running."""
    with launched_chromium() as launched:
        yield launched


def address(page: Page) -> str:
    """The page's address as the page has it now: `page.url` learns of `history.replaceState` a moment later."""
    return str(page.evaluate("location.href"))


def close_clean(tab: Tab) -> None:
    """Close the tab; it had no console error and no uncaught exception."""
    tab.page.close()
    assert tab.errors == []


# What is on screen, read in one go: groups with nothing left to show, and the turns that match.
_ON_SCREEN = """
() => {
  const shown = element => element.getClientRects().length > 0;
  const any = (root, selector) => [...root.querySelectorAll(selector)].some(shown);
  const groups = [...document.querySelectorAll("tbody.thread-group")].filter(shown);
  const rows = [...document.querySelectorAll("tr.turn-row")].filter(shown);
  const conversations = [...document.querySelectorAll("details.conversation")].filter(shown);
  return {
    emptyGroups: groups.filter(g => !any(g, ".result:not(.filtered-out)")).map(g => g.dataset.thread),
    emptyRows: rows.filter(r => !any(r, ".result:not(.filtered-out)")).length,
    emptyConversations: conversations.filter(c => !any(c, "article.turn")).map(c => c.id),
    matching: [...document.querySelectorAll(".results-matrix .result:not(.filtered-out)")].filter(shown)
      .map(e => ({turn: e.dataset.turn, status: e.dataset.status, provider: e.dataset.provider,
                  thread: e.dataset.thread, types: e.dataset.types.split("|")})),
    articles: [...document.querySelectorAll("article.turn")].filter(shown).map(a => a.id),
  };
}
"""


def on_screen(page: Page) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(_ON_SCREEN)
    return result


def test_the_matrix_shows_both_providers_answers_to_a_turn_in_one_row(browser: Browser, suite: Suite) -> None:
    """One column per provider; a turn's row holds both answers, verdicts, failed reasons and latency; a long
    answer is folded until asked for."""
    tab = open_tab(browser, suite.report.as_uri())
    page = tab.page
    heads = page.locator("table.results-matrix th.column-head")
    assert sorted(heads.evaluate_all("heads => heads.map(h => h.dataset.provider)")) == ["chat", "realtime"]

    first = page.locator("tbody.thread-group[data-thread=geography] tr.turn-row").first
    answers = first.locator(".result .cell-output").all_inner_texts()
    assert len(answers) == 2 and all('You said: "What is the capital of France?"' in text for text in answers)
    assert sorted(first.locator(".result").evaluate_all("cells => cells.map(c => c.dataset.provider)")) == [
        "chat",
        "realtime",
    ]
    assert all(text.endswith(" ms") for text in first.locator(".latency").all_inner_texts())

    fruit = page.locator("tbody.thread-group[data-thread=fruit] tr.turn-row")
    assert fruit.locator(".result.status-failed").count() == 2
    assert fruit.locator(".failed-reason").all_inner_texts() == ['output does not contain "zanzibar"'] * 2
    broken = page.locator("tbody.thread-group[data-thread=broken] tr.turn-row").first
    assert broken.locator(".result.status-error .cell-error").count() == 2
    assert "chat-fallback" in broken.locator(".result[data-provider=realtime] .badge.fallback").inner_text()

    long_answer = page.locator("tbody.thread-group[data-thread=long] .result[data-provider=chat] .cell-output")
    folded = long_answer.evaluate("e => e.clientHeight < e.scrollHeight")
    long_answer.locator("xpath=following-sibling::button[1]").click()
    assert folded and long_answer.evaluate("e => e.clientHeight >= e.scrollHeight")

    # The search bar and the matrix under it; the bar stops following the scroll, or it would be painted over
    # the middle of a screenshot this tall.
    page.evaluate("document.getElementById('filters').style.position = 'static'; window.scrollTo(0, 0)")
    top = page.locator("#filters").bounding_box()  # at scroll 0, page coordinates
    bottom = page.locator("#results").bounding_box()
    assert top is not None and bottom is not None
    area = {"x": 0, "y": top["y"], "width": 1300, "height": bottom["y"] + bottom["height"] - top["y"]}
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-matrix.png"), full_page=True, clip=area)
    close_clean(tab)


def test_every_count_the_report_shows_agrees_with_the_run_summary(browser: Browser, suite: Suite) -> None:
    """The status filter's counts, the matrix's cells by status, each column's and each thread's figures are
    the run summary's (for a thread: the summary of its turns)."""
    summary = suite.baseline.summary
    tab = open_tab(browser, suite.report.as_uri())
    page = tab.page
    chips = page.locator("#filters [data-figure]").evaluate_all(
        "spans => spans.map(s => [s.dataset.figure, Number(s.textContent)])"
    )
    assert dict(chips) == {status: count for status, count in summary.status_counts().items() if count}
    for status in STATUS_ORDER:
        assert page.locator(f".results-matrix .result.status-{status}").count() == getattr(summary, status)
    assert page.locator(".filter-count").inner_text() == f"{summary.turns} turns"

    for provider in summary.providers:
        head = page.locator(f"th.column-head[data-provider={provider.provider}]")
        figures = dict(
            head.locator("[data-column-figure]").evaluate_all(
                "spans => spans.map(s => [s.dataset.columnFigure, Number(s.textContent)])"
            )
        )
        assert figures == {"turns": provider.turns, "passed": provider.passed} | provider.status_counts()

    for thread in {turn.thread_id for turn in suite.baseline.turns}:
        turns = [turn for turn in suite.baseline.turns if turn.thread_id == thread]
        expected = RunSummary.of(suite.baseline.run, turns, planned_turns=len(turns))
        group = page.locator(f"tbody.thread-group[data-thread={thread}] .thread-figures")
        figures = dict(
            group.locator("[data-thread-figure]").evaluate_all(
                "spans => spans.map(s => [s.dataset.threadFigure, Number(s.textContent)])"
            )
        )
        assert figures == {"turns": expected.turns, "passed": expected.passed} | expected.status_counts()
    close_clean(tab)


def test_the_search_narrows_to_the_matching_turns_and_a_link_reopens_it(browser: Browser, suite: Suite) -> None:
    """A word of a question keeps that row's turns (in the matrix and the transcripts); a word of a reason
    finds the turns that failed with it; the address keeps the search and reopens the same view."""
    tab = open_tab(browser, suite.report.as_uri())
    page = tab.page
    page.fill("#filter-search", "purple")
    shown = on_screen(page)
    assert {(turn["thread"], turn["provider"]) for turn in shown["matching"]} == {
        ("fruit", "chat"),
        ("fruit", "realtime"),
    }
    assert sorted(shown["articles"]) == sorted(turn["turn"] for turn in shown["matching"])
    assert shown["emptyGroups"] == [] and shown["emptyConversations"] == [] and shown["emptyRows"] == 0
    assert page.locator(".filter-count").inner_text() == f"showing 2 of {suite.baseline.summary.turns} turns"
    assert address(page).endswith("#q=purple")

    page.fill("#filter-search", "does not contain audio")  # a failed assertion's reason
    assert [(turn["thread"], turn["provider"]) for turn in on_screen(page)["matching"]] == [("voice", "chat")]

    page.fill("#filter-search", "people live")
    linked = address(page)
    reopened = open_tab(browser, linked)
    assert reopened.page.input_value("#filter-search") == "people live"
    assert on_screen(reopened.page) == on_screen(page)
    assert len(on_screen(page)["matching"]) == 2
    close_clean(reopened)
    close_clean(tab)


def _expected(suite: Suite, name: str, value: str) -> set[str]:
    """The node ids of the baseline's turns that the filter `name` = `value` keeps."""
    turns = suite.baseline.turns
    if name == "status":
        return {turn.node_id for turn in turns if turn.status == value}
    if name == "provider":
        return {turn.node_id for turn in turns if primary_provider(turn) == value}
    if name == "thread":
        return {turn.node_id for turn in turns if turn.thread_id == value}
    return {turn.node_id for turn in turns if any(result.type == value for result in turn.assertions)}


def test_each_filter_keeps_its_turns_and_leaves_no_empty_group(browser: Browser, suite: Suite) -> None:
    """Every status, provider, thread and assertion type: the matching turns are exactly the records that
    qualify, no thread, row or conversation is left empty on screen, and the address keeps the filter."""
    tab = open_tab(browser, suite.report.as_uri())
    page = tab.page
    assert len(on_screen(page)["matching"]) == suite.baseline.summary.turns  # before any filter, every turn

    statuses = [status for status in STATUS_ORDER if getattr(suite.baseline.summary, status)]
    choices = [("status", status) for status in statuses]
    choices += [("provider", provider) for provider in ("chat", "realtime")]
    choices += [("thread", thread) for thread in sorted({turn.thread_id for turn in suite.baseline.turns})]
    kinds = page.locator("#filter-type option").evaluate_all("options => options.map(o => o.value).filter(Boolean)")
    assert kinds == ["icontains", "not-icontains"]
    choices += [("type", kind) for kind in kinds]
    for name, value in choices:
        page.click("button[data-filter=all]")
        if name == "status":
            for other in statuses:
                if other != value:
                    page.uncheck(f"#filters input[name=status][value={other}]")
        else:
            page.select_option(f"#filter-{name}", value)
        shown = on_screen(page)
        assert shown["emptyGroups"] == [] and shown["emptyRows"] == 0, (name, value)
        assert shown["emptyConversations"] == [], (name, value)
        assert sorted(shown["articles"]) == sorted(turn["turn"] for turn in shown["matching"]), (name, value)
        assert len(shown["matching"]) == len(_expected(suite, name, value)), (name, value)
        for turn in shown["matching"]:
            field_value = turn["types"] if name == "type" else turn[name]
            assert value in field_value if name == "type" else field_value == value, (name, value, turn)
        assert f"{name}={value}" in address(page), (name, value)

    page.click("button[data-filter=all]")
    page.click("button[data-filter=problems]")
    problems = on_screen(page)
    assert {turn["status"] for turn in problems["matching"]} == {"failed", "error", "skipped"}
    assert "status=failed,error,skipped" in address(page)
    close_clean(tab)


def test_a_turns_details_show_its_system_prompt_messages_and_attempts(browser: Browser, suite: Suite) -> None:
    """The turn that no provider answered lists the system prompt it was sent and both attempts (primary and
    fallback) with their errors; a second turn lists the whole history sent."""
    tab = open_tab(browser, suite.report.as_uri())
    page = tab.page
    broken = page.locator("tbody.thread-group[data-thread=broken] tr.turn-row").first
    anchor = broken.locator(".result[data-provider=realtime]").get_attribute("data-turn")
    broken.locator(".result[data-provider=realtime] a.to-turn").click()
    article = page.locator(f"article#{anchor}")
    article.locator("details.turn-details > summary").click()
    assert article.locator(".system-prompt").inner_text() == "You are a helpful assistant."
    attempts = article.locator("table.attempts tbody tr")
    assert [attempts.nth(i).locator("td").nth(1).inner_text() for i in range(2)] == ["realtime", "chat-fallback"]
    assert article.locator("tr.attempt-failed").count() == 2
    assert "server_error" in attempts.nth(1).inner_text()

    second = page.locator("tbody.thread-group[data-thread=geography] tr.turn-row").nth(1)
    anchor = second.locator(".result[data-provider=chat]").get_attribute("data-turn")
    details = page.locator(f"article#{anchor} details.turn-details")
    # The history the first turn sent is listed there; this turn lists what it added to it.
    assert "First the 1 message the previous turn sent" in details.locator(".sent-before").text_content()
    messages = details.locator("ol.messages-sent").first
    assert messages.get_attribute("start") == "2"
    assert messages.locator("li").evaluate_all("items => items.map(i => i.className)") == [
        "message role-assistant",
        "message role-user",
    ]
    assert messages.locator(".message-text").nth(1).text_content() == "And how many people live there?"
    close_clean(tab)


def test_the_timeline_colours_failed_errored_and_fallback_turns_apart(browser: Browser, suite: Suite) -> None:
    """Answers whose assertions failed, attempts of turns no provider answered, fallback answers and retried
    attempts each have their class and their own colour."""
    tab = open_tab(browser, suite.report.as_uri())
    page = tab.page
    counts = {
        outcome: page.locator(f"svg.timeline rect.bar.{outcome}").count()
        for outcome in ("ok", "failed", "error", "fallback", "retry")
    }
    # fruit x2 and chat's voice turn failed; broken turn 1 ended in error on both columns (the realtime one after
    # its fallback failed too); the detour turn's fallback answered; the realtime attempts before a fallback.
    assert counts == {"ok": 8, "failed": 3, "error": 2, "fallback": 1, "retry": 2}
    assert sum(counts.values()) == suite.baseline.summary.attempts
    fills = {
        outcome: page.locator(f"svg.timeline rect.bar.{outcome}").first.evaluate("e => getComputedStyle(e).fill")
        for outcome in counts
    }
    assert len(set(fills.values())) == len(fills)
    close_clean(tab)


def test_audio_plays_from_a_copy_of_the_report_in_another_folder(
    browser: Browser, suite: Suite, tmp_path: Path
) -> None:
    """Copied alone to another folder, with the run's folders moved away, every player loads its audio (the
    recorded answers and the clip sent) and none errs; the footer says the file is self-contained."""
    copy = tmp_path / "elsewhere" / "copied-report.html"
    copy.parent.mkdir()
    shutil.copy(suite.report, copy)
    moved = suite.folder.with_name(suite.folder.name + "-moved")
    suite.folder.rename(moved)
    try:
        tab = open_tab(browser, copy.as_uri())
        page = tab.page
        players = page.locator("details.conversation audio")
        sources = players.evaluate_all("players => players.map(p => p.src.slice(0, 11))")
        assert sources and set(sources) == {"data:audio/"}
        loaded = players.evaluate_all(
            """players => Promise.all(players.map(player => new Promise(resolve => {
                 player.preload = "auto";
                 const done = () => resolve({ready: player.readyState, duration: player.duration,
                                             error: player.error && player.error.code});
                 player.addEventListener("loadedmetadata", done);
                 player.addEventListener("error", done);
                 player.load();
               })))"""
        )
        voice_answers = [turn for turn in suite.baseline.turns if turn.output and turn.output.audio]
        clip_players = page.locator(".bubble.user audio").count()
        assert len(loaded) == len(voice_answers) + clip_players and clip_players == 2
        assert all(entry["error"] is None and entry["ready"] >= 1 and entry["duration"] > 0 for entry in loaded)
        footer = page.locator("footer").inner_text()
        assert "self-contained and works offline" in footer and "could not be embedded" not in footer

        conversation = page.locator("details.conversation[data-thread=voice][data-column=realtime]")
        ARTIFACTS.mkdir(exist_ok=True)
        conversation.screenshot(path=str(ARTIFACTS / "report-voice.png"))
        close_clean(tab)
    finally:
        moved.rename(suite.folder)


def test_the_compare_view_lists_changed_verdicts_first(browser: Browser, suite: Suite) -> None:
    """Against the baseline: the turns that went from pass to fail, then those that went from fail to pass,
    each with both answers side by side; the unchanged ones folded after; the run figures' deltas."""
    tab = open_tab(browser, suite.compare_report.as_uri())
    page = tab.page
    changed = page.locator("#compare > .scroll table.compare-tests tbody tr.compared")
    kinds = changed.evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert kinds == ["newly failing", "newly failing", "newly passing", "newly passing"]
    where = changed.locator(".compared-where").all_inner_texts()
    assert [text.split(" · ")[0] for text in where] == ["geography", "geography", "fruit", "fruit"]
    for index in range(changed.count()):
        row = changed.nth(index)
        before, after = row.locator(".compare-before .cell-output"), row.locator(".compare-after .cell-output")
        assert before.inner_text() == after.inner_text() != ""  # the simulator answers alike; the verdict moved
    assert changed.first.locator(".compare-before .badge").first.inner_text() == "passed"
    assert changed.first.locator(".compare-after .badge").first.inner_text() == "failed"
    unchanged = page.locator("#compare details.unchanged tr.compared")
    assert unchanged.count() > 0 and set(unchanged.evaluate_all("rows => rows.map(r => r.dataset.kind)")) == {"same"}

    rate = page.locator("table.compare-metrics tr[data-metric='pass rate'] td").all_inner_texts()
    before_rate, after_rate = suite.baseline.summary.pass_rate, suite.current.summary.pass_rate
    assert before_rate is not None and after_rate is not None
    assert rate[:2] == [f"{before_rate * 100:.1f}%", f"{after_rate * 100:.1f}%"]
    assert page.locator("table.compare-metrics tr[data-metric='total turn time p50']").count() == 1

    ARTIFACTS.mkdir(exist_ok=True)
    page.locator("#compare").screenshot(path=str(ARTIFACTS / "report-compare.png"))
    close_clean(tab)
