"""The one summary of a run: every count and figure that the CLI table, `rtflow runs` and `show`, the HTML report,
the JSON export and `RunResult` show, each defined here once.

`RunSummary.of(run, turns)` computes it from the run's final turn records (one per turn that reached an end, as
the store keeps them), and nothing else. Consumers format these figures; none counts anything itself.

Turn-taking figures (`TurnFigures.timing`, `TurnFigures.interrupted`) come from the turn-taking metrics a voice
turn records (`TurnMetrics`), each in milliseconds and over the answered turns that have it:

- `ttfb`: from the request to the first delta of any kind (text, transcript or audio);
- `ttfa`: from the request to the first audible audio the caller hears;
- `response_latency`: from the end of the caller's speech to the first audible audio (first delta for text);
- `yield`: after a barge-in, from the cut to the last audio delta the agent sent (0: none came after);
- `yield_done`: after a barge-in, from the cut to the cancelled response's `response.done`;
- `tool_silence`: per tool round, from when the tool's output was sent back (or the agent's audio before the
  call finished playing, if later) to the first audible audio after it; every round of every turn is one value,
  so its `count` is rounds, not turns;
- `agent_speaking`: how long the caller heard the agent speak (all of its audio, or up to the cut).

Each is summarised as `Percentiles` (p50, p90, p95 by nearest rank, and how many values they are taken over).
A metric that no turn has is left out of `timing`. A text answer has `ttfb` and `response_latency` too (both
its first delta, from the request); the others (`SPOKEN_METRICS`) come only with spoken answers or barge-ins.
`interrupted` counts the answers the caller cut short (`TurnOutput.interruption` set). `has_turn_taking` says
whether a set of turns has any of the spoken figures: the views show turn-taking only then, so a text-only run
looks as it did before these figures existed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rtflow.messages import TurnMetrics, TurnOutput
from rtflow.results.records import CallAttempt, RunRecord, TurnRecord, TurnStatus
from rtflow.results.repeats import RepeatFigures, repeat_figures, turn_key
from rtflow.results.statistics import percentile

__all__ = [
    "SPOKEN_METRICS",
    "STATUS_ORDER",
    "TURN_TAKING_METRICS",
    "Percentiles",
    "ProviderSummary",
    "RunSummary",
    "TurnFigures",
    "concurrency_profile",
    "in_worker_order",
    "primary_provider",
    "turn_taking_values",
    "workers_of",
]

STATUS_ORDER: tuple[TurnStatus, ...] = ("passed", "failed", "error", "skipped", "pending")
"""The turn statuses in the order every view lists them."""

TURN_TAKING_METRICS: tuple[str, ...] = (
    "ttfb",
    "ttfa",
    "response_latency",
    "yield",
    "yield_done",
    "tool_silence",
    "agent_speaking",
)
"""The keys of `TurnFigures.timing`, in the order every view lists them: each is the `TurnMetrics` field of the
same name with `_ms` (defined in the module's docstring)."""

SPOKEN_METRICS = frozenset({"ttfa", "yield", "yield_done", "tool_silence", "agent_speaking"})
"""The turn-taking metrics that only a spoken answer (or a barge-in) has; a text answer has the others too."""


def concurrency_profile(attempts: Sequence[CallAttempt]) -> list[tuple[float, int]]:
    """(time, attempts in flight from then on), at every start and end; ends sort before starts at equal times."""
    events = sorted([(a.started_at, 1) for a in attempts] + [(a.ended_at, -1) for a in attempts])
    profile: list[tuple[float, int]] = []
    in_flight = 0
    for moment, change in events:
        in_flight += change
        profile.append((moment, in_flight))
    return profile


def primary_provider(turn: TurnRecord) -> str:
    """The label of the first provider of the turn's chain, whoever answered it.

    A turn's `node_id` is its primary call node, so the primary's attempts carry that node id; a turn that no
    fallback touched names the primary itself. When the primary made no attempt (its prompt failed to render)
    the conversation id, which starts with the primary's label, says it (labels hold no `/`).
    """
    if not turn.is_fallback:
        return turn.provider
    for call in turn.calls:
        if call.node_id == turn.node_id:
            return call.provider
    return turn.conversation_id.split("/", 1)[0]


class Percentiles(BaseModel):
    """One turn-taking metric over a set of turns: nearest-rank percentiles (values some turn really had)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    p50: float
    """The median, in milliseconds."""
    p90: float
    """The 90th percentile, in milliseconds."""
    p95: float
    """The 95th percentile, in milliseconds."""
    count: int
    """How many values they are taken over: turns that have the metric (tool rounds for `tool_silence`)."""

    @classmethod
    def of(cls, values: Sequence[float]) -> Percentiles | None:
        """The percentiles of `values`; None when there are none, so a metric no turn has is left out."""
        p50, p90, p95 = (percentile(values, share) for share in (0.50, 0.90, 0.95))
        if p50 is None or p90 is None or p95 is None:
            return None
        return cls(p50=p50, p90=p90, p95=p95, count=len(values))


def turn_taking_values(metrics: TurnMetrics) -> dict[str, list[float]]:
    """One turn's turn-taking values, keyed and ordered as `TURN_TAKING_METRICS`, only the metrics it has: one
    value each, and one `tool_silence` value per tool round. The summary and a turn's own line both read it."""
    every: dict[str, list[float]] = {
        "ttfb": [] if metrics.ttfb_ms is None else [metrics.ttfb_ms],
        "ttfa": [] if metrics.ttfa_ms is None else [metrics.ttfa_ms],
        "response_latency": [] if metrics.response_latency_ms is None else [metrics.response_latency_ms],
        "yield": [] if metrics.yield_ms is None else [metrics.yield_ms],
        "yield_done": [] if metrics.yield_done_ms is None else [metrics.yield_done_ms],
        "tool_silence": list(metrics.tool_silence_ms),
        "agent_speaking": [] if metrics.agent_speaking_ms is None else [metrics.agent_speaking_ms],
    }
    return {name: every[name] for name in TURN_TAKING_METRICS if every[name]}


def _timing(outputs: Sequence[TurnOutput]) -> dict[str, Percentiles]:
    """The `TurnFigures.timing` of `outputs`: the metrics some turn has, in `TURN_TAKING_METRICS` order."""
    pooled: dict[str, list[float]] = {name: [] for name in TURN_TAKING_METRICS}
    for output in outputs:
        for name, values in turn_taking_values(output.metrics).items():
            pooled[name] += values
    timing: dict[str, Percentiles] = {}
    for name, values in pooled.items():
        figures = Percentiles.of(values)
        if figures is not None:
            timing[name] = figures
    return timing


def _is_fallback_answer(turn: TurnRecord) -> bool:
    # A turn whose whole chain failed is recorded under its last fallback (`is_fallback`) but has no answer.
    return turn.is_fallback and turn.output is not None


class TurnFigures(BaseModel):
    """The figures of a set of final turn records: a whole run's, or one provider's share of it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    turns: int
    """Turn records counted: one per turn that reached an end (never-run turns are `RunSummary.not_run`)."""
    passed: int
    """Turns answered whose assertions passed (or that had none)."""
    failed: int
    """Turns answered whose assertions did not pass."""
    error: int
    """Turns that no provider of the chain answered (every attempt of every provider failed)."""
    skipped: int
    """Turns not sent because an earlier turn of their conversation ended in `error`."""
    pending: int
    """Turns answered whose assertions have not been graded (yet, or ever: the run ended first)."""
    fallbacks: int
    """Turns whose final answer came from a provider other than the chain's primary. A turn whose whole chain
    failed is an `error`, not a fallback, even though its last attempt went to a fallback provider."""
    attempts: int
    """Call attempts made for these turns, on every provider of their chains (the records' `calls`; one bar
    each on the report's timeline). Grading calls are not counted."""
    failed_attempts: int
    """Call attempts that ended in an error, whether a retry, a fallback or nothing followed."""
    retries: int
    """Call attempts that repeated an attempt of the same provider for the same turn after it failed (attempt
    number 2 or more). Moving on to a fallback provider is a fallback, not a retry."""
    tokens: int
    """Total tokens of the answers (the answering provider's usage; failed attempts report none)."""
    cost: float | None
    """US dollars of the answers that have a price; None when no answer has one."""
    first_delta_p50_ms: float | None
    """Median time to the first text delta over answered turns (nearest rank, like every percentile here)."""
    first_delta_p95_ms: float | None
    """95th percentile time to the first text delta over answered turns."""
    first_delta_p99_ms: float | None
    """99th percentile time to the first text delta over answered turns."""
    total_p50_ms: float | None
    """Median total turn time over answered turns."""
    total_p95_ms: float | None
    """95th percentile total turn time over answered turns."""
    total_p99_ms: float | None
    """99th percentile total turn time over answered turns."""
    timing: dict[str, Percentiles] = Field(default_factory=dict)
    """Turn-taking metrics (keys from `TURN_TAKING_METRICS`, defined in the module's docstring) over the
    answered turns that have them; only the metrics some turn has are present (a text answer adds only `ttfb`
    and `response_latency`)."""
    interrupted: int = 0
    """Answers the caller cut short (barged in on): turns whose output has an `interruption`."""
    caller_errors: int = 0
    """Of the `error` turns, those a simulated caller caused (it fell out of its role): not the agent's fault."""

    @property
    def has_turn_taking(self) -> bool:
        """Whether these turns have spoken turn-taking figures (`SPOKEN_METRICS`) or a barge-in: what makes the
        views show turn-taking, since `ttfb` and `response_latency` alone are a text answer's first delta again."""
        return self.interrupted > 0 or not SPOKEN_METRICS.isdisjoint(self.timing)

    @classmethod
    def of_turns(cls, turns: Sequence[TurnRecord]) -> TurnFigures:
        """The figures of a part of a run (a report's column, a thread's turns): no run-wide ones."""
        return cls(**_figures(turns))

    def status_counts(self) -> dict[str, int]:
        """The statuses that some turn has, with their counts, in `STATUS_ORDER`."""
        counts = {status: getattr(self, status) for status in STATUS_ORDER}
        return {status: count for status, count in counts.items() if count}


def _met_pass_rates(repeats: Iterable[RepeatFigures]) -> set[str]:
    """The keys of the repeated turns whose `pass_rate` was met."""
    return {figure.key for figure in repeats if figure.kind == "turn" and figure.meets}


def _met_by_repeats(turn: TurnRecord, met: set[str]) -> bool:
    return bool(turn.pass_rate) and turn_key(turn) in met


class ProviderSummary(TurnFigures):
    """One primary provider's turns: those of the conversations whose chain starts with it, fallbacks included."""

    provider: str
    """The primary provider's label."""


class RunSummary(TurnFigures):
    """A whole run. Build it with `RunSummary.of`."""

    run_id: str
    planned_turns: int
    """Turns the run set out to run: the turn records plus `not_run`."""
    not_run: int
    """Planned turns that have no record (the run was interrupted or crashed before reaching them)."""
    pass_rate: float | None
    """`passed` / `planned_turns`; None when no turn was planned."""
    duration_s: float | None
    """Wall-clock seconds from the run's start to its end as the run record holds them (for a resumed run, from
    its first start); while it has not ended, from its first turn's start to its last turn's end."""
    peak_in_flight: int
    """The most call attempts that were in flight at one moment."""
    providers: tuple[ProviderSummary, ...]
    """One summary per primary provider, by label (the same order whichever order the turns come in)."""
    repeats: tuple[RepeatFigures, ...] = ()
    """With `--repeat`: each repeated conversation's pass rate, interval, pass@k, pass^k and flakiness, then its
    turns' (see `rtflow.results.repeats`)."""
    accepted: int = 0
    """Turns whose verdict is a pass: those that passed, and those that did not in a run but whose turn met its
    `pass_rate` across the repeats. The run passes when every planned turn is accepted."""
    unmet_pass_rates: int = 0
    """Turns (counted once, not per copy) whose `pass_rate` was not met."""
    workers: dict[str, int] = Field(default_factory=dict)
    """Turns each Ray worker ran (the records' `worker`), by worker name in order; empty for a run in one
    process."""

    @property
    def cost_per_pass(self) -> float | None:
        """US dollars per passing turn: what the run cost over the turns it passed (None without both)."""
        return self.cost / self.passed if self.cost is not None and self.passed else None

    @classmethod
    def of(cls, run: RunRecord, turns: Iterable[TurnRecord], *, planned_turns: int | None = None) -> RunSummary:
        """The summary of `run` from its final turn records. `planned_turns` defaults to the run's `total_turns`;
        pass the number of turns given when they are a part of the run on purpose (one thread's export)."""
        records = list(turns)
        planned = max(run.total_turns if planned_turns is None else planned_turns, len(records))
        by_provider: dict[str, list[TurnRecord]] = {}
        for turn in records:
            by_provider.setdefault(primary_provider(turn), []).append(turn)
        figures = _figures(records)
        repeats = repeat_figures(records)
        met = _met_pass_rates(repeats)
        return cls(
            **figures,
            run_id=run.run_id,
            planned_turns=planned,
            not_run=planned - len(records),
            pass_rate=figures["passed"] / planned if planned else None,
            duration_s=_duration(run, records),
            peak_in_flight=max(
                (count for _, count in concurrency_profile([call for turn in records for call in turn.calls])),
                default=0,
            ),
            providers=tuple(
                ProviderSummary(provider=provider, **_figures(provider_turns))
                for provider, provider_turns in sorted(by_provider.items())
            ),
            repeats=repeats,
            accepted=sum(1 for turn in records if turn.status == "passed" or _met_by_repeats(turn, met)),
            unmet_pass_rates=sum(1 for figure in repeats if figure.kind == "turn" and figure.meets is False),
            workers=_by_worker(records),
        )

    def accepted_by_repeats(self, turns: Iterable[TurnRecord]) -> set[str]:
        """The node ids of those of `turns` that failed or errored in their run but are accepted all the same:
        their turn met its `pass_rate` across the repeats (what the run's verdict and exit code go by). A skipped
        copy is not among them: it was not judged, so there is nothing to accept."""
        met = _met_pass_rates(self.repeats)
        return {turn.node_id for turn in turns if turn.status in ("failed", "error") and _met_by_repeats(turn, met)}

    def failures(self, turns: Sequence[TurnRecord]) -> list[TurnRecord]:
        """Those of `turns` that failed or errored and count against the run, in the order given: a copy whose
        turn met its `pass_rate` across the repeats is accepted (the repeats table shows it as flaky instead).
        The one list the terminal, `RunResult.failures` and the Markdown summary show."""
        accepted = self.accepted_by_repeats(turns)
        return [turn for turn in turns if turn.status in ("failed", "error") and turn.node_id not in accepted]

    def status_counts(self) -> dict[str, int]:
        """The statuses that some turn has, then `not_run` when some turns never ran, with their counts."""
        counts = super().status_counts()
        if self.not_run:
            counts["not_run"] = self.not_run
        return counts


def in_worker_order(counts: Mapping[str, int]) -> dict[str, int]:
    """Counts per Ray worker, workers in their numbers' order (`worker-2` before `worker-10`)."""
    return dict(sorted(counts.items(), key=lambda item: (len(item[0]), item[0])))


def workers_of(turns: Iterable[TurnRecord]) -> list[str]:
    """The Ray workers that ran these turns (a conversation's), in turn order: two when one died mid-way and
    another finished it; none for a run in one process."""
    return list(dict.fromkeys(turn.worker for turn in turns if turn.worker is not None))


def _by_worker(turns: Iterable[TurnRecord]) -> dict[str, int]:
    return in_worker_order(Counter(turn.worker for turn in turns if turn.worker is not None))


def _figures(turns: Sequence[TurnRecord]) -> dict[str, Any]:
    """Every `TurnFigures` field of `turns`: the one place each is counted."""
    statuses: dict[str, int] = dict.fromkeys(STATUS_ORDER, 0)
    for turn in turns:
        statuses[turn.status] += 1
    outputs = [turn.output for turn in turns if turn.output is not None]
    costs = [output.cost for output in outputs if output.cost is not None]
    calls = [call for turn in turns for call in turn.calls]
    first_delta = [o.metrics.first_delta_ms for o in outputs if o.metrics.first_delta_ms is not None]
    total = [o.metrics.total_ms for o in outputs if o.metrics.total_ms is not None]
    return {
        "turns": len(turns),
        **statuses,
        "fallbacks": sum(1 for turn in turns if _is_fallback_answer(turn)),
        "attempts": len(calls),
        "failed_attempts": sum(1 for call in calls if call.error is not None),
        "retries": sum(1 for call in calls if call.attempt > 1),
        "tokens": sum(output.usage.total_tokens for output in outputs),
        "cost": sum(costs) if costs else None,
        "first_delta_p50_ms": percentile(first_delta, 0.50),
        "first_delta_p95_ms": percentile(first_delta, 0.95),
        "first_delta_p99_ms": percentile(first_delta, 0.99),
        "total_p50_ms": percentile(total, 0.50),
        "total_p95_ms": percentile(total, 0.95),
        "total_p99_ms": percentile(total, 0.99),
        "timing": _timing(outputs),
        "interrupted": sum(1 for output in outputs if output.interruption is not None),
        "caller_errors": sum(1 for turn in turns if turn.error is not None and turn.error.kind == "caller"),
    }


def _duration(run: RunRecord, turns: Sequence[TurnRecord]) -> float | None:
    if run.ended_at is not None:
        return run.ended_at - run.started_at
    started = [turn.started_at for turn in turns if turn.started_at is not None]
    ended = [turn.ended_at for turn in turns if turn.ended_at is not None]
    return max(ended) - min(started) if started and ended else None
