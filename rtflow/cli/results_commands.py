"""Commands that read the run store: `runs`, `show`, `export`, `diff`, and `merge` (which writes one run made of
other stores' runs).

`RUN` is a run id or `latest`. The store is `.rtflow/rtflow.db` unless `--db` (or `RTFLOW_DB`) names another.
Model output is printed as plain text (never interpreted as console markup). What they print is drawn by
`results_views`, imported when a command runs.
"""

from __future__ import annotations

from pathlib import Path

import click

from rtflow.cli.options import db_option

__all__ = [
    "EXPORT_SUFFIXES_HELP",
    "TURN_STATUSES",
    "diff_command",
    "export_command",
    "merge_command",
    "runs_command",
    "show_command",
]

EXPORT_SUFFIXES_HELP = ".json, .jsonl, .csv, .html, .xml, .md"
"""The export formats as `--help` names them (a test holds them to the report's EXPORT_FORMATS)."""

_db_option = db_option()
_run_argument = click.argument("run_id", metavar="RUN", default="latest")

TURN_STATUSES = ("passed", "failed", "error", "skipped", "pending")
"""What `show --status` takes: every status a stored turn can have. `results.summary.STATUS_ORDER`, written out:
importing it would load pydantic for every `rtflow --help` (tests/cli checks the two agree)."""


def _statuses(_context: click.Context, _parameter: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """`--status failed,error --status skipped` as `("failed", "error", "skipped")`; an unknown name is a usage
    error that lists the known ones."""
    names = [name.strip().lower() for value in values for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in TURN_STATUSES]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: a turn's status is one of {', '.join(TURN_STATUSES)}")
    return tuple(dict.fromkeys(names))


@click.command("runs")
@_db_option
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True, help="How many runs to list.")
def runs_command(db_path: Path | None, limit: int) -> None:
    """List recent runs, newest first, with their turns' verdicts."""
    from rtflow.cli.results_views import list_runs

    list_runs(db_path, limit)


@click.command("show")
@_run_argument
@_db_option
@click.option("--thread", metavar="THREAD", help="Only this thread's conversations.")
@click.option(
    "--failed",
    is_flag=True,
    help="Only failed and errored turns (--status failed,error), each conversation's other turns in brief.",
)
@click.option(
    "--status",
    "statuses",
    multiple=True,
    metavar="STATUS",
    callback=_statuses,
    help=f"Only turns of this status ({', '.join(TURN_STATUSES)}); repeat it or give a comma list.",
)
def show_command(
    run_id: str, db_path: Path | None, thread: str | None, failed: bool, statuses: tuple[str, ...]
) -> None:
    """Print RUN's transcripts and verdicts (RUN is a run id or `latest`)."""
    from rtflow.cli.results_views import show_run

    wanted = (*statuses, *(("failed", "error") if failed else ()))
    show_run(run_id, db_path, thread, tuple(dict.fromkeys(wanted)))


@click.command("export")
@_run_argument
@_db_option
@click.option(
    "-o",
    "--output",
    "output_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"File to write; its suffix picks the format ({EXPORT_SUFFIXES_HELP}).",
)
@click.option("--thread", metavar="THREAD", help="Only this thread's conversations.")
@click.option(
    "--baseline",
    metavar="RUN",
    help="With an .html report: open it with a compare view against RUN (changed verdicts first); latest: the "
    "last run of the same flow before it.",
)
def export_command(
    run_id: str, db_path: Path | None, output_path: Path, thread: str | None, baseline: str | None
) -> None:
    """Write RUN as JSON, JSONL, CSV, a self-contained HTML report, JUnit XML or a Markdown summary."""
    from rtflow.cli.results_views import export_run

    export_run(run_id, db_path, output_path, thread, baseline)


@click.command("diff")
@click.argument("baseline", metavar="BASELINE")
@click.argument("run_id", metavar="RUN", default="latest")
@_db_option
@click.option(
    "--strict",
    is_flag=True,
    help="Count every test that passed in BASELINE and fails in all of RUN's runs as a regression, significant or not.",
)
def diff_command(baseline: str, run_id: str, db_path: Path | None, strict: bool) -> None:
    """Compare RUN with BASELINE test by test; exit 1 on a significant regression (Fisher's exact test, p < 0.05),
    2 when the two runs share no test (nothing to compare).

    BASELINE `latest` is the last run of RUN's flow before RUN."""
    import sys

    from rtflow.cli.results_views import diff_runs

    sys.exit(1 if diff_runs(baseline, run_id, db_path, strict=strict) else 0)


@click.command("merge")
@click.argument("stores", nargs=-1, required=True, metavar="DB...", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The store the merged run is written to (created if missing; it may be one of the DBs).",
)
@click.option("--run", "run_id", default="latest", show_default=True, help="Which run of each store to take.")
def merge_command(stores: tuple[Path, ...], output: Path, run_id: str) -> None:
    """Merge the runs of several stores (the `--shard K/N` runs of a CI matrix) into one run of the whole suite."""
    from rtflow.cli.results_views import merge_stores

    merge_stores(list(stores), output, run_id)
