"""The viewer's own pages: the runs list, the live page that holds a report, and the error page.

The report itself is the one `rtflow.results.report` renders; these pages only lead to it and keep it current.
Templates live here as strings, beside the code, so the package needs no data files of its own. Jinja2
escapes everything (a run's flow path or id is text, never markup), and each page's one script carries the
nonce its content security policy names.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from jinja2 import DictLoader, Environment
from markupsafe import Markup

from rtflow.results.summary import STATUS_ORDER
from rtflow.viewer.live_script import LIVE_SCRIPT
from rtflow.viewer.reading import RunRow, RunStatusView

__all__ = ["compare_url", "error_page", "live_page", "report_url", "run_url", "runs_page", "status_url"]


def run_url(run_id: str) -> str:
    return f"/runs/{quote(run_id, safe='')}"


def report_url(run_id: str) -> str:
    return f"{run_url(run_id)}/report"


def status_url(run_id: str) -> str:
    return f"/api{run_url(run_id)}/status"


def compare_url(baseline_id: str, run_id: str) -> str:
    return f"/compare/{quote(baseline_id, safe='')}/{quote(run_id, safe='')}"


_CSS = """
:root { --pass: #1a7f37; --fail: #cf222e; --error: #8250df; --muted: #59636e; --line: #d0d7de; --panel: #f6f8fa; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1f2328; margin: 0; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { margin: 0 0 4px; font-size: 22px; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; background: var(--panel); padding: 1px 4px;
       border-radius: 4px; }
