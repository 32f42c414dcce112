"""JUnit XML and Markdown exports: a simulated run with passes, a failure, an error and a skipped turn reads back
with a JUnit parser as CI tools read it, and hostile model output never breaks either file."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import junitparser
import pytest
import xmlschema
import yaml
from click.testing import CliRunner
from results_samples import make_run, make_turns

from rtflow.cli import main
from rtflow.messages import TurnOutput
from rtflow.output_paths import export_format_problem
from rtflow.results.records import AssertionResult, TurnRecord
from rtflow.results.report import render_junit, render_markdown, write_export
from rtflow.results.report.junit import xml_safe

FLOW = {
    "providers": [{"id": "openai:realtime:gpt-realtime", "label": "realtime"}],
    "prompts": ["{{ question }}"],
    "threads": {
        "a": [
            {"question": "first", "assert": [{"type": "icontains", "value": "you said"}]},
            {
                "question": "second | piped",
                "description": "the a|b turn",
                "assert": [{"type": "icontains", "value": "kyoto"}, {"type": "icontains", "value": "osaka"}],
            },
        ],
        "b": [{"question": "boom now"}, {"question": "after the boom"}],
    },
}
"""Thread a: a pass, then a failure of two assertions; thread b: an error (the fault hits `boom`), then the
turn skipped after it."""


JUNIT_4 = xmlschema.XMLSchema(Path(__file__).with_name("junit-4.xsd"))
"""The JUnit 4 report schema CI tools follow (see the file's header)."""


def _invoke(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(arg) for arg in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """One simulated run written to `results.xml` by `rtflow run -o`, and to `summary.md` by `rtflow export`."""
    folder = tmp_path_factory.mktemp("ci")
    flow = folder / "flow.yaml"
    flow.write_text(yaml.safe_dump(FLOW))
    db, xml_path, md_path = folder / "r.db", folder / "results.xml", folder / "summary.md"
    code, stdout, stderr = _invoke(
        "run", flow, "--sim", "--sim-fault", "server_error;match=boom", "--db", db, "-o", xml_path, "--no-progress"
    )
    assert code == 1, stdout + stderr
    code, stdout, stderr = _invoke("export", "latest", "--db", db, "-o", md_path)
    assert code == 0, stdout + stderr
    return xml_path, md_path


def _cases(path: Path) -> dict[str, object]:
    suites = list(junitparser.JUnitXml.fromfile(str(path)))
    return {f"{case.classname} {case.name}": case for suite in suites for case in suite}


def test_junit_counts_per_provider_suite(exported: tuple[Path, Path]) -> None:
    """One suite per primary provider, with the summary's counts; the root adds them up."""
    xml = junitparser.JUnitXml.fromfile(str(exported[0]))
    suites = list(xml)
    assert [suite.name for suite in suites] == ["realtime"]
    (suite,) = suites
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (4, 1, 1, 1)
    assert len(list(suite)) == 4
    root = ET.parse(exported[0]).getroot()
    assert (root.tag, root.get("tests"), root.get("failures"), root.get("errors")) == ("testsuites", "4", "1", "1")


def test_junit_is_valid_against_the_junit_4_schema(exported: tuple[Path, Path]) -> None:
    """The export validates against the JUnit 4 schema; the same schema rejects what the export used to write
    (figures as a testcase's properties, a `skipped` count on the root), so the check can fail."""
    JUNIT_4.validate(str(exported[0]))
    root = ET.parse(exported[0]).getroot()
    case = root.find("testsuite/testcase")
    assert case is not None
    ET.SubElement(ET.SubElement(case, "properties"), "property", name="ttfb_ms", value="1")
    assert not JUNIT_4.is_valid(ET.tostring(root, encoding="unicode"))
    case.remove(case.find("properties"))  # type: ignore[arg-type]
    root.set("skipped", "1")
    assert not JUNIT_4.is_valid(ET.tostring(root, encoding="unicode"))


def test_junit_names_outcomes_and_properties(exported: tuple[Path, Path]) -> None:
    """Testcases are `<provider>.<thread>` / `turn N: ...`; the failure names the first failing assertion and
    lists all of them with the output; the error and the skip say why; a turn's figures end its output, the
    suite's are its properties."""
    cases = _cases(exported[0])
    assert sorted(cases) == [
        "realtime.a turn 1: first",
        "realtime.a turn 2: the a|b turn",
        "realtime.b turn 1: boom now",
        "realtime.b turn 2: after the boom",
    ]
    passed = cases["realtime.a turn 1: first"]
    assert passed.is_passed and passed.system_out.startswith("You said")
    *_, figures_line = passed.system_out.splitlines()
    label, _, pairs = figures_line.partition(": ")
    figures = dict(pair.split("=") for pair in pairs.split())
    assert label == "figures" and {"ttfb_ms", "total_ms", "cost"} <= set(figures)
    assert float(figures["total_ms"]) > 0
    (suite,) = junitparser.JUnitXml.fromfile(str(exported[0]))
    properties = {item.name: item.value for item in suite.properties()}
    assert properties["pass_rate"] == "0.25"
    assert {"first_delta_p50_ms", "total_p95_ms", "cost"} <= set(properties)

    (failure,) = cases["realtime.a turn 2: the a|b turn"].result
    assert isinstance(failure, junitparser.Failure)
    assert (failure.type, failure.message) == ("icontains", 'output does not contain "kyoto"')
    assert failure.text.index("kyoto") < failure.text.index("osaka") < failure.text.index("You said")

    (error,) = cases["realtime.b turn 1: boom now"].result
    assert isinstance(error, junitparser.Error)
    assert error.type == "server_error" and "server had an error" in error.message

    (skipped,) = cases["realtime.b turn 2: after the boom"].result
    assert isinstance(skipped, junitparser.Skipped)
    assert skipped.message.startswith("turn 1 failed")


def test_markdown_summary_has_the_tables_and_escapes_pipes(exported: tuple[Path, Path]) -> None:
    """Title with the run id and pass rate, the provider table, the failures with their reasons; a `|` in model
    output is escaped in table cells and cannot break the list."""
    text = exported[1].read_text(encoding="utf-8")
    assert text.startswith("# rtflow run ") and "25.0% passed" in text.splitlines()[0]
    assert "| provider | passed | failed | error | skipped | ttfd p50 | ttfd p95 |" in text
    assert "| realtime | 1 | 1 | 1 | 1 |" in text
    assert "**realtime/a/2** (failed): icontains: output does not contain" in text
    assert "**realtime/b/1** (error): server_error" in text
    assert "more (see" not in text


def _hostile_turn() -> TurnRecord:
    """A failed turn whose output and reason hold control characters, `]]>`, markup, quotes and pipes."""
    base = make_turns()[0]
    assert base.output is not None
    nasty = "bell\x07 nul\x00 esc\x1b[31m ]]> <tag a='1'> & \"q\" | pipe \ud800 \ufffe ok"
    return base.model_copy(
        update={
            "status": "failed",
            "description": "desc\x0b with | pipe",
            "output": TurnOutput(text=nasty, metrics=base.output.metrics),
            "assertions": [AssertionResult(type="equals", passed=False, score=0.0, reason=f"got {nasty}")],
        }
    )


def test_hostile_text_still_gives_well_formed_xml(tmp_path: Path) -> None:
    """Characters XML 1.0 forbids are replaced, the rest escaped: the file parses, with ElementTree and
    junitparser, and keeps the readable parts."""
    path = write_export(make_run(), [_hostile_turn()], tmp_path / "hostile.xml")
    JUNIT_4.validate(str(path))
    root = ET.parse(path).getroot()
    out = root.find("testsuite/testcase/system-out")
    assert out is not None and out.text is not None
    assert "]]> <tag a='1'> & \"q\" | pipe" in out.text and "\x00" not in out.text and "\x07" not in out.text
    ((case,),) = [list(suite) for suite in junitparser.JUnitXml.fromfile(str(path))]
    (failure,) = case.result
    assert failure.message.startswith("got bell\ufffd nul\ufffd")
    assert xml_safe("a\x00b\x1fc\td") == "a\ufffdb\ufffdc\td"


def test_hostile_text_stays_text_in_markdown() -> None:
    """Model output cannot inject HTML, break a table row or add lines to the summary."""
    text = render_markdown(make_run(), [_hostile_turn()])
    failure_lines = [line for line in text.splitlines() if "bell" in line]
    assert len(failure_lines) == 2  # the reason line and the output excerpt, each on one line
    assert all("<tag" not in line and "&lt;tag" in line and "\x00" not in line for line in failure_lines)


def test_markdown_lists_ten_failures_then_counts_the_rest() -> None:
    """Only the first ten failures are spelt out; the rest are counted with where to see them."""
    base = _hostile_turn()
    turns = [base.model_copy(update={"node_id": f"realtime/t/{i}", "conversation_id": f"c{i}"}) for i in range(13)]
    text = render_markdown(make_run(), turns)
    assert text.count("(failed):") == 10
    assert "… and 3 more (see `rtflow show run-20260101-0001`)" in text


def test_markdown_table_cells_escape_pipes() -> None:
    """A provider label is a table cell: its `|` is escaped (labels cannot hold one, so a render of the sample
    is checked through the repeats key instead, which carries the conversation id)."""
    base = make_turns()[0]
    turns = [
        base.model_copy(update={"conversation_id": f"real|time/a{suffix}", "status": status})
        for suffix, status in (("", "passed"), ("#2", "failed"), ("#3", "passed"))
    ]
    text = render_markdown(make_run(), turns)
    assert "## Repeats" in text
    rows = [line for line in text.splitlines() if line.startswith("| real\\|")]
    assert rows[0].startswith("| real\\|time/a | 2/3 |") and rows[0].endswith("| flaky |")
    assert len(rows) == 2 and rows[1].startswith("| real\\|time/a turn 1 | 2/3 |")
    assert all(len(re.split(r"(?<!\\)\|", row)) == 7 + 2 for row in rows)  # seven cells: the escaped pipe is text


def test_junit_names_are_stable_and_copies_distinct() -> None:
    """The same turn gives the same testcase name on every run; a repeated copy gets `[#k]`."""
    base = make_turns()[0]
    first = render_junit(make_run(), [base])
    again = render_junit(make_run(run_id="another"), [base.model_copy(update={"run_id": "another"})])
    name = ET.fromstring(first).find("testsuite/testcase")
    assert name is not None
    assert name.get("name") == ET.fromstring(again).find("testsuite/testcase").get("name")  # type: ignore[union-attr]
    copy = base.model_copy(update={"conversation_id": base.conversation_id + "#2"})
    copy_case = ET.fromstring(render_junit(make_run(), [copy])).find("testsuite/testcase")
    assert copy_case is not None and copy_case.get("name") == f"{name.get('name')} [#2]"


def test_xml_and_md_are_export_formats() -> None:
    """`.xml` and `.md` (and `.markdown`) are accepted; an unknown suffix's message names them."""
    assert export_format_problem("results.xml") is None and export_format_problem("summary.MD") is None
    assert export_format_problem("summary.markdown") is None
    assert export_format_problem("results.txt") == (
        "unknown export format '.txt'; use .json, .jsonl, .csv, .html, .xml, .md"
    )
