"""How often a test and a conversation pass when the run repeats them (`--repeat N`, `execution.repeat`).

A repeated conversation runs as copies (`realtime/japan_travel`, `realtime/japan_travel#2`, ...); a copy passes
when every turn of it passed. For each conversation, and each of its turns, the copies give N runs of which C
passed: the pass rate with its Wilson 95% interval, pass@k and pass^k for a few k up to N (the unbiased
estimators of `rtflow.results.statistics`), and whether it is flaky (it neither always passed nor always
failed). A turn or copy that never ran (not in the records) is not a run; one that ended in an error is a run
that did not pass.

A turn the flow gives a `pass_rate` is judged across its runs: it `meets` the requirement when its pass rate
(or, with `confident`, its interval's lower bound) reaches the minimum; such a turn gets figures even when it
ran once. A conversation meets its requirements when each of its turns does (a turn without one must always
have passed).

Each repeated conversation also gets the spread of its copies' latency (the sum of its answered turns' total
times) and cost: the median and the 95th percentile (nearest rank), each with a seeded bootstrap 95% interval.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rtflow.messages import PassRate
from rtflow.results.records import TurnRecord
from rtflow.results.statistics import (
    bootstrap_percentiles,
    pass_at_k,
    pass_hat_k,
    wilson_interval,
)

__all__ = ["RepeatFigures", "Spread", "repeat_figures", "turn_key"]

_KS = (1, 2, 3, 5, 10)
"""The k of pass@k and pass^k that are reported (with N itself), those up to N."""


class Spread(BaseModel):
    """A figure over a conversation's copies: its median and 95th percentile, each with a bootstrap interval."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50: float
    p50_low: float
    p50_high: float
    p95: float
    p95_low: float
    p95_high: float
    count: int
    """Copies the figure is taken over (those that have it)."""

    @classmethod
    def of(cls, values: list[float]) -> Spread | None:
        if len(values) < 2:
            return None
        median, tail = bootstrap_percentiles(values, (0.50, 0.95))
        return cls(
            p50=median.estimate,
            p50_low=median.low,
            p50_high=median.high,
            p95=tail.estimate,
            p95_low=tail.low,
            p95_high=tail.high,
            count=len(values),
        )


class RepeatFigures(BaseModel):
    """One repeated conversation's (or turn's) pass statistics."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    """The conversation id without its copy number (`realtime/japan_travel`), plus ` turn N` for a turn."""
    kind: Literal["conversation", "turn"]
    runs: int
    passed: int
    pass_rate: float
    low: float
    """The Wilson 95% interval's lower bound."""
    high: float
    pass_at_k: dict[int, float]
    """k -> the chance that at least one of k runs passes."""
    pass_hat_k: dict[int, float]
    """k -> the chance that all of k runs pass."""
    flaky: bool
    """It passed in some runs and not in others."""
    required: PassRate | None = None
    """The turn's `pass_rate` from the flow, if it has one."""
    meets: bool | None = None
    """Whether the requirement is met (a conversation: whether each of its turns met theirs); None without one."""
    latency_ms: Spread | None = None
    """A conversation's: its copies' answer time (the sum of their answered turns' total times)."""
    cost: Spread | None = None
    """A conversation's: its copies' cost in US dollars (copies whose answers have a price)."""

    @property
    def requirement(self) -> str:
        """The `pass_rate` verdict in words (`>= 80%: met`, `lower bound >= 65%: not met`); empty without one."""
        if self.meets is None:
            return ""
        verdict = "met" if self.meets else "not met"
        if self.required is None:  # a conversation: its turns' requirements
            return f"turns' pass rates: {verdict}"
        bound = "lower bound " if self.required.confident else ""
        return f"{bound}>= {self.required.min:.0%}: {verdict}"


def _base(conversation_id: str) -> str:
    return conversation_id.split("#", 1)[0]


def _turn_key(base: str, turn_index: int) -> str:
    return f"{base} turn {turn_index + 1}"


def turn_key(turn: TurnRecord) -> str:
    """The key of a turn's figures: the same for every copy of it (`realtime/japan_travel turn 2`)."""
    return _turn_key(_base(turn.conversation_id), turn.turn_index)


def _meets(required: PassRate | None, passed: int, runs: int, low: float) -> bool | None:
    if required is None:
        return None
    return (low if required.confident else passed / runs) >= required.min


def _figures(
    key: str,
    kind: Literal["conversation", "turn"],
    outcomes: list[bool],
    required: PassRate | None = None,
    meets: bool | None = None,
) -> RepeatFigures:
    runs, passed = len(outcomes), sum(outcomes)
    interval = wilson_interval(passed, runs)
    ks = sorted({k for k in _KS if k <= runs} | {runs})
    return RepeatFigures(
        key=key,
        kind=kind,
        runs=runs,
        passed=passed,
        pass_rate=passed / runs,
        low=interval.low,
        high=interval.high,
        pass_at_k={k: pass_at_k(runs, passed, k) for k in ks},
        pass_hat_k={k: pass_hat_k(runs, passed, k) for k in ks},
        flaky=0 < passed < runs,
        required=required,
        meets=_meets(required, passed, runs, interval.low) if kind == "turn" else meets,
    )


def repeat_figures(turns: Iterable[TurnRecord]) -> tuple[RepeatFigures, ...]:
    """The figures of every conversation run more than once, then of each of its turns (empty without repeats).

    Only final records count (`passed`, `failed`, `error`, `skipped`); a pending turn is not a run yet."""
    copies: dict[str, dict[str, list[TurnRecord]]] = {}
    for turn in turns:
        if turn.status == "pending":
            continue
        copies.setdefault(_base(turn.conversation_id), {}).setdefault(turn.conversation_id, []).append(turn)
    figures: list[RepeatFigures] = []
    for base, by_copy in sorted(copies.items()):
        by_turn: dict[int, list[TurnRecord]] = {}
        for copy in by_copy.values():
            for turn in copy:
                by_turn.setdefault(turn.turn_index, []).append(turn)
        required = {index: next((t.pass_rate for t in runs if t.pass_rate), None) for index, runs in by_turn.items()}
        if len(by_copy) < 2 and not any(required.values()):
            continue
        turn_figures = [
            _figures(_turn_key(base, index), "turn", [t.status == "passed" for t in by_turn[index]], required[index])
            for index in sorted(by_turn)
        ]
        conversation_meets = (
            all(f.meets if f.required is not None else f.passed == f.runs for f in turn_figures)
            if any(required.values())
            else None
        )
        outcomes = [all(t.status == "passed" for t in copy) for copy in by_copy.values()]
        figure = _figures(base, "conversation", outcomes, meets=conversation_meets)
        figures.append(figure.model_copy(update=_spreads(list(by_copy.values()))))
        figures.extend(turn_figures)
    return tuple(figures)


def _spreads(copies: list[list[TurnRecord]]) -> dict[str, Spread | None]:
    latencies: list[float] = []
    costs: list[float] = []
    for copy in copies:
        outputs = [turn.output for turn in copy if turn.output is not None]
        times = [output.metrics.total_ms for output in outputs if output.metrics.total_ms is not None]
        if times:
            latencies.append(sum(times))
        prices = [output.cost for output in outputs if output.cost is not None]
        if prices:
            costs.append(sum(prices))
    return {"latency_ms": Spread.of(latencies), "cost": Spread.of(costs)}
