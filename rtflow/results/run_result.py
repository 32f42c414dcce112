"""What `rtflow.run()` returns: the run, its turn records in plan order, and summaries of them."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass

from rtflow.plan.graph import Plan
from rtflow.results.records import RunRecord, TurnRecord

__all__ = ["ProviderSummary", "RunResult"]

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


def _percentile(values: list[float], fraction: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(fraction * 100) - 1]


@dataclass(frozen=True)
class ProviderSummary:
    """One row of the end-of-run table: how the turns answered by (or assigned to) one provider went."""

    provider: str
    passed: int
    failed: int
    error: int
    skipped: int
    pending: int
    fallbacks: int
    """Turns of this provider's conversations that a fallback answered (not those it failed too)."""
    tokens: int
    cost: float | None
    first_delta_p50_ms: float | None
    first_delta_p95_ms: float | None
    total_p50_ms: float | None
    total_p95_ms: float | None


@dataclass(repr=False)
class RunResult:
    """The outcome of one run."""

    run: RunRecord
    turns: list[TurnRecord]
    """One record per turn that reached an end, in plan order (conversation by conversation)."""
    plan: Plan
    duration_s: float

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

    @property
    def counts(self) -> Counter[str]:
        """Turns by status; turns the run never reached count as `not_run`."""
        counts: Counter[str] = Counter(turn.status for turn in self.turns)
        missing = self.plan.counts.turns - len(self.turns)
        if missing:
            counts["not_run"] = missing
        return counts

    @property
    def passed(self) -> bool:
        """Whether every turn of the plan passed."""
        return not self.interrupted and self.counts.get("passed", 0) == self.plan.counts.turns

    @property
    def exit_code(self) -> int:
        """0 when every turn passed, 130 when interrupted, else 1."""
        if self.interrupted:
            return EXIT_INTERRUPTED
        return EXIT_PASSED if self.passed else EXIT_FAILED

    def failures(self) -> list[TurnRecord]:
        """Turns that failed their assertions or could not be answered, in plan order."""
        return [turn for turn in self.turns if turn.status in ("failed", "error")]

    def provider_summaries(self) -> list[ProviderSummary]:
        """Per primary provider: statuses, fallbacks used, tokens, cost and latency percentiles."""
        by_provider: dict[str, list[TurnRecord]] = {}
        for turn in self.turns:
            primary = self.plan.conversations[turn.conversation_id].provider_label
            by_provider.setdefault(primary, []).append(turn)
        rows = []
        for provider, turns in by_provider.items():
            statuses = Counter(turn.status for turn in turns)
            outputs = [turn.output for turn in turns if turn.output is not None]
            costs = [output.cost for output in outputs if output.cost is not None]
            first_delta = sorted(o.metrics.first_delta_ms for o in outputs if o.metrics.first_delta_ms is not None)
            total = sorted(o.metrics.total_ms for o in outputs if o.metrics.total_ms is not None)
            rows.append(
                ProviderSummary(
                    provider=provider,
                    passed=statuses["passed"],
                    failed=statuses["failed"],
                    error=statuses["error"],
                    skipped=statuses["skipped"],
                    pending=statuses["pending"],
                    fallbacks=sum(1 for turn in turns if turn.is_fallback and turn.output is not None),
                    tokens=sum(output.usage.total_tokens for output in outputs),
                    cost=sum(costs) if costs else None,
                    first_delta_p50_ms=_percentile(first_delta, 0.5),
                    first_delta_p95_ms=_percentile(first_delta, 0.95),
                    total_p50_ms=_percentile(total, 0.5),
                    total_p95_ms=_percentile(total, 0.95),
                )
            )
        return rows
