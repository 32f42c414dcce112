"""The repeat statistics of a run's records: copies of a conversation grouped by its id, a copy passing when all
its turns passed, pending turns not yet runs; and the CLI table that shows them."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.repeats import repeat_figures
from rtflow.results.run_result import RunResult
from rtflow.runner.progress import print_summary


def _turn(conversation: str, index: int, status: str) -> TurnRecord:
    return TurnRecord(
        run_id="r",
        node_id=f"{conversation}/{index + 1}",
        conversation_id=conversation,
        thread_id=conversation.split("/", 1)[1].split("#")[0],
        turn_index=index,
        provider="p",
        provider_id="openai:chat:m",
        prompt="q",
        status=status,  # type: ignore[arg-type]
    )


def _records() -> list[TurnRecord]:
    records = []
    for copy, statuses in enumerate([("passed", "passed"), ("passed", "failed"), ("passed", "passed")], start=1):
        conversation = "p/t" if copy == 1 else f"p/t#{copy}"
        records.extend(_turn(conversation, index, status) for index, status in enumerate(statuses))
    records.append(_turn("p/once", 0, "passed"))  # not repeated: no figures
    records.append(_turn("p/t#4", 0, "pending"))  # not a run yet
    return records


def test_copies_are_grouped_and_a_copy_passes_when_all_its_turns_do() -> None:
    figures = {figure.key: figure for figure in repeat_figures(_records())}
    assert set(figures) == {"p/t", "p/t turn 1", "p/t turn 2"}
    conversation = figures["p/t"]
    assert (conversation.runs, conversation.passed, conversation.flaky) == (3, 2, True)
    assert conversation.pass_at_k == pytest.approx({1: 2 / 3, 2: 1.0, 3: 1.0})
    assert conversation.pass_hat_k == pytest.approx({1: 2 / 3, 2: 1 / 3, 3: 0.0})
    assert figures["p/t turn 1"].flaky is False and figures["p/t turn 1"].passed == 3
    assert figures["p/t turn 2"].flaky is True


def test_the_cli_lists_flaky_conversations_first() -> None:
    run = RunRecord(run_id="r", started_at=0.0, ended_at=1.0, total_turns=8)
    records = [record for record in _records() if record.status != "pending"]
    plan = SimpleNamespace(counts=SimpleNamespace(turns=len(records)))  # all the summary reads of a plan
    result = RunResult(run=run, turns=records, plan=plan, duration_s=1.0)  # type: ignore[arg-type]
    out = io.StringIO()
    print_summary(result, Console(file=out, width=120))
    text = out.getvalue()
    assert "repeats (conversations)" in text and "2/3" in text and "flaky" in text
