"""`rtflow run`: run a flow, show progress and a summary, exit with a code a CI job can use.

Exit codes: 0 every turn passed; 1 a turn failed or could not be answered; 2 the flow or an option is invalid;
130 interrupted (Ctrl-C), with every finished turn kept in the run store.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from rtflow.cli.options import db_option, repeat_option
from rtflow.errors import FlowError

if TYPE_CHECKING:
    from rtflow.results.run_result import RunResult

_STREAMED_SUFFIX = ".jsonl"
_STEP_SUMMARY = "GITHUB_STEP_SUMMARY"
"""GitHub Actions names, in this variable, a Markdown file whose content it shows on the job's page."""


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    parsed: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise FlowError(f"--var {pair!r}: expected NAME=VALUE, for example --var question='What is 2+2?'")
        parsed[name] = value
    return parsed


def _check_outputs(outputs: tuple[Path, ...], log_file: Path | None, sim_log: Path | None) -> None:
    """Refuse, before anything runs (and is paid for), an output the run could not write."""
    from rtflow.output_paths import check_export_file, check_output_file

    for output in outputs:
        check_export_file(output, "-o")
    for path, option in ((log_file, "--log-file"), (sim_log, "--sim-log")):
        if path is not None:
            check_output_file(path, option)


def _append_step_summary(result: RunResult) -> None:
    """Append the run's Markdown summary to `$GITHUB_STEP_SUMMARY` when GitHub Actions set it (nothing otherwise).

    The summary is a courtesy on top of the run's own results: a file that cannot be written is a warning on
    stderr, never a failed run or a changed exit code."""
    import os

    target = os.environ.get(_STEP_SUMMARY)
    if not target:
        return
    from rtflow.results.report.markdown import render_markdown

    document = render_markdown(result.run, result.turns, summary=result.summary)
    try:
        with open(target, "a", encoding="utf-8") as handle:
            handle.write(document + "\n")
    except OSError as exc:
        click.echo(f"warning: cannot append the summary to ${_STEP_SUMMARY} ({target}): {exc}", err=True)


def _baseline(
    baseline: str | None, fail_on: str, db: Path | None, flow: Path | None, resume: str | None
) -> tuple[Any, list[Any]]:
    """The baseline run's record and turns, read before this run starts. `latest` is the last run of the same
    flow before this one (`RunStore.baseline_run_id`); before the run being resumed, when resuming."""
    if baseline is None:
        if fail_on == "regression":
            raise FlowError("--fail-on regression needs --baseline RUN: a regression is against a baseline")
        return None, []
    from rtflow.results.store import RunStore

    with RunStore(db, read_only=True) as store:
        resumed = store.get_run(resume) if resume is not None else None
        named = str(flow.resolve()) if flow is not None else None
        flow_path = resumed.flow_path if resumed is not None else named
        run = store.get_run(store.baseline_run_id(baseline, flow_path=flow_path, before=resumed))
        if resumed is not None and run.run_id == resumed.run_id:
            raise FlowError(f"--baseline {baseline} is the run being resumed: compare with an earlier run")
        return run, store.turns(run.run_id)


def _failed_threads(rerun_failed: str, db: Path | None) -> tuple[str, list[str], str | None]:
    """`--rerun-failed RUN`: that run's id, the threads in which some turn failed, errored or was skipped (a
    skipped turn followed an error, or the run was stopped before it) in the run's order, and its flow file."""
    from rtflow.results.store import RunStore

    with RunStore(db, read_only=True) as store:
        run = store.get_run(rerun_failed)
        threads = [turn.thread_id for turn in store.turns(run.run_id) if turn.status in ("failed", "error", "skipped")]
    return run.run_id, list(dict.fromkeys(threads)), run.flow_path


def _parse_shard(value: str | None) -> tuple[int, int] | None:
    if value is None:
        return None
    index, sep, count = value.partition("/")
    if sep and index.isdigit() and count.isdigit() and 1 <= int(index) <= int(count):
        return int(index), int(count)
    raise FlowError(f"--shard {value!r}: expected K/N with 1 <= K <= N, for example --shard 2/3")


def _sim_config(
    sim: bool, latency_ms: float | None, faults: tuple[str, ...], log: Path | None, voice: dict[str, Any]
) -> object:
    """`False`, or the simulator's configuration when the run is simulated."""
    if not sim:
        if latency_ms is not None or faults or log is not None or voice:
            raise FlowError(
                "--sim-latency-ms, --sim-fault, --sim-log, --sim-realtime-audio, --sim-leading-silence-ms and"
                " --sim-cancel-delay-ms only apply with --sim"
            )
        return False
    from rtflow.sim import SimConfig
    from rtflow.sim.config import LatencyConfig, VoiceConfig, parse_fault

    return SimConfig(
        latency=LatencyConfig(first_delta_ms=latency_ms or 0.0),
        faults=[parse_fault(spec) for spec in faults],
        log_path=log,
        voice=VoiceConfig(**voice),
    )


