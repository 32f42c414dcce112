"""Run-level assertions (`latency` with `p`: a percentile over the run's turns), judged once every turn is in.

One function for the two places a whole run ends: a local scheduler's, and a Ray run's driver (whose workers
each see one batch only, too few turns for the run's percentile).
"""

from __future__ import annotations

from collections.abc import Mapping

from rtflow.flow.spec import AssertionSpec
from rtflow.messages import TurnOutput
from rtflow.plan.graph import Plan
from rtflow.results.assertions import run_percentile_results, turn_passed
from rtflow.results.records import TurnRecord

__all__ = ["judged_over_the_run"]


def judged_over_the_run(plan: Plan, records: Mapping[str, TurnRecord]) -> list[TurnRecord]:
    """The records whose run-level assertions got the run's verdict (their status follows), to store again.

    Each primary provider's turns are their own population: two models in one flow are not pooled. A turn's
    record carries a placeholder result for such an assertion until now.
    """
    by_provider: dict[str, list[tuple[str, list[AssertionSpec], TurnOutput | None]]] = {}
    thresholds: dict[str, float | None] = {}
    for conversation in plan.conversations.values():
        for turn_index, turn_spec in enumerate(conversation.turns):
            node_id = conversation.call_nodes[turn_index][0]
            record = records.get(node_id)
            if record is None or record.status not in ("passed", "failed") or not turn_spec.asserts:
                continue
            provider = node_id.split("/", 1)[0]
            by_provider.setdefault(provider, []).append((node_id, turn_spec.asserts, record.output))
            thresholds[node_id] = turn_spec.threshold
    judged: list[TurnRecord] = []
    for turns in by_provider.values():
        specs = {node_id: asserts for node_id, asserts, _ in turns}
        for node_id, placed in run_percentile_results(turns).items():
            record = records[node_id]
            results = list(record.assertions)
            offset = len(results) - len(specs[node_id])  # script-step results come first
            if offset < 0:
                continue  # a failed transform left one result for the whole turn: nothing to replace
            for position, result in placed:
                results[offset + position] = result
            status = "passed" if turn_passed(results, thresholds[node_id]) else "failed"
            judged.append(record.model_copy(update={"assertions": results, "status": status}))
    return judged
