"""`rtflow runs`, `show` and `export` read the run store and report clearly when it cannot be read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from results_samples import HOSTILE_OUTPUT, RUN_ID, make_run, make_turns

from rtflow.cli import main
from rtflow.results.records import TurnRecord
from rtflow.results.store import RunStore


@pytest.fixture
def filled_db(tmp_path: Path) -> Path:
    """A run store holding the sample run and its turns."""
    db = tmp_path / "store" / "rtflow.db"
    with RunStore(db) as store:
        store.start_run(make_run())
        for turn in make_turns():
            store.save_turns([turn])
    return db


def test_runs_lists_runs_with_status_counts(filled_db: Path) -> None:
    """`rtflow runs` shows the run id, its flow and its passed/failed/error/skipped counts."""
    result = CliRunner(env={"COLUMNS": "200"}).invoke(main, ["runs", "--db", str(filled_db)])
    assert result.exit_code == 0, result.output
    row = next(line for line in result.output.splitlines() if RUN_ID in line)
    assert "flows/conversation.yaml" in row and "finished" in row
    assert row.split()[-4:] == ["2", "1", "1", "1"]


def test_runs_on_an_empty_store_says_so(tmp_path: Path) -> None:
    """An empty store lists no runs and says where it looked."""
    result = CliRunner().invoke(main, ["runs", "--db", str(tmp_path / "empty.db")])
    assert result.exit_code == 0
    assert "No runs in" in result.output


def test_show_prints_transcripts_and_verdicts_of_latest(filled_db: Path) -> None:
    """`rtflow show latest --thread T` prints that thread's turns, output verbatim (no markup), and verdicts."""
    result = CliRunner().invoke(
        main, ["show", "latest", "--db", str(filled_db), "--thread", "tech_thread"], terminal_width=200
    )
    assert result.exit_code == 0, result.output
    assert HOSTILE_OUTPUT in result.output
    assert "realtime/tech_thread" in result.output and "japan_travel" not in result.output
    assert "[failed]" in result.output and "✗ icontains" in result.output
    every = CliRunner().invoke(main, ["show", RUN_ID, "--db", str(filled_db)], terminal_width=200)
    assert "get_weather" in every.output and "(fallback)" in every.output
    assert "authentication: 401 Unauthorized" in every.output


def test_export_writes_the_format_its_suffix_names(filled_db: Path, tmp_path: Path) -> None:
    """`rtflow export RUN -o x.jsonl` writes the run's turns, readable back as records."""
    target = tmp_path / "out" / "run.jsonl"
    result = CliRunner().invoke(main, ["export", "latest", "--db", str(filled_db), "-o", str(target)])
    assert result.exit_code == 0, result.output
    turns = [TurnRecord.model_validate_json(line) for line in target.read_text().splitlines()]
    assert [turn.node_id for turn in turns] == sorted(turn.node_id for turn in make_turns())
    html = tmp_path / "out" / "report.html"
    assert CliRunner().invoke(main, ["export", RUN_ID, "--db", str(filled_db), "-o", str(html)]).exit_code == 0
    assert "Threads × providers" in html.read_text()
    document = tmp_path / "out" / "weather.json"
    CliRunner().invoke(main, ["export", RUN_ID, "--db", str(filled_db), "-o", str(document), "--thread", "weather"])
    assert [turn["thread_id"] for turn in json.loads(document.read_text())["turns"]] == ["weather", "weather"]


def test_store_and_format_errors_exit_with_a_message(filled_db: Path, tmp_path: Path) -> None:
    """A missing run (exit 2), a file that is not a database (exit 1) and an unknown suffix (exit 2): one clear line."""
    missing = CliRunner().invoke(main, ["show", "no-such-run", "--db", str(filled_db)])
    assert missing.exit_code == 2 and "no run 'no-such-run'" in missing.output
    bogus = tmp_path / "bogus.db"
    bogus.write_text("not sqlite at all\n" * 200)
    broken = CliRunner().invoke(main, ["runs", "--db", str(bogus)])
    assert broken.exit_code == 1 and str(bogus) in broken.output and "Traceback" not in broken.output
    wrong = CliRunner().invoke(main, ["export", RUN_ID, "--db", str(filled_db), "-o", str(tmp_path / "x.pdf")])
    assert wrong.exit_code == 2 and "unknown export format" in wrong.output