@click.command("run")
@click.argument("flow", type=click.Path(dir_okay=False, path_type=Path), required=False)
@click.option(
    "--sim", is_flag=True, help="Answer every OpenAI provider with the local simulator (no API key, no cost)."
)
@click.option(
    "--sim-latency-ms", type=click.FloatRange(min=0), help="With --sim: delay before each response's first delta."
)
@click.option(
    "--sim-fault",
    "sim_faults",
    multiple=True,
    metavar="SPEC",
    help="With --sim: inject a fault (see `rtflow sim serve --help`).",
)
@click.option(
    "--sim-log", type=click.Path(dir_okay=False, path_type=Path), help="With --sim: log every event to this JSONL file."
)
@click.option(
    "--sim-realtime-audio", is_flag=True, help="With --sim: spoken answers arrive at the rate they play, as live."
)
@click.option(
    "--sim-leading-silence-ms", type=click.FloatRange(min=0), help="With --sim: silence before each spoken answer."
)
@click.option(
    "--sim-cancel-delay-ms",
    type=click.FloatRange(min=0),
    help="With --sim: how long an answer goes on after response.cancel (the agent's yield latency).",
)
@click.option("--concurrency", type=click.IntRange(min=1), help="Most provider calls in flight at once.")
@click.option("--filter-thread", "thread_filter", metavar="PATTERN", help="Run only threads whose id matches (glob).")
@repeat_option
@click.option("--var", "var_pairs", multiple=True, metavar="NAME=VALUE", help="Set a variable for every turn.")
@click.option(
    "-o",
    "--output",
    "outputs",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write results: .json .jsonl .csv .html .xml (JUnit) .md (repeat for several files).",
)
@db_option("db")
@click.option("--resume", metavar="RUN_ID", help="Finish an earlier run: only missing, errored or skipped turns run.")
@click.option(
    "--force",
    is_flag=True,
    help="With --resume: resume even if the rest would go elsewhere (real endpoints after --sim, another server).",
)
@click.option("--log-format", type=click.Choice(["console", "json"]), help="Log rendering (default: console on a TTY).")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path), help="Write JSON log lines to this file.")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--seed", type=int, help="Seed for retry jitter.")
@click.option(
    "--baseline",
    metavar="RUN",
    help="Compare this run with RUN (an id, or latest: the last run of the same flow before this one) test by test, "
    "after it ends.",
)
@click.option(
    "--fail-on",
    type=click.Choice(["any-failure", "regression"]),
    default="any-failure",
    show_default=True,
    help="What fails the run (exit 1): any failed turn, or only a significant regression against --baseline.",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0, min_open=True),
    metavar="USD",
    help="Start no new turn once the answers cost this much; the rest are recorded skipped (budget).",
)
@click.option("--fail-fast", is_flag=True, help="Start no new turn once one has failed; the rest are recorded skipped.")
@click.option(
    "--rerun-failed",
    metavar="RUN",
    help="Run only the threads that failed, errored or were skipped in RUN (an id, or latest), as a new run.",
)
@click.option(
    "--shard",
    metavar="K/N",
    help="Run the K-th of N disjoint shares of the conversations (by a stable hash of their ids); rtflow merge "
    "combines the N runs.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help='Where the conversations run: this process, or a Ray cluster (pip install "rtflow[ray]").',
)
@click.option("--ray-address", metavar="ADDRESS", help="With --executor ray: the cluster (default: auto, else local).")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    help="With --executor ray: how many worker actors (default: one per node).",
)
@click.option(
    "--replay-callers",
    metavar="RUN",
    help="Simulated dialogues say what RUN's caller models said (by id, or latest), asking no caller model.",
)
def run_command(
    flow: Path | None,
    sim: bool,
    sim_latency_ms: float | None,
    sim_faults: tuple[str, ...],
    sim_log: Path | None,
    sim_realtime_audio: bool,
    sim_leading_silence_ms: float | None,
    sim_cancel_delay_ms: float | None,
    concurrency: int | None,
    thread_filter: str | None,
    repeat: int | None,
    var_pairs: tuple[str, ...],
    outputs: tuple[Path, ...],
    db: Path | None,
    resume: str | None,
    force: bool,
    log_format: str | None,
    log_file: Path | None,
    verbose: int,
    no_progress: bool,
    seed: int | None,
    baseline: str | None,
    fail_on: str,
    max_cost: float | None,
    fail_fast: bool,
    rerun_failed: str | None,
    shard: str | None,
    executor: str,
    ray_address: str | None,
    workers: int | None,
    replay_callers: str | None,
) -> None:
    """Run the conversations of FLOW and report how they went.

    With --resume or --rerun-failed, FLOW may be left out: the flow file that run was started from is used.
    """
    # Imported here so that `rtflow --help` does not pay for the whole library.
    import anyio
    from rich.console import Console

    from rtflow.api import arun
    from rtflow.log import configure_logging
    from rtflow.results.run_result import EXIT_INTERRUPTED
    from rtflow.runner.progress import print_summary

    variables = _parse_vars(var_pairs)
    shard_of_n = _parse_shard(shard)
    if executor != "ray" and (ray_address is not None or workers is not None):
        raise FlowError("--ray-address and --workers only apply with --executor ray")
    unique: dict[Path, Path] = {}
    for output in outputs:  # a file named twice is written once
        unique.setdefault(output.resolve(), output)
    outputs = tuple(unique.values())
    _check_outputs(outputs, log_file, sim_log)
    only_threads: list[str] | None = None
    if rerun_failed is not None:
        rerun_of, only_threads, rerun_flow = _failed_threads(rerun_failed, db)
        if not only_threads:
            click.echo(f"run {rerun_of} has no failed, errored or skipped turn: nothing to rerun")
            sys.exit(0)
        if flow is None and rerun_flow is not None:
            flow = Path(rerun_flow)
    baseline_record, baseline_turns = _baseline(baseline, fail_on, db, flow, resume)
    voice = {
        name: value
        for name, value in (
            ("realtime_audio", sim_realtime_audio or None),
            ("leading_silence_ms", sim_leading_silence_ms),
            ("cancel_delay_ms", sim_cancel_delay_ms),
        )
        if value is not None
    }
    sim_config = _sim_config(sim, sim_latency_ms, sim_faults, sim_log, voice)
    # JSON lines are for machines and keep every run event; a person at a console sees warnings unless -v.
    as_json = log_file is not None or log_format == "json"
    level = {0: "info" if as_json else "warning", 1: "info"}.get(verbose, "debug")
    log_stream = log_file.open("a", encoding="utf-8") if log_file is not None else None
    configure_logging(log_format="json" if as_json else log_format, level=level, stream=log_stream)  # type: ignore[arg-type]
    err = Console(stderr=True, soft_wrap=True)  # one line in logs, whatever their width
    if sim:
        err.print(
            "[bold yellow]simulated run[/]: OpenAI providers are answered by rtflow's local simulator;"
            " no API calls, no cost."
        )
    show_progress = not no_progress and sys.stderr.isatty() and log_format != "json"
    # The first JSONL output grows as turns finish (a crash keeps what was done); the rest are written at the end.
    jsonl = next((output for output in outputs if output.suffix == _STREAMED_SUFFIX), None)
    try:
        result = anyio.run(
            lambda: arun(
                flow,
                sim=sim_config,
                concurrency=concurrency,
                thread_filter=thread_filter,
                repeat=repeat,
                vars=variables,
                db=db,
                resume=resume,
                force=force,
                jsonl=jsonl,
                seed=seed,
                handle_signals=True,
                progress=show_progress,
                replay_callers=replay_callers,
                max_cost=max_cost,
                fail_fast=fail_fast or None,
                only_threads=only_threads,
                shard=shard_of_n,
                executor=executor,
                workers=workers,
                ray_address=ray_address,
            )
        )
    finally:
        if log_stream is not None:
            log_stream.close()
    for output in outputs:
        if output == jsonl:
            continue
        from rtflow.results.report import ReportBaseline, write_export

        # An HTML report of a run with a baseline opens with the compare view; other formats have no place for it.
        compared = baseline_record is not None and output.suffix.lower() in (".html", ".htm")
        baseline_of = ReportBaseline(baseline_record, baseline_turns) if compared else None
        write_export(result.run, result.turns, output, summary=result.summary, baseline=baseline_of)
    _append_step_summary(result)
    # Off a terminal (CI logs, pipes) rich would assume 80 columns and cut the table's words short.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    print_summary(result, console, db_path=db)
    for written in [*outputs, *result.outputs_written]:
        click.echo(f"results written to {written}")
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if baseline_record is not None:
        from rtflow.cli.results_views import print_comparison
        from rtflow.results.compare import compare_runs

        comparison = compare_runs(baseline_turns, result.turns)
        print_comparison(console, comparison, baseline_record.run_id, result.run_id, strict=False)
        if fail_on == "regression":
            sys.exit(1 if comparison.gate(baseline_record.run_id, "this run") else 0)
    sys.exit(result.exit_code)
