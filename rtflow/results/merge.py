"""Runs of parts of one flow put back together: the `--shard K/N` runs of a CI matrix become one run.

The merged run's turns are the parts' turns, each under the new run id; its report, exports and statistics are
then those of the whole suite. The parts must be of the same flow (by file name: CI jobs check it out in
different folders) and must not share a turn: a conversation that ran in two parts would be counted twice.
Shards of the same N must be distinct; a missing shard is not an error (a CI job may have failed), but it is
said, and the merged run is then a part of the suite.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import PurePath

from rtflow.errors import MergeError
from rtflow.results.records import RunRecord, TurnRecord, new_run_id

__all__ = ["MergeError", "MergedRun", "merge_runs"]

_STATUS_ORDER = ("crashed", "interrupted", "running", "finished")
"""A merged run ends as the least finished of its parts."""


class MergedRun:
    """The merged run, its turns, and what a person should know about it (a missing shard, ...)."""

    def __init__(self, run: RunRecord, turns: list[TurnRecord], notes: list[str]) -> None:
        self.run = run
        self.turns = turns
        self.notes = notes


def _flow_name(run: RunRecord) -> str | None:
    return PurePath(run.flow_path).name if run.flow_path else None


def _check_same_flow(parts: Sequence[tuple[RunRecord, list[TurnRecord]]]) -> None:
    first = parts[0][0]
    for run, _ in parts[1:]:
        if _flow_name(run) != _flow_name(first):
            raise MergeError(
                f"run {run.run_id} is of flow {_flow_name(run)!r} and run {first.run_id} of {_flow_name(first)!r}:"
                " only runs of the same flow merge into one"
            )


def _check_disjoint(parts: Sequence[tuple[RunRecord, list[TurnRecord]]]) -> None:
    ids = [run.run_id for run, _ in parts]
    twice = sorted({run_id for run_id in ids if ids.count(run_id) > 1})
    if twice:
        raise MergeError(f"run {twice[0]} is given twice: merged, its turns would count twice")
    owner: dict[str, str] = {}
    for run, turns in parts:
        for turn in turns:
            other = owner.setdefault(turn.node_id, run.run_id)
            if other != run.run_id:
                raise MergeError(
                    f"turn {turn.node_id} is in run {other} and in run {run.run_id}: merged, it would count twice"
                    " (merge the shards of one suite, each run once)"
                )


def _shard_notes(runs: Sequence[RunRecord]) -> list[str]:
    shards = [run.options.get("shard") for run in runs]
    if not any(shards):
        return []
    if not all(shards):
        return ["some of the runs are shards and some are not: the merged run holds whatever they ran"]
    parsed = [tuple(int(part) for part in str(shard).split("/")) for shard in shards]
    counts = {count for _, count in parsed}
    if len(counts) > 1:
        raise MergeError(f"the runs are shards of different splits ({', '.join(map(str, shards))}): merge one split")
    (count,) = counts
    seen: dict[int, str] = {}
    for run, (index, _) in zip(runs, parsed, strict=True):
        if index in seen:
            raise MergeError(f"runs {seen[index]} and {run.run_id} are both shard {index}/{count}")
        seen[index] = run.run_id
    missing = sorted(set(range(1, count + 1)) - set(seen))
    if missing:
        listed = ", ".join(f"{index}/{count}" for index in missing)
        return [f"shard {listed} is missing: the merged run is a part of the suite, not all of it"]
    return []


def merge_runs(parts: Sequence[tuple[RunRecord, list[TurnRecord]]], *, run_id: str | None = None) -> MergedRun:
    """One run made of `parts` (each a run's record and its turns), under `run_id` (a new id by default)."""
    if not parts:
        raise MergeError("no runs to merge")
    _check_same_flow(parts)
    _check_disjoint(parts)
    runs = [run for run, _ in parts]
    notes = _shard_notes(runs)
    if len({run.simulated for run in runs}) > 1:
        notes.append("some parts ran against the simulator and some against real endpoints")
    merged_id = run_id or new_run_id()
    ends = [run.ended_at for run in runs]
    first = runs[0]
    endpoints: dict[str, str] = {}
    for run in runs:
        endpoints.update(run.endpoints)
    merged = RunRecord(
        run_id=merged_id,
        flow_path=first.flow_path,
        description=first.description,
        started_at=min(run.started_at for run in runs),
        ended_at=None if None in ends else max(end for end in ends if end is not None),
        status=min((run.status for run in runs), key=_STATUS_ORDER.index),
        simulated=all(run.simulated for run in runs),
        endpoints=endpoints,
        options={**{k: v for k, v in first.options.items() if k != "shard"}, "merged_from": [r.run_id for r in runs]},
        total_turns=sum(run.total_turns for run in runs),
    )
    turns = [turn.model_copy(update={"run_id": merged_id}) for _, part in parts for turn in part]
    return MergedRun(merged, turns, notes)
