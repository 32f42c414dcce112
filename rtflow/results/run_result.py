"""What `rtflow.run()` returns: the run, its turn records in plan order, and their summary."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from rtflow.plan.graph import Plan
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.summary import ProviderSummary, RunSummary

__all__ = ["ProviderSummary", "RunResult"]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@dataclass(repr=False)
class RunResult:
    """The outcome of one run."""

    run: RunRecord
    turns: list[TurnRecord]
    """One record per turn that reached an end, in plan order (conversation by conversation)."""
    plan: Plan
    duration_s: float
    """How long this call took (monotonic); the run's own duration is `summary.duration_s`."""
    outputs_written: list[Path] = field(default_factory=list)
    """The flow's `outputs` files this run wrote."""

    def __repr__(self) -> str:
        # Short on purpose: asyncio formats the run's result into an error message when its runner closes,
        # and a repr of every record would cost seconds on a large run.
        counts = ", ".join(f"{status}={count}" for status, count in sorted(self.counts.items()))
        return f"RunResult(run_id={self.run_id!r}, status={self.run.status!r}, {counts or 'no turns'})"

    @property
    def run_id(self) -> str:
        return self.run.run_id

    @property
    def interrupted(self) -> bool:
        return self.run.status == "interrupted"

    @cached_property
    def summary(self) -> RunSummary:
        """Every count and figure of the run, as the CLI table, the report and the exports show them."""
        return RunSummary.of(self.run, self.turns, planned_turns=self.plan.counts.turns)

    @property
    def counts(self) -> Counter[str]:
        """Turns by status (those with none left out); turns the run never reached count as `not_run`."""
        return Counter(self.summary.status_counts())

    @property
    def passed(self) -> bool:
        """Whether every turn of the plan passed (or, for a turn with a `pass_rate`, passed often enough)."""
        return not self.interrupted and self.summary.accepted == self.summary.planned_turns

    @property
    def exit_code(self) -> int:
        """0 when every turn passed, 130 when interrupted, else 1."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_PASSED if self.passed else EXIT_FAILED

    @property
    def failures(self) -> list[TurnRecord]:
        """Turns that failed their assertions or could not be answered, in plan order; copies of a repeated turn
        that met its `pass_rate` are accepted, not failures (`RunSummary.failures`)."""
        return self.summary.failures(self.turns)

    @property
    def provider_summaries(self) -> list[ProviderSummary]:
        """Per primary provider: statuses, fallbacks, retries, tokens, cost and latency percentiles."""
        return list(self.summary.providers)
