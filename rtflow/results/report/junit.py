"""The JUnit XML export (`-o results.xml`): a run as CI systems read test results (GitLab, Jenkins, GitHub
test reporters, Azure DevOps).

One `<testsuite>` per primary provider (the `ProviderSummary` of `RunSummary`, so the counts are the summary's),
one `<testcase>` per turn record. A testcase's name is built from what the flow says (the turn's number and its
description or user text), never from timings or ids that change, so CI tools can follow a test across runs.

A `failed` turn is a `<failure>`, an `error` turn an `<error>`, a `skipped` turn (and a `pending` one, never
graded) is `<skipped>`. Turns a run never reached (an interrupted run) have no record and so no testcase: the
counts are those of the testcases, and the run's exit code says it was interrupted. With `--repeat`, a copy that
failed or errored while its turn met its `pass_rate` across the repeats is written as a pass, its output saying
why: the file agrees with the run's verdict and exit code, so CI does not go red on a turn the flow accepts.

The file is valid against the JUnit 4 schema (`junit-4.xsd`, as Jenkins' tools publish it; the tests check
against a transcription of it). That schema has `<properties>` on a suite only, never on a testcase, and no
`skipped` count on the root, so each suite's properties hold its figures (pass rate, percentiles, cost), and a
testcase's figures end the model's output in its `<system-out>`, as a last line `figures: ttfb_ms=412
total_ms=980 cost=0.0021` that a script can read back.

Everything is built with `xml.etree.ElementTree`, which escapes `<`, `&`, quotes and `]]>`; what it does not
handle is a character XML 1.0 forbids (most control characters, lone surrogates): those are replaced by U+FFFD
in every text and attribute (`xml_safe`), so a model's output can never make the file unreadable.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.repeats import RepeatFigures, turn_key
from rtflow.results.report.atomic import atomic_text_file
from rtflow.results.report.data import turn_input_text
from rtflow.results.summary import ProviderSummary, RunSummary, primary_provider
from rtflow.results.verdicts import assertion_reason, failure_reasons

__all__ = ["render_junit", "testcase_name", "write_junit", "xml_safe"]

_NAME_CHARS = 60
"""How much of the user's text names a turn that has no description."""

_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
"""Characters XML 1.0 does not allow anywhere, not even escaped."""


def xml_safe(text: str) -> str:
    """`text` with every character XML 1.0 forbids replaced by U+FFFD: ElementTree would write them as they are
    and leave a file no parser reads. Replaced rather than dropped so a reader sees something was there."""
    return _NOT_XML.sub("\ufffd", text)


def _safe_attributes(attributes: dict[str, str]) -> dict[str, str]:
    return {name: xml_safe(value) for name, value in attributes.items()}


