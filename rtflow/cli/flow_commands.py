"""Commands that read a flow without running it: `validate`, `graph` and `schema`.

`validate` loads and compiles a flow and prints what it would run; `graph` draws the compiled plan (DOT,
Mermaid, node-link JSON, or an image through Graphviz); `schema` prints the flow file's JSON schema. A flow
that does not load or compile ends with the loader's or compiler's message and exit code 2 (through
`RtflowGroup`), never a traceback.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import click

import rtflow
from rtflow.cli.options import db_option, repeat_option

if TYPE_CHECKING:
    from rtflow.flow.spec import FlowSpec
    from rtflow.plan.graph import Plan

__all__ = ["graph_command", "schema_command", "validate_command"]

_IMAGE_FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf"}
_TEXT_FORMATS_BY_SUFFIX = {".dot": "dot", ".gv": "dot", ".mmd": "mermaid", ".mermaid": "mermaid", ".json": "json"}
_GRAPHVIZ_HINT = (
    "Graphviz's `dot` is needed to draw {suffix} files and was not found on PATH. Install it with "
    "`apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS), "
    "or write DOT text instead: `rtflow graph FLOW --dot -o graph.dot`."
)

_flow_argument = click.argument("flow_path", metavar="FLOW", type=click.Path(dir_okay=False, path_type=Path))
_thread_option = click.option(
    "--thread",
    "thread_filter",
    metavar="PATTERN",
    help="Only threads whose id matches this fnmatch pattern (for example 'japan_*').",
)


def _load_and_compile(flow_path: Path, *, repeat: int | None, thread_filter: str | None) -> tuple[FlowSpec, Plan]:
    flow = rtflow.load(flow_path)
    return flow, rtflow.compile(flow, repeat=repeat, thread_filter=thread_filter)


@click.command("validate")
@_flow_argument
@_thread_option
@repeat_option
@click.option("--estimate", is_flag=True, help="Also estimate requests, tokens, audio seconds and cost per provider.")
@click.option("--sim", is_flag=True, help="With --estimate: count tokens as the simulator does (for a --sim run).")
@click.option(
    "--answer-tokens",
    type=click.IntRange(min=1),
    metavar="N",
    help="With --estimate: the assumed length of an answer in tokens (default 100).",
)
@click.option(
    "--from-run",
    metavar="RUN",
    help="With --estimate: take answer lengths from RUN (an id, or latest) instead of assuming them.",
)
@db_option("db")
def validate_command(
    flow_path: Path,
    thread_filter: str | None,
    repeat: int | None,
    estimate: bool,
    sim: bool,
    answer_tokens: int | None,
    from_run: str | None,
    db: Path | None,
) -> None:
    """Load and compile FLOW, then print what a run of it would do."""
    if not estimate and (sim or answer_tokens is not None or from_run is not None):
        raise click.UsageError("--sim, --answer-tokens and --from-run only apply with --estimate")
    flow, plan = _load_and_compile(flow_path, repeat=repeat, thread_filter=thread_filter)
    counts = plan.counts
    critical_path = plan.critical_path()
    rows = [
        ("threads", str(counts.threads)),
        ("conversations", str(counts.conversations)),
        ("turns", str(counts.turns)),
        ("call nodes", str(counts.call_nodes)),
        ("fallback nodes", str(counts.fallback_nodes)),
        ("grade nodes", str(counts.grade_nodes)),
        ("providers", ", ".join(plan.providers)),
        ("critical path", f"{_plural(len(critical_path), 'call node')} ({_describe_path(critical_path)})"),
    ]
    budget = sum(conversation.turn_budget for conversation in plan.conversations.values())
    if budget != counts.turns:  # simulated dialogues: how many turns they may take is known, not how many they will
        longest = max(conversation.turn_budget for conversation in plan.conversations.values())
        rows[2] = ("turns", f"{counts.turns} written; with simulated dialogues up to {budget}")
        rows[-1] = (rows[-1][0], f"{rows[-1][1]}, up to {longest} turns")
    click.echo(f"{flow_path}: valid")
    if flow.description:
        click.echo(f"  {flow.description}")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        click.echo(f"  {name.ljust(width)}  {value}")
    warnings = [*flow.warnings, *plan.warnings]  # flow.warnings holds what the providers warned about at load
    if warnings:
        click.echo(f"warnings ({len(warnings)}):")
        for warning in warnings:
            click.echo(f"  - {warning}")
    if estimate:
        _print_estimate(plan, simulated=sim, answer_tokens=answer_tokens, from_run=from_run, db=db)


def _print_estimate(
    plan: Plan, *, simulated: bool, answer_tokens: int | None, from_run: str | None, db: Path | None
) -> None:
    import functools

    import anyio

    from rtflow.messages import usd
    from rtflow.results.store import RunStore
    from rtflow.runner.estimate import DEFAULT_ANSWER_TOKENS, estimate_plan

    earlier = None
    if from_run is not None:
        with RunStore(db, read_only=True) as store:
            earlier = store.turns(store.get_run(from_run).run_id)
    figures = anyio.run(
        functools.partial(
            estimate_plan,
            plan,
            simulated=simulated,
            answer_tokens=answer_tokens or DEFAULT_ANSWER_TOKENS,
            earlier_run=earlier,
        )
    )
    click.echo("estimate (before the run):")
    for each in figures.providers:
        cost = "no price for this model" if each.cost is None else f"${usd(each.cost)}"
        audio = f", {each.audio_seconds:.1f} s of input audio" if each.audio_seconds else ""
        click.echo(
            f"  {each.provider}: {_plural(each.requests, 'request')}, {each.input_tokens} input and"
            f" {each.output_tokens} output tokens{audio}, {cost}"
        )
    total = "unknown" if figures.cost is None else f"${usd(figures.cost)}"
    click.echo(f"  total: {_plural(figures.requests, 'request')}, {total}")
    click.echo("assumptions:")
    for assumption in figures.assumptions:
        click.echo(f"  - {assumption}")


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _describe_path(path: list[str]) -> str:
    # A long path would flood the terminal; its ends say which conversation it is.
    shown = path if len(path) <= 4 else [path[0], path[1], "...", path[-1]]
    return " -> ".join(shown)


def _render_image(dot_text: str, output: Path) -> None:
    dot = shutil.which("dot")
    if dot is None:
        raise click.ClickException(_GRAPHVIZ_HINT.format(suffix=output.suffix))
    completed = subprocess.run(
        [dot, f"-T{_IMAGE_FORMATS[output.suffix.lower()]}", "-o", str(output)],
        input=dot_text.encode(),
        capture_output=True,
        check=False,
    )
    if completed.returncode != 0:
        detail = completed.stderr.decode(errors="replace").strip()
        raise click.ClickException(f"Graphviz could not draw {output}: {detail or f'exit {completed.returncode}'}")


@click.command("graph")
@_flow_argument
@click.option("--dot", "graph_format", flag_value="dot", help="Graphviz DOT (the default).")
@click.option("--mermaid", "graph_format", flag_value="mermaid", help="A Mermaid flowchart.")
@click.option("--json", "graph_format", flag_value="json", help="networkx node-link JSON.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout; .svg, .png and .pdf are drawn with Graphviz.",
)
@_thread_option
@repeat_option
def graph_command(
    flow_path: Path, graph_format: str | None, output: Path | None, thread_filter: str | None, repeat: int
) -> None:
    """Draw the dependency graph FLOW compiles to."""
    image = output is not None and output.suffix.lower() in _IMAGE_FORMATS
    if image and graph_format not in (None, "dot"):
        raise click.UsageError(f"{output} is drawn from DOT; drop --{graph_format} or write to a .mmd/.json file")
    if graph_format is None:
        suffix = output.suffix.lower() if output is not None else ""
        graph_format = _TEXT_FORMATS_BY_SUFFIX.get(suffix, "dot")
    from rtflow.plan.export import render_graph

    _, plan = _load_and_compile(flow_path, repeat=repeat, thread_filter=thread_filter)
    text = render_graph(plan, graph_format)
    if output is None:
        click.echo(text, nl=False)
    elif image:
        _render_image(text, output)
        click.echo(f"wrote {output}", err=True)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)


@click.command("schema")
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file instead of stdout."
)
def schema_command(output: Path | None) -> None:
    """Print the JSON schema of flow files (the text of schemas/flow.schema.json)."""
    from rtflow.flow.spec import schema_text

    text = schema_text()
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text, encoding="utf-8")
        click.echo(f"wrote {output}", err=True)
