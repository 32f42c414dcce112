"""Two runs of the same flow, test by test: what got worse, what got better, and whether it is more than chance.

Tests match across runs by a stable key, not by position: the provider, the prompt, the thread (unless it is a
`test-N` thread, named by its place in the file), the turn number, and the turn's description, or else its vars (a
var holding an absolute file path, such as an audio clip's, by the file's name: the same suite run from another
folder matches itself). So a reordered file matches itself. With `--repeat`, every copy of a test counts: a key has
N runs of which C passed in each run.

Pass rates are compared with Fisher's exact test (`rtflow.results.statistics`), which small counts need; a change
is significant at p < 0.05. A **regression** is a significant drop in a key's pass rate, or a key that always
passed before and now fails in every run (with one run each, no test can tell chance from change, so a plain
pass -> fail is reported as newly failing, and counted as a regression only with `strict`). Latency (total turn
time) is compared with the Mann-Whitney U test where both runs have at least 3 timings; it is reported, never a
regression by itself.
"""

from __future__ import annotations

import json
import re
import statistics
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import PurePath, PureWindowsPath
from typing import Literal

from rtflow.errors import FlowError
from rtflow.results.records import TurnRecord
from rtflow.results.statistics import fisher_exact, mann_whitney_u
from rtflow.results.summary import primary_provider

__all__ = ["CHANGE_ORDER", "Change", "Comparison", "compare_runs", "test_key"]

SIGNIFICANCE = 0.05
_POSITIONAL_THREAD = re.compile(r"^test-\d+$")


def test_key(turn: TurnRecord) -> str:
    """The key a turn is matched by across runs (see the module docstring)."""
    thread = "" if _POSITIONAL_THREAD.match(turn.thread_id) else turn.thread_id
    said = turn.description or json.dumps(
        {name: _portable(value) for name, value in turn.vars.items()}, sort_keys=True, default=str, ensure_ascii=False
    )
    return f"{primary_provider(turn)}/{turn.prompt}/{thread}/turn {turn.turn_index + 1}: {said}"


def _portable(value: object) -> object:
    """An absolute file path as its file's name; any other value as it is."""
    if isinstance(value, str):
        path = value.removeprefix("file://")
        if PurePath(path).is_absolute() or PureWindowsPath(path).is_absolute():
            return PurePath(path).name
    return value


test_key.__test__ = False  # type: ignore[attr-defined]  # a function, not a pytest test, whatever its name says


@dataclass
class _Tally:
    runs: int = 0
    passed: int = 0
    times: list[float] = field(default_factory=list)

    def add(self, turn: TurnRecord) -> None:
        self.runs += 1
        self.passed += turn.status == "passed"
        if turn.output is not None and turn.output.metrics.total_ms is not None:
            self.times.append(turn.output.metrics.total_ms)

    @property
    def rate(self) -> float:
        return self.passed / self.runs if self.runs else 0.0


@dataclass(frozen=True)
class Change:
    """One key's comparison."""

    key: str
    kind: Literal["regression", "improvement", "newly failing", "newly passing", "same", "new", "gone"]
    before: tuple[int, int]
    """(passed, runs) in the baseline."""
    after: tuple[int, int]
    """(passed, runs) in the run compared."""
    p_value: float | None
    """Fisher's exact test of the two pass rates (None when a side has no runs)."""
    latency_ms: tuple[float, float] | None = None
    """Median total turn time (before, after), when both sides have timings."""
    latency_p_value: float | None = None
    """Mann-Whitney U test of the timings, when both sides have at least 3."""


@dataclass(frozen=True)
class Comparison:
    """Every key's change, and what a CI gate needs to know."""

    changes: tuple[Change, ...]

    @property
    def compared(self) -> int:
        """How many tests both runs have (the rest are new or gone): 0 means there was nothing to compare."""
        return len(self.changes) - len(self.of_kind("new", "gone"))

    def of_kind(self, *kinds: str) -> list[Change]:
        return [change for change in self.changes if change.kind in kinds]

    def regressions(self, *, strict: bool = False) -> list[Change]:
        """Significant drops (and, with `strict`, every newly failing key)."""
        return self.of_kind("regression", "newly failing") if strict else self.of_kind("regression")

    def gate(self, baseline_id: str, run_id: str, *, strict: bool = False) -> bool:
        """The verdict of a CI gate (`rtflow diff`, `rtflow run --fail-on regression`): whether RUN regressed. Two
        runs that share no test (another flow's baseline) are an error: a gate with nothing to judge must not pass."""
        if not self.compared:
            raise FlowError(
                f"the baseline {baseline_id} shares no test with {run_id}: nothing to compare (another flow?)"
            )
        return bool(self.regressions(strict=strict))


def _tallies(turns: Iterable[TurnRecord]) -> dict[str, _Tally]:
    tallies: dict[str, _Tally] = {}
    for turn in turns:
        if turn.status in ("passed", "failed", "error"):
            tallies.setdefault(test_key(turn), _Tally()).add(turn)
    return tallies


def _change(key: str, before: _Tally | None, after: _Tally | None) -> Change:
    if before is None:
        assert after is not None
        return Change(key, "new", (0, 0), (after.passed, after.runs), None)
    if after is None:
        return Change(key, "gone", (before.passed, before.runs), (0, 0), None)
    p_value = fisher_exact(before.passed, before.runs, after.passed, after.runs)
    if p_value < SIGNIFICANCE:
        kind: str = "regression" if after.rate < before.rate else "improvement"
    elif before.passed == before.runs and after.passed == 0:
        kind = "newly failing"
    elif before.passed == 0 and after.passed == after.runs:
        kind = "newly passing"
    else:
        kind = "same"
    latency = latency_p = None
    if before.times and after.times:
        latency = (statistics.median(before.times), statistics.median(after.times))
        if len(before.times) >= 3 and len(after.times) >= 3:
            latency_p = mann_whitney_u(before.times, after.times)[1]
    return Change(
        key,
        kind,  # type: ignore[arg-type]
        (before.passed, before.runs),
        (after.passed, after.runs),
        p_value,
        latency,
        latency_p,
    )


CHANGE_ORDER = {
    kind: rank
    for rank, kind in enumerate(["regression", "newly failing", "improvement", "newly passing", "new", "gone", "same"])
}
"""The order changes are shown in, wherever they are shown: what a reviewer must act on first."""


def compare_runs(baseline: Iterable[TurnRecord], current: Iterable[TurnRecord]) -> Comparison:
    """How `current` differs from `baseline`, key by key (regressions first)."""
    before, after = _tallies(baseline), _tallies(current)
    changes = [_change(key, before.get(key), after.get(key)) for key in sorted(before.keys() | after.keys())]
    return Comparison(tuple(sorted(changes, key=lambda change: (CHANGE_ORDER[change.kind], change.key))))
