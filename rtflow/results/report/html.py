"""The HTML report: one self-contained file that works offline, wherever it is copied.

It holds a summary (with the run's turn-taking percentiles, when it has any); with a baseline run, a compare
view (`comparison_view`); the results matrix (`matrix`: a row per turn, a column per provider and prompt) under a
search box and filters whose state the address keeps, so a link reopens the same view; every conversation's
transcript with each turn's details (`transcript`: the system prompt, the messages sent, tool calls, audio,
attempts); a timeline of call attempts over wall time coloured by how each turn ended; and the latency
distribution. A simulated dialogue reads as a chat: each caller line then the agent's answer, and after the
last, why it stopped and the conversation's verdicts (from `dialogue`).

Charts are inline SVG from `charts`; the CSS and the small scripts are inlined from package data; audio is
embedded as data URLs (`media`), and the footer names any file that could not be. Jinja2 autoescapes
everything, so model output is text, never markup, and a content security policy lets only the report's own
script run.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from rtflow.messages import usd
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report.atomic import atomic_text_file
from rtflow.results.report.charts import histogram_svg, timeline_svg
from rtflow.results.report.comparison_view import ReportBaseline, comparison_view
from rtflow.results.report.matrix import ResultsMatrix, is_long
from rtflow.results.report.media import AudioEmbedder
from rtflow.results.report.transcript import (
    AnswerPart,
    TurnView,
    answer_parts,
    conversation_views,
    cut_label,
    interruption_line,
    provider_column,
    turn_taking_line,
)
from rtflow.results.summary import STATUS_ORDER, RunSummary

__all__ = [
    "AnswerPart",
    "ReportBaseline",
    "answer_parts",
    "cut_label",
    "interruption_line",
    "provider_column",
    "render_html",
    "turn_taking_line",
    "write_html",
]

_SCRIPTS = ("filters.js", "report.js")
"""The report's scripts, inlined in this order into its one script element."""

_environment = Environment(
    loader=PackageLoader("rtflow.results.report", "."),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_environment.tests["long"] = is_long
_environment.filters["usd"] = usd  # every cost as the terminal writes it (`rtflow.messages.usd`)


def _latencies(turns: Sequence[TurnRecord]) -> dict[str, list[float]]:
    metrics = [turn.output.metrics for turn in turns if turn.output is not None]
    return {
        "Time to first delta": [m.first_delta_ms for m in metrics if m.first_delta_ms is not None],
        "Total turn time": [m.total_ms for m in metrics if m.total_ms is not None],
    }


def _timestamp(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _package_text(name: str) -> str:
    return files("rtflow.results.report").joinpath(name).read_text(encoding="utf-8")


def render_html(
    run: RunRecord,
    turns: Sequence[TurnRecord],
    report_dir: Path,
    *,
    summary: RunSummary | None = None,
    baseline: ReportBaseline | None = None,
    embed_audio: bool = True,
) -> str:
    """The report as a string. `summary` defaults to the summary of the whole run from `turns`; with
    `baseline`, the report opens with how the run compares with it. Audio is embedded unless `embed_audio` is
    False; files that are not are linked relative to `report_dir`, where the report will be written."""
    # Resolved once: the clips a flow names are relative to its folder.
    flow_dir = (Path.cwd() / run.flow_path).parent if run.flow_path else Path.cwd()
    audio = AudioEmbedder(report_dir.absolute(), embed=embed_audio)
    conversations = conversation_views(turns, flow_dir, audio)
    views: list[TurnView] = [view for conversation in conversations for view in conversation.turns]
    ordered = [view.record for view in views]
    summary = summary if summary is not None else RunSummary.of(run, ordered)
    anchors = {view.record.node_id: view.anchor for view in views}
    comparison = comparison_view(baseline, summary, ordered, anchors) if baseline is not None else None
    template = _environment.get_template("report.html")
    return template.render(
        run=run,
        started=_timestamp(run.started_at),
        summary=summary,
        status_order=STATUS_ORDER,
        concurrency=run.options.get("concurrency"),
        matrix=ResultsMatrix.of(conversations),
        conversations=conversations,
        comparison=comparison,
        timeline=timeline_svg(ordered, anchors),
        histograms=[histogram_svg(values, label=label) for label, values in _latencies(ordered).items()],
        audio=audio,
        css=Markup(_package_text("report.css")),
        script=Markup("\n".join(_package_text(name) for name in _SCRIPTS)),
        nonce=secrets.token_urlsafe(16),
    )


def write_html(
    run: RunRecord,
    turns: Sequence[TurnRecord],
    path: Path,
    *,
    summary: RunSummary | None = None,
    baseline: ReportBaseline | None = None,
) -> None:
    """Write the report to `path` (whole or not at all); see `render_html`."""
    html = render_html(run, turns, path.parent, summary=summary, baseline=baseline)
    with atomic_text_file(path) as handle:
        handle.write(html)