def _element(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
    """A child of `parent` whose text and attributes are all `xml_safe`: the one way elements are made here."""
    child = ET.SubElement(parent, tag, _safe_attributes(attributes))
    if text is not None:
        child.text = xml_safe(text)
    return child


def _seconds(value: float | None) -> str:
    return f"{max(value or 0.0, 0.0):.3f}"


def _user_text(turn: TurnRecord) -> str:
    """What the user said; for a turn never sent (skipped), its text variables, which is the same text for the
    usual `{{ question }}` prompt, so the testcase keeps its name whether the turn ran or not."""
    return turn_input_text(turn) or " ".join(value for value in turn.vars.values() if isinstance(value, str))


def testcase_name(turn: TurnRecord) -> str:
    """`turn N: <description or the first 60 characters of the user's text>`, on one line; a repeated
    conversation's copies add `[#k]` so that each copy's testcase keeps a name of its own."""
    label = turn.description or " ".join(_user_text(turn).split())[:_NAME_CHARS]
    name = " ".join(f"turn {turn.turn_index + 1}: {label}".split())
    _, copy_mark, copy = turn.conversation_id.partition("#")
    return f"{name} [#{copy}]" if copy_mark else name


def _classname(turn: TurnRecord) -> str:
    return f"{primary_provider(turn)}.{turn.thread_id}"


def turn_seconds(turn: TurnRecord) -> float:
    """How long the turn took: from its start to its end as recorded, else its answer's total time."""
    if turn.started_at is not None and turn.ended_at is not None:
        return max(turn.ended_at - turn.started_at, 0.0)
    total_ms = turn.output.metrics.total_ms if turn.output is not None else None
    return (total_ms or 0.0) / 1000


def _figures_line(turn: TurnRecord) -> str | None:
    """`figures: ttfb_ms=412 ttfa_ms=630 total_ms=980 cost=0.0021`, with only the figures the turn has."""
    if turn.output is None:
        return None
    metrics = turn.output.metrics
    values = {
        "ttfb_ms": metrics.ttfb_ms,
        "ttfa_ms": metrics.ttfa_ms,
        "total_ms": metrics.total_ms,
        "cost": turn.output.cost,
    }
    figures = [f"{name}={value:g}" for name, value in values.items() if value is not None]
    return "figures: " + " ".join(figures) if figures else None


def _system_out(turn: TurnRecord, accepted: RepeatFigures | None) -> str | None:
    """What the model said, then the turn's figures on a line of their own; for a copy accepted by its turn's
    pass rate, first why it is a pass."""
    lines = []
    if accepted is not None:
        reason = failure_reasons(turn)[0]  # an accepted copy failed or errored: it has a reason
        lines += [
            f"accepted: this run {turn.status} ({reason}), but the turn passed {accepted.passed} of "
            f"{accepted.runs} runs ({accepted.requirement})",
            "",
        ]
    if turn.output is not None:
        lines.append(turn.output.text)
        figures = _figures_line(turn)
        if figures is not None:
            lines += ["", figures]
    return "\n".join(lines) if lines else None


def _suite_properties(figures: ProviderSummary) -> dict[str, str]:
    """A suite's figures: its pass rate, answer-time percentiles, turn-taking percentiles and cost (those it has)."""
    values: dict[str, float | None] = {
        "pass_rate": figures.passed / figures.turns if figures.turns else None,
        "first_delta_p50_ms": figures.first_delta_p50_ms,
        "first_delta_p95_ms": figures.first_delta_p95_ms,
        "total_p50_ms": figures.total_p50_ms,
        "total_p95_ms": figures.total_p95_ms,
    }
    for metric, spread in figures.timing.items():
        values[f"{metric}_p50_ms"] = spread.p50
        values[f"{metric}_p95_ms"] = spread.p95
    values["cost"] = figures.cost
    return {name: f"{value:g}" for name, value in values.items() if value is not None}


def _failure_text(turn: TurnRecord) -> str:
    """Every failing assertion with its reason and every unmet step, then what the model said: what a reader
    needs to see why."""
    output = turn.output.text if turn.output is not None else ""
    return "\n".join([*failure_reasons(turn), "", "output:", output])


def _error_kind(turn: TurnRecord) -> str:
    return turn.error.kind if turn.error is not None else "error"


def _error_message(turn: TurnRecord) -> str:
    return turn.error.message if turn.error is not None else "no provider answered"


def _error_text(turn: TurnRecord) -> str:
    """The error's message, then what else the record knows (HTTP status, API code, attempts made)."""
    details = [_error_message(turn)]
    if turn.error is not None and turn.error.status is not None:
        details.append(f"status: {turn.error.status}")
    if turn.error is not None and turn.error.code is not None:
        details.append(f"code: {turn.error.code}")
    details.append(f"attempts: {turn.attempts} (provider {turn.provider})")
    return "\n".join(details)


def _add_outcome(case: ET.Element, turn: TurnRecord) -> None:
    """The `<failure>`, `<error>` or `<skipped>` child of a turn that did not pass (none for one that did)."""
    if turn.status == "failed":
        first = next((result for result in turn.assertions if not result.passed), None)
        _element(
            case,
            "failure",
            _failure_text(turn),
            message=assertion_reason(first) if first is not None else failure_reasons(turn)[0],
            type=first.type if first is not None else "failed",
        )
    elif turn.status == "error":
        _element(case, "error", _error_text(turn), message=_error_message(turn), type=_error_kind(turn))
    elif turn.status in ("skipped", "pending"):
        default = "not graded: the run ended first" if turn.status == "pending" else "skipped"
        _element(case, "skipped", message=turn.error.message if turn.error is not None else default)


def _testcase(suite: ET.Element, turn: TurnRecord, accepted: RepeatFigures | None) -> None:
    """One turn's testcase; `accepted` is its turn's repeat figures when this copy is accepted by them."""
    case = _element(
        suite, "testcase", name=testcase_name(turn), classname=_classname(turn), time=_seconds(turn_seconds(turn))
    )
    if accepted is None:
        _add_outcome(case, turn)
    out = _system_out(turn, accepted)
    if out is not None:
        _element(case, "system-out", out)


def _testsuite(
    root: ET.Element, figures: ProviderSummary, turns: Sequence[TurnRecord], accepted: Mapping[str, RepeatFigures]
) -> tuple[int, int]:
    """One provider's suite, its counts from its `ProviderSummary` (pending turns count as skipped) less the
    copies accepted by their pass rates; returns its failures and errors."""
    forgiven = Counter(turn.status for turn in turns if turn.node_id in accepted)
    failures, errors = figures.failed - forgiven["failed"], figures.error - forgiven["error"]
    suite = _element(
        root,
        "testsuite",
        name=figures.provider,
        tests=str(figures.turns),
        failures=str(failures),
        errors=str(errors),
        skipped=str(figures.skipped + figures.pending),
        time=_seconds(sum(turn_seconds(turn) for turn in turns)),
    )
    properties = _suite_properties(figures)
    if properties:  # the schema wants them first, and not empty
        holder = _element(suite, "properties")
        for name, value in properties.items():
            _element(holder, "property", name=name, value=value)
    for turn in turns:
        _testcase(suite, turn, accepted.get(turn.node_id))
    return failures, errors


def junit_tree(run: RunRecord, turns: Sequence[TurnRecord], summary: RunSummary) -> ET.Element:
    """The `<testsuites>` element of the run (its counts are the suites' added up; skipped turns are counted on
    each suite, where the schema has a place for them)."""
    root = ET.Element("testsuites", _safe_attributes({"name": f"rtflow {run.run_id}", "tests": str(summary.turns)}))
    by_provider: dict[str, list[TurnRecord]] = {}
    for turn in turns:
        by_provider.setdefault(primary_provider(turn), []).append(turn)
    turn_figures = {figure.key: figure for figure in summary.repeats if figure.kind == "turn"}
    forgiven = summary.accepted_by_repeats(turns)
    accepted = {turn.node_id: turn_figures[turn_key(turn)] for turn in turns if turn.node_id in forgiven}
    failures = errors = 0
    for figures in summary.providers:
        suite_failures, suite_errors = _testsuite(root, figures, by_provider.get(figures.provider, []), accepted)
        failures, errors = failures + suite_failures, errors + suite_errors
    root.set("failures", str(failures))
    root.set("errors", str(errors))
    root.set("time", _seconds(summary.duration_s))
    return root


def render_junit(run: RunRecord, turns: Sequence[TurnRecord], *, summary: RunSummary | None = None) -> str:
    """The JUnit XML document, declaration included; `summary` defaults to `RunSummary.of(run, turns)`."""
    root = junit_tree(run, turns, summary if summary is not None else RunSummary.of(run, turns))
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(run: RunRecord, turns: Sequence[TurnRecord], path: Path, *, summary: RunSummary | None = None) -> None:
    """Write the JUnit XML whole or not at all."""
    document = render_junit(run, turns, summary=summary)
    with atomic_text_file(path) as handle:
        handle.write(document)
