"""`rtflow run` prints the run's turn-taking figures under its summary table, and only when it has some."""

from __future__ import annotations

from pathlib import Path

import yaml
from click.testing import CliRunner

from rtflow.cli import main

QUESTION = "Tell me about the long and glorious history of the ancient city of Rome, from its founding on."


def _flow(folder: Path, *providers: dict[str, object], interrupt: bool) -> Path:
    """One thread of two turns; with `interrupt`, the caller cuts the first answer short after 300 ms heard."""
    second: dict[str, object] = {"question": "Sorry, just the short version please."}
    if interrupt:
        second["interrupt"] = {"after_ms": 300}
    document = {
        "providers": list(providers),
        "prompts": ["{{ question }}"],
        "threads": {"rome": [{"question": QUESTION}, second]},
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _run(flow: Path, db: Path) -> str:
    result = CliRunner().invoke(main, ["run", str(flow), "--sim", "--db", str(db)])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_a_voice_run_prints_turn_taking_percentiles(tmp_path: Path) -> None:
    """A simulated voice run with a barge-in: a `turn-taking, ms` table and the count of answers cut short."""
    voice = {"id": "openai:realtime:gpt-realtime", "label": "voice", "config": {"modalities": ["audio"]}}
    printed = _run(_flow(tmp_path, voice, interrupt=True), tmp_path / "r.db")
    lines = printed.splitlines()
    assert any(line.startswith("turn-taking, ms") for line in lines)
    assert any(line.split()[:1] == ["ttfa"] and len(line.split()) == 5 for line in lines)
    assert "1 answer cut short by the caller (barge-in)" in printed


def test_a_text_run_prints_no_turn_taking(tmp_path: Path) -> None:
    """Text answers have a ttfb and a response latency (their first delta) but nothing spoken: no table."""
    chat = {"id": "openai:chat:gpt-4.1-mini", "label": "chat"}
    realtime = {"id": "openai:realtime:gpt-realtime", "label": "realtime", "config": {"modalities": ["text"]}}
    printed = _run(_flow(tmp_path, chat, realtime, interrupt=False), tmp_path / "r.db")
    assert "turn-taking" not in printed and "cut short" not in printed
    assert "4 passed" in printed
