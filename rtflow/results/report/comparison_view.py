"""The report's compare view: this run against a baseline run, changed verdicts first.

Tests are matched and judged by `rtflow.results.compare` (what `rtflow diff` prints), so the report and the
command say the same thing about the same two runs. This adds what a page can show and a terminal cannot: both
answers side by side, and how the run's figures moved (pass rate, latency, cost), each taken from the two runs'
`RunSummary`.

Order: regressions, newly failing, improvements, newly passing, then tests whose status changed without a
change of pass rate (failed -> error), then new and gone tests; tests that did not change come last, folded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rtflow.messages import usd
from rtflow.results.compare import CHANGE_ORDER, Change, compare_runs, test_key
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report.data import turn_input_text
from rtflow.results.summary import RunSummary, primary_provider

__all__ = ["ComparedTest", "ComparisonView", "MetricDelta", "ReportBaseline", "comparison_view"]


@dataclass(frozen=True)
class ReportBaseline:
    """The run a report compares its run with: its record and its turns, as the store holds them."""

    run: RunRecord
    turns: Sequence[TurnRecord]


@dataclass(frozen=True)
class MetricDelta:
    """One run figure, before and after."""

    name: str
    before: str
    after: str
    delta: str
    trend: str
    """`better`, `worse` or `same`: what colours the delta."""


@dataclass(frozen=True)
class ComparedTest:
    """One test's change, with a turn of each side to show."""

    change: Change
    before: TurnRecord | None
    after: TurnRecord | None
    status_changed: bool
    """Whether the statuses shown differ (a failed -> error change leaves the pass rate, and `kind`, alone)."""
    after_anchor: str
    """The transcript element of the current run's turn (empty when the test is gone)."""

    @property
    def changed(self) -> bool:
        """Whether the test belongs among the changes (everything but an unchanged test)."""
        return self.change.kind != "same" or self.status_changed

    @property
    def shown(self) -> TurnRecord:
        """The turn that names the test: the current run's, or the baseline's for a test that is gone."""
        shown = self.after or self.before
        assert shown is not None, "a test is in one run at least"
        return shown

    @property
    def question(self) -> str:
        """What the user said in the test's turn."""
        return turn_input_text(self.shown)

    @property
    def provider(self) -> str:
        """The test's primary provider (what `rtflow diff` matches it by)."""
        return primary_provider(self.shown)

    @property
    def latency_delta_ms(self) -> float | None:
        """Median total turn time, after minus before, when both sides have timings."""
        latency = self.change.latency_ms
        return None if latency is None else latency[1] - latency[0]


@dataclass(frozen=True)
class ComparisonView:
    """Everything the compare view shows."""

    baseline_run_id: str
    metrics: list[MetricDelta]
    changed: list[ComparedTest]
    unchanged: list[ComparedTest]


def _first_by_key(turns: Sequence[TurnRecord]) -> dict[str, TurnRecord]:
    shown: dict[str, TurnRecord] = {}
    for turn in sorted(turns, key=lambda turn: (turn.conversation_id, turn.turn_index)):
        shown.setdefault(test_key(turn), turn)
    return shown


def _delta(name: str, before: float | None, after: float | None, unit: str, lower_is_better: bool) -> MetricDelta:
    def shown(value: float | None) -> str:
        if value is None:
            return "-"
        if unit == "%":
            return f"{value * 100:.1f}%"
        if unit == "$":
            return f"${usd(value)}"
        return f"{value:,.0f}{unit}"

    if before is None or after is None:
        return MetricDelta(name, shown(before), shown(after), "-", "same")
    change = after - before
    if unit == "%":
        delta = f"{change * 100:+.1f} pp"
    elif unit == "$":
        delta = f"{'+' if change >= 0 else '-'}${usd(abs(change))}"
    else:
        delta = f"{change:+,.0f}{unit}"
    trend = "same" if abs(change) < 1e-12 else ("better" if (change < 0) == lower_is_better else "worse")
    return MetricDelta(name, shown(before), shown(after), delta, trend)


def _metrics(before: RunSummary, after: RunSummary) -> list[MetricDelta]:
    return [
        _delta("pass rate", before.pass_rate, after.pass_rate, "%", lower_is_better=False),
        _delta("passed", before.passed, after.passed, "", lower_is_better=False),
        _delta("failed", before.failed, after.failed, "", lower_is_better=True),
        _delta("error", before.error, after.error, "", lower_is_better=True),
        _delta("skipped", before.skipped, after.skipped, "", lower_is_better=True),
        _delta("total turn time p50", before.total_p50_ms, after.total_p50_ms, " ms", lower_is_better=True),
        _delta("total turn time p95", before.total_p95_ms, after.total_p95_ms, " ms", lower_is_better=True),
        _delta("first delta p50", before.first_delta_p50_ms, after.first_delta_p50_ms, " ms", lower_is_better=True),
        _delta("tokens", before.tokens, after.tokens, "", lower_is_better=True),
        _delta("cost", before.cost, after.cost, "$", lower_is_better=True),
    ]


def comparison_view(
    baseline: ReportBaseline,
    summary: RunSummary,
    turns: Sequence[TurnRecord],
    anchors: Mapping[str, str],
) -> ComparisonView:
    """`turns` (summed up by `summary`) against `baseline`; `anchors` maps a turn's node id to its transcript
    element."""
    comparison = compare_runs(baseline.turns, turns)
    before_turns, after_turns = _first_by_key(baseline.turns), _first_by_key(turns)
    tests: list[ComparedTest] = []
    for change in comparison.changes:
        before, after = before_turns.get(change.key), after_turns.get(change.key)
        status_changed = before is not None and after is not None and before.status != after.status
        anchor = anchors.get(after.node_id, "") if after is not None else ""
        tests.append(ComparedTest(change, before, after, status_changed, anchor))
    tests.sort(key=lambda test: (CHANGE_ORDER[test.change.kind], not test.status_changed, test.change.key))
    return ComparisonView(
        baseline_run_id=baseline.run.run_id,
        metrics=_metrics(RunSummary.of(baseline.run, baseline.turns), summary),
        changed=[test for test in tests if test.changed],
        unchanged=[test for test in tests if not test.changed],
    )
