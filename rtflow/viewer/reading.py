"""What the viewer reads from the run store, one request at a time.

The store is opened read-only for each request and closed after it: SQLite opens in well under a millisecond,
a fresh connection sees every turn the run's writer committed so far (the file is in WAL mode, so reading never
blocks that writer), and no connection is shared between the server's threads. A file that does not exist
is not created: it reads as `StoreMissing`, which the pages turn into a clear message.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from rtflow.errors import InvalidAddress, StoreMissing
from rtflow.results.records import RunRecord
from rtflow.results.report import ReportBaseline, render_html
from rtflow.results.store import RunStore
from rtflow.results.summary import RunSummary

__all__ = [
    "RunRow",
    "RunStatusView",
    "check_run_id",
    "compare_report",
    "compare_status",
    "resolve",
    "run_report",
    "run_rows",
    "run_status",
]

LATEST = "latest"
"""What names the newest run in an address, as on the command line."""

_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
"""Run ids are `20250101-120000-abc123`; this admits any id made of letters, digits, `.`, `_` and `-` (no `/`,
no leading dot), so nothing taken from an address can name a path or another kind of query."""


def check_run_id(run_id: str) -> str:
    """`run_id` when it could name a run (or is `latest`); `InvalidAddress` otherwise."""
    if not _RUN_ID.fullmatch(run_id):
        raise InvalidAddress(f"{run_id[:80]!r} is not a run id")
    return run_id


@contextmanager
def _store(db_path: Path) -> Iterator[RunStore]:
    if not db_path.is_file():
        raise StoreMissing(f"there is no run store at {db_path} yet: `rtflow run FLOW --db {db_path}` makes one")
    with RunStore(db_path, read_only=True) as store:
        yield store


@dataclass(frozen=True)
class RunRow:
    """One run of the runs list: its record and its summary (where every count comes from)."""

    run: RunRecord
    summary: RunSummary


def run_rows(db_path: Path, limit: int) -> list[RunRow]:
    """The newest `limit` runs, newest first, each with its summary."""
    with _store(db_path) as store:
        return [RunRow(run, store.summary(run.run_id)) for run in store.list_runs(limit)]


def resolve(db_path: Path, *run_ids: str) -> tuple[str, ...]:
    """The ids `run_ids` name (the newest run's for `latest`), from one opening of the store; `RunNotFoundError`
    when the store has one of them not."""
    with _store(db_path) as store:
        return tuple(store.get_run(check_run_id(run_id)).run_id for run_id in run_ids)


@dataclass(frozen=True)
class RunStatusView:
    """How far a run has got: what the live page polls to know when to show the report again."""

    run_id: str
    status: str
    ended: bool
    """Whether the run is over (finished, interrupted or crashed): nothing more will be stored."""
    turns: int
    """Turn records stored so far."""
    planned_turns: int

    def as_json(self) -> dict[str, object]:
        return {
            "run_id": self.run_id,
            "status": self.status,
            "ended": self.ended,
            "turns": self.turns,
            "planned_turns": self.planned_turns,
        }


def _status(store: RunStore, run: RunRecord) -> RunStatusView:
    """How far `run` has got. The live page asks every 1.5 s: the stored turns are counted, not read (the planned
    turns are `RunSummary.planned_turns`' rule: the run's total, or more when more are stored)."""
    stored = store.count_turns(run.run_id)
    return RunStatusView(
        run_id=run.run_id,
        status=run.status,
        ended=run.status != "running",
        turns=stored,
        planned_turns=max(run.total_turns, stored),
    )


def run_status(db_path: Path, run_id: str) -> RunStatusView:
    """Run `run_id`'s status and how many of its turns are stored."""
    with _store(db_path) as store:
        return _status(store, store.get_run(check_run_id(run_id)))


def compare_status(db_path: Path, baseline_id: str, run_id: str) -> RunStatusView:
    """Run `run_id`'s status, once both runs are known and are two runs (`InvalidAddress` for one run twice)."""
    with _store(db_path) as store:
        baseline = store.get_run(check_run_id(baseline_id))
        run = store.get_run(check_run_id(run_id))
        _check_two_runs(baseline, run)
        return _status(store, run)


def _check_two_runs(baseline: RunRecord, run: RunRecord) -> None:
    if baseline.run_id == run.run_id:
        raise InvalidAddress(f"run {run.run_id} cannot be compared with itself: pick another baseline run")


def run_report(db_path: Path, run_id: str) -> str:
    """Run `run_id`'s HTML report, the one `rtflow export RUN -o report.html` writes, from what is stored now."""
    with _store(db_path) as store:
        run = store.get_run(check_run_id(run_id))
        turns = store.turns(run.run_id)
    # Audio the report cannot embed is linked relative to this folder: the one the viewer was started in.
    return render_html(run, turns, Path.cwd())


def compare_report(db_path: Path, baseline_id: str, run_id: str) -> str:
    """Run `run_id`'s HTML report opening with its compare view against run `baseline_id`."""
    with _store(db_path) as store:
        baseline = store.get_run(check_run_id(baseline_id))
        run = store.get_run(check_run_id(run_id))
        _check_two_runs(baseline, run)
        baseline_turns = store.turns(baseline.run_id)
        turns = store.turns(run.run_id)
    return render_html(run, turns, Path.cwd(), baseline=ReportBaseline(baseline, baseline_turns))
