"""How often a test and a conversation pass when the run repeats them (`--repeat N`, `execution.repeat`).

A repeated conversation runs as copies (`realtime/japan_travel`, `realtime/japan_travel#2`, ...); a copy passes
when every turn of it passed. For each conversation, and each of its turns, the copies give N runs of which C
passed: the pass rate with its Wilson 95% interval, pass@k and pass^k for a few k up to N (the unbiased
estimators of `rtflow.results.statistics`), and whether it is flaky (it neither always passed nor always
failed). A turn or copy that never ran (not in the records) is not a run; one that ended in an error is a run
that did not pass.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, ConfigDict

from rtflow.results.records import TurnRecord
from rtflow.results.statistics import pass_at_k, pass_hat_k, wilson_interval

__all__ = ["RepeatFigures", "repeat_figures"]

_KS = (1, 2, 3, 5, 10)
"""The k of pass@k and pass^k that are reported (with N itself), those up to N."""


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


def _base(conversation_id: str) -> str:
    return conversation_id.split("#", 1)[0]


def _figures(key: str, kind: Literal["conversation", "turn"], outcomes: list[bool]) -> RepeatFigures:
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
        if len(by_copy) < 2:
            continue
        figures.append(
            _figures(base, "conversation", [all(t.status == "passed" for t in copy) for copy in by_copy.values()])
        )
        by_turn: dict[int, list[bool]] = {}
        for copy in by_copy.values():
            for turn in copy:
                by_turn.setdefault(turn.turn_index, []).append(turn.status == "passed")
        figures.extend(_figures(f"{base} turn {index + 1}", "turn", by_turn[index]) for index in sorted(by_turn))
    return tuple(figures)
