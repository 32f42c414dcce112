"""`tests: file://...`: promptfoo's external test files (CSV, JSON, JSONL, YAML, globs) load as inline tests do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import rtflow
from rtflow.errors import FlowLoadError
from rtflow.flow.test_files import assertion_from_string

HEAD = "providers: [openai:chat:gpt-4.1-mini]\nprompts: ['{{ question }}']\n"

CSV = """question,__expected1,__expected2,__description,__metadata:conversationId,__metric,__threshold
What is 2+2?,contains:2+2,"icontains-any: what , which",First turn,maths,accuracy,0.5
And times 3?,not-contains:Paris,,Second turn,maths,,
"Hello, there",Hello,,Alone,,,
"""


def _flow(folder: Path, tests: str) -> Path:
    path = folder / "flow.yaml"
    path.write_text(HEAD + f"tests: {tests}\n")
    return path


def test_a_csv_file_holds_promptfoos_columns(tmp_path: Path) -> None:
    (tmp_path / "tests.csv").write_text(CSV)
    flow = rtflow.load(_flow(tmp_path, "file://tests.csv"))
    first, second, alone = flow.tests
    assert first.vars == {"question": "What is 2+2?"} and first.description == "First turn"
    assert first.metadata == {"conversationId": "maths"} and first.threshold == 0.5
    assert [(a.type, a.value, a.metric) for a in first.assert_] == [
        ("contains", "2+2", "accuracy"),
        ("icontains-any", ["what", "which"], "accuracy"),
    ]
    assert [(a.type, a.value) for a in second.assert_] == [("not-contains", "Paris")]
    assert alone.vars == {"question": "Hello, there"} and [(a.type, a.value) for a in alone.assert_] == [
        ("equals", "Hello")
    ]
    plan = rtflow.compile(flow)
    assert sorted(len(c.turns) for c in plan.conversations.values()) == [1, 2]  # conversationId made a thread


def test_jsonl_yaml_json_globs_and_inline_tests_mix(tmp_path: Path) -> None:
    cases = tmp_path / "cases"
    cases.mkdir()
    (cases / "a.jsonl").write_text(
        "\n".join(json.dumps({"vars": {"question": f"q{i}"}, "metadata": {"conversationId": "t"}}) for i in range(3))
    )
    (cases / "b.yaml").write_text("- vars: {question: from yaml}\n- vars: {question: again}\n")
    (cases / "c.json").write_text(json.dumps({"vars": {"question": "from json"}}))
    flow = rtflow.load(
        _flow(
            tmp_path,
            "[{vars: {question: inline}}, 'file://cases/*.jsonl', 'file://cases/b.yaml', 'file://cases/c.json']",
        )
    )
    assert [t.vars["question"] for t in flow.tests] == ["inline", "q0", "q1", "q2", "from yaml", "again", "from json"]


def test_a_whole_run_from_a_csv_file(tmp_path: Path) -> None:
    (tmp_path / "tests.csv").write_text(
        "question,__expected,__metadata:conversationId\n"
        "What is 2+2?,icontains:2+2,maths\n"
        "And then?,icontains:then,maths\n"
    )
    result = rtflow.run(_flow(tmp_path, "file://tests.csv"), sim=True, db=tmp_path / "runs.db")
    assert result.passed and len(result.turns) == 2
    assert "(user messages: 2" in result.turns[1].output.text  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("name", "text", "where", "says"),
    [
        ("t.csv", "question,__prefix\nhi,x\n", "t.csv:1", "'__prefix'"),
        ("t.csv", "question,__expect\nhi,x\n", "t.csv:1", "unknown column '__expect'"),
        ("t.csv", "question\nhi,extra\n", "t.csv:2", "2 cells"),
        ("t.csv", "question,__threshold\nhi,high\n", "t.csv:2", "is not a number"),
        ("t.jsonl", '{"vars": {"question": "ok"}}\n{"vars": \n', "t.jsonl:2", "not valid JSON"),
        ("t.jsonl", '["a list"]\n', "t.jsonl:1", "must be a test object"),
        ("t.yaml", "- vars: {question: [unclosed\n", "t.yaml:", "YAML"),
        ("t.txt", "question\n", "t.txt", "unsupported test file type '.txt'"),
    ],
)
def test_a_bad_test_file_is_one_error_naming_the_file_and_row(
    tmp_path: Path, name: str, text: str, where: str, says: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(FlowLoadError) as refused:
        rtflow.load(_flow(tmp_path, f"file://{name}"))
    message = str(refused.value)
    assert "flow.yaml:3:1: tests:" in message and where in message and says in message, message


def test_a_problem_in_a_test_from_a_file_is_reported_at_its_row(tmp_path: Path) -> None:
    """An unsupported assertion written in row 3 of the CSV is reported at tests.csv:3, with its key."""
    (tmp_path / "tests.csv").write_text("question,__expected\nfine,contains:x\nbad,similar(0.9):close to this\n")
    with pytest.raises(FlowLoadError) as refused:
        rtflow.load(_flow(tmp_path, "file://tests.csv"))
    message = str(refused.value)
    assert message.startswith(f"{tmp_path / 'tests.csv'}:3:"), message
    assert "similar" in message and "assert" in message


def test_a_missing_test_file_or_empty_glob_is_named(tmp_path: Path) -> None:
    for reference, says in (("file://nope.csv", "no such test file"), ("file://none/*.jsonl", "matches no file")):
        with pytest.raises(FlowLoadError, match=says):
            rtflow.load(_flow(tmp_path, reference))


@pytest.mark.parametrize(
    ("cell", "assertion"),
    [
        ("Paris", {"type": "equals", "value": "Paris"}),
        ("contains:Paris", {"type": "contains", "value": "Paris"}),
        ("not-icontains:paris", {"type": "not-icontains", "value": "paris"}),
        ("contains-any:a, b ,c", {"type": "contains-any", "value": ["a", "b", "c"]}),
        ("similar(0.9):text", {"type": "similar", "value": "text", "threshold": 0.9}),
        ("similar:text", {"type": "similar", "value": "text", "threshold": 0.8}),
        ("latency:500", {"type": "latency", "value": "500"}),  # a bound: no score threshold of 0.75
        ("grade: is polite", {"type": "llm-rubric", "value": " is polite"}),
        ("llm-rubric:is polite", {"type": "llm-rubric", "value": "is polite"}),
        ("javascript: output.length > 3", {"type": "javascript", "value": "output.length > 3"}),
        ("fn:output === 'x'", {"type": "javascript", "value": "output === 'x'"}),
        ("python: len(output) > 3", {"type": "python", "value": "len(output) > 3"}),
        ("file://check.py", {"type": "python", "value": "file://check.py"}),
        ("file://check.js:run", {"type": "javascript", "value": "file://check.js:run"}),
        ("made-up:thing", {"type": "equals", "value": "made-up:thing"}),
        ("regex:^\\d+$", {"type": "regex", "value": "^\\d+$"}),
    ],
)
def test_assertions_from_csv_cells_read_as_promptfoo_reads_them(cell: str, assertion: dict[str, object]) -> None:
    assert assertion_from_string(cell) == assertion


def test_a_tests_whole_vars_may_be_a_file(tmp_path: Path) -> None:
    """`vars: file://vars.yaml` (or `.json`) on a test or on defaultTest, as promptfoo allows."""
    (tmp_path / "vars.yaml").write_text("question: from a file\ncity: Oslo\n")
    (tmp_path / "defaults.json").write_text(json.dumps({"tone": "brief"}))
    path = tmp_path / "flow.yaml"
    path.write_text(HEAD + "defaultTest: {vars: 'file://defaults.json'}\ntests:\n  - vars: file://vars.yaml\n")
    (test,) = rtflow.compile(rtflow.load(path)).conversations.values()
    assert test.turns[0].vars == {"tone": "brief", "question": "from a file", "city": "Oslo"}


def test_a_vars_file_that_is_not_a_mapping_is_named(tmp_path: Path) -> None:
    (tmp_path / "vars.yaml").write_text("- a list\n")
    path = tmp_path / "flow.yaml"
    path.write_text(HEAD + "tests:\n  - vars: file://vars.yaml\n")
    with pytest.raises(FlowLoadError) as refused:
        rtflow.load(path)
    assert (
        "flow.yaml:4:" in str(refused.value) and "vars.yaml" in str(refused.value) and "mapping" in str(refused.value)
    )


def test_a_quote_left_open_in_a_csv_file_is_an_error_not_a_test(tmp_path: Path) -> None:
    (tmp_path / "tests.csv").write_text('question,__expected\nHello?,contains:Hello\n"unclosed,x\n')
    with pytest.raises(FlowLoadError) as refused:
        rtflow.load(_flow(tmp_path, "file://tests.csv"))
    assert "tests.csv:" in str(refused.value) and "not valid CSV" in str(refused.value), str(refused.value)
