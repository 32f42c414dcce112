"""The run store between processes: a new file opened by several at once, and one claim per run."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from rtflow.errors import StoreError
from rtflow.results.store import SCHEMA_VERSION, RunStore

PARTIES = 4
ROUNDS = 8

WORKER = """
import json, os, sys, time
from pathlib import Path

from rtflow.errors import StoreError
from rtflow.results.records import RunRecord
from rtflow.results.store import RunStore

folder, action, me = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
parties, rounds = int(sys.argv[4]), int(sys.argv[5])


def barrier(name):
    (folder / f"{name}.{me}").touch()
    deadline = time.monotonic() + 20  # a party that failed never comes
    while len(list(folder.glob(f"{name}.*"))) < parties:
        if time.monotonic() > deadline:
            raise SystemExit(f"barrier {name} timed out")
        time.sleep(0.0005)


if action == "open":  # every party opens each new file at the same moment and records a run in it
    for round in range(rounds):
        barrier(f"open-{round}")
        with RunStore(folder / f"{round}.db") as store:
            store.start_run(RunRecord(run_id=me, started_at=time.time()))
elif action == "claim":  # every party claims the same run at the same moment
    with RunStore(folder / "claims.db") as store:
        for round in range(rounds):
            barrier(f"claim-{round}")
            claim = store.claim_run(f"run-{round}")
            try:
                claim.acquire()
                outcome = {"round": round, "pid": os.getpid(), "won": True}
            except StoreError as exc:
                outcome = {"round": round, "pid": os.getpid(), "won": False, "message": str(exc)}
            barrier(f"tried-{round}")  # the winner holds on until every party has tried
            claim.release()
            print(json.dumps(outcome), flush=True)
else:  # hold: claim one run and keep it until killed
    with RunStore(folder / "claims.db") as store, store.claim_run("held-run"):
        print("claimed", flush=True)
        time.sleep(600)
"""


def start_workers(folder: Path, action: str, parties: int = PARTIES, rounds: int = ROUNDS) -> list[str]:
    """Run `parties` worker processes doing `action` in lockstep; their stdout, once all exited 0."""
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(folder), action, f"w{index}", str(parties), str(rounds)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for index in range(parties)
    ]
    finished = [worker.communicate(timeout=90) for worker in workers]
    failures = [err for worker, (_out, err) in zip(workers, finished, strict=True) if worker.returncode != 0]
    assert not failures, "\n".join(failures)
    return [out for out, _err in finished]


def test_processes_creating_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """Four processes open each of eight new files at the same moment: none fails ("table runs already exists",
    "database is locked"), every file ends at the current schema holding all four runs."""
    start_workers(tmp_path, "open")
    for round in range(ROUNDS):
        raw = sqlite3.connect(tmp_path / f"{round}.db")
        try:
            assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
            assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            runs = {row[0] for row in raw.execute("SELECT run_id FROM runs")}
        finally:
            raw.close()
        assert runs == {f"w{index}" for index in range(PARTIES)}


def test_of_processes_claiming_one_run_at_once_exactly_one_wins(tmp_path: Path) -> None:
    """Four processes claim the same run at the same moment, eight times over: each time one wins and the
    others are refused with a message naming the run (and, once it has written it, the winner's pid)."""
    outcomes = [json.loads(line) for output in start_workers(tmp_path, "claim") for line in output.splitlines()]
    for round in range(ROUNDS):
        this_round = [outcome for outcome in outcomes if outcome["round"] == round]
        winners = [outcome["pid"] for outcome in this_round if outcome["won"]]
        assert len(this_round) == PARTIES and len(winners) == 1
        for loser in (outcome for outcome in this_round if not outcome["won"]):
            assert f"run run-{round} is being run by another process" in loser["message"]
            assert "(pid" not in loser["message"] or f"(pid {winners[0]}," in loser["message"]


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL")
def test_a_claim_names_the_holding_process_and_dies_with_it(tmp_path: Path) -> None:
    """While another process holds a run, claiming it fails naming that process's pid; once the holder is
    SIGKILLed (no clean-up at all) the run can be claimed at once."""
    holder = subprocess.Popen(
        [sys.executable, "-c", WORKER, str(tmp_path), "hold", "holder", "1", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "claimed\n", holder.stderr
        with RunStore(tmp_path / "claims.db") as store:
            with pytest.raises(StoreError) as caught:
                store.claim_run("held-run").acquire()
            assert "run held-run is being run by another process" in str(caught.value)
            assert f"(pid {holder.pid}, since " in str(caught.value)
            holder.send_signal(signal.SIGKILL)
            holder.communicate(timeout=30)
            with store.claim_run("held-run") as claim:
                assert claim.held
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.communicate(timeout=30)