.meta { color: var(--muted); }
.notice { background: #fff8c5; border: 1px solid #d4a72c; border-radius: 6px; padding: 10px 14px; }
table.runs { border-collapse: collapse; margin-top: 12px; }
.runs th, .runs td { border: 1px solid var(--line); padding: 4px 10px; text-align: left; }
.runs td.count, .runs td.pass-rate { text-align: right; font-variant-numeric: tabular-nums; }
.runs td.zero { color: #8c959f; }
.runs td.count-passed:not(.zero) { color: var(--pass); }
.runs td.count-failed:not(.zero) { color: var(--fail); }
.runs td.count-error:not(.zero) { color: var(--error); }
.badge { display: inline-block; padding: 0 7px; border-radius: 10px; font-size: 12px; background: var(--panel);
         border: 1px solid var(--line); }
.badge.run-finished { background: #dafbe1; color: var(--pass); }
.badge.run-running { background: #ddf4ff; color: #0969da; }
.badge.run-crashed { background: #ffebe9; color: var(--fail); }
.badge.simulated { background: #fff8c5; }
form.compare { margin-top: 12px; display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
body.live { display: flex; flex-direction: column; height: 100vh; }
.live-bar { display: flex; gap: 14px; align-items: center; padding: 6px 16px; border-bottom: 1px solid var(--line);
            background: var(--panel); }
.live-bar .spacer { flex: 1; }
.frames { position: relative; flex: 1; }
.frames iframe { position: absolute; inset: 0; width: 100%; height: 100%; border: 0; background: #fff; }
.frames iframe.loading { visibility: hidden; }
"""

_LAYOUT = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>{{ css }}</style>
</head>
{% block body %}{% endblock %}
</html>
"""

_RUNS = """{% extends "layout" %}
{% block body %}
<body>
<main>
<h1>rtflow runs</h1>
<p class="meta">run store <code>{{ db_path }}</code></p>
{% if missing %}
<p class="notice" id="notice">{{ missing }}</p>
{% elif not rows %}
<p class="notice" id="notice">The run store holds no runs yet: <code>rtflow run FLOW</code> adds one.</p>
{% else %}
{% if rows|length > 1 %}
<form class="compare" action="/compare" method="get">
  <label>Compare run <select name="run">
    {% for row in rows %}
    <option value="{{ row.run.run_id }}"{% if loop.first %} selected{% endif %}>{{ row.run.run_id }}</option>
    {% endfor %}
  </select></label>
  <label>with baseline <select name="base">
    {% for row in rows %}
    <option value="{{ row.run.run_id }}"{% if loop.index == 2 %} selected{% endif %}>{{ row.run.run_id }}</option>
    {% endfor %}
  </select></label>
  <button type="submit">Compare</button>
</form>
{% endif %}
<table class="runs">
<thead><tr><th>run</th><th>flow</th><th>started</th><th>status</th><th>pass rate</th>
{% for status in statuses %}<th>{{ status }}</th>{% endfor %}<th>not run</th><th>planned</th></tr></thead>
<tbody>
{% for row in rows %}
<tr class="run" data-run="{{ row.run.run_id }}" data-status="{{ row.run.status }}">
  <td><a href="{{ run_url(row.run.run_id) }}">{{ row.run.run_id }}</a></td>
  <td>{{ flow_name(row.run.flow_path) }}</td>
  <td><time>{{ when(row.run.started_at) }}</time></td>
  <td><span class="badge run-{{ row.run.status }}">{{ row.run.status }}</span>
    {% if row.run.simulated %}<span class="badge simulated">sim</span>{% endif %}</td>
  <td class="pass-rate">{{ percent(row.summary.pass_rate) }}</td>
  {% for status in statuses %}{% set count = row.summary[status] %}
  <td class="count count-{{ status }}{% if not count %} zero{% endif %}" data-count="{{ status }}">{{ count }}</td>
  {% endfor %}
  <td class="count{% if not row.summary.not_run %} zero{% endif %}" data-count="not_run">{{ row.summary.not_run }}</td>
  <td class="count" data-count="planned_turns">{{ row.summary.planned_turns }}</td>
</tr>
{% endfor %}
</tbody>
</table>
{% endif %}
</main>
</body>
{% endblock %}
"""

_LIVE = """{% extends "layout" %}
{% block body %}
<body class="live">
<div class="live-bar" id="live" data-status-url="{{ status_url }}" data-report-url="{{ report_url }}"
     data-turns="{{ status.turns }}" data-status="{{ status.status }}" data-ended="{{ status.ended|lower }}">
  <a href="/">&larr; runs</a>
  <span>run <code>{{ status.run_id }}</code>
    {%- if baseline_id %} against baseline <code>{{ baseline_id }}</code>{% endif %}</span>
  <span class="badge run-{{ status.status }}" id="live-status">{{ status.status }}</span>
  <span id="live-turns">{{ status.turns }} of {{ status.planned_turns }} turns stored</span>
  <span class="spacer"></span>
  <a href="{{ report_url }}" target="_blank" rel="noopener">the report alone</a>
</div>
<div class="frames" id="frames"></div>
<noscript><p class="notice">This page keeps the report current with a script;
  <a href="{{ report_url }}">open the report</a> without it.</p></noscript>
<script nonce="{{ nonce }}">{{ script }}</script>
</body>
{% endblock %}
"""

_ERROR = """{% extends "layout" %}
{% block body %}
<body>
<main>
<h1>{{ title }}</h1>
<p class="notice" id="notice">{{ message }}</p>
<p><a href="/">&larr; all runs</a></p>
</main>
</body>
{% endblock %}
"""

_environment = Environment(
    loader=DictLoader({"layout": _LAYOUT, "runs": _RUNS, "live": _LIVE, "error": _ERROR}),
    autoescape=True,
    trim_blocks=True,
    lstrip_blocks=True,
)


def _when(moment: float | None) -> str:
    # The viewer runs where the runs ran, so local time reads as `rtflow runs` prints it.
    return "-" if moment is None else datetime.fromtimestamp(moment).strftime("%Y-%m-%d %H:%M:%S")


def _flow_name(flow_path: str | None) -> str:
    """The flow's path relative to the viewer's folder when it lies below it (shorter in a table)."""
    if not flow_path:
        return "-"
    try:
        return str(Path(flow_path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return flow_path


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.0f}%"


def runs_page(db_path: Path, rows: Sequence[RunRow], missing: str | None) -> str:
    """The runs list, newest first, with a form to compare two of them; `missing` explains an absent store."""
    return _render(
        "runs",
        title="rtflow runs",
        db_path=str(db_path),
        rows=rows,
        missing=missing,
        statuses=STATUS_ORDER,
        run_url=run_url,
        when=_when,
        flow_name=_flow_name,
        percent=_percent,
    )


def live_page(status: RunStatusView, page_report_url: str, nonce: str, baseline_id: str | None = None) -> str:
    """The page that shows a report and shows it again whenever the run stores more turns, until it ends."""
    title = f"rtflow · {status.run_id}" + (f" against {baseline_id}" if baseline_id else "")
    return _render(
        "live",
        title=title,
        status=status,
        baseline_id=baseline_id,
        report_url=page_report_url,
        status_url=status_url(status.run_id),
        nonce=nonce,
        script=Markup(LIVE_SCRIPT),
    )


def error_page(title: str, message: str) -> str:
    """A page that says what went wrong, in words, with a way back to the runs list."""
    return _render("error", title=title, message=message)


def _render(name: str, **context: object) -> str:
    return _environment.get_template(name).render(css=Markup(_CSS), **context)
