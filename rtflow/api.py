"""The library entry points: `arun` (async core) and `run` (its sync wrapper).

`arun` loads and compiles the flow, builds the providers (pointing them at an in-process simulator with
`sim=True`), opens the run store, runs the scheduler and returns a `RunResult`. Every turn record is written to
the store (and to a streamed JSONL file when asked) the moment it is known; `on_turn` gets each turn once, with
its final record.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine, Mapping
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.abc

from rtflow.errors import FlowError, RtflowError, first_error_in
from rtflow.flow.loader import load
from rtflow.flow.spec import FlowSpec
from rtflow.log import get_logger
from rtflow.output_paths import check_export_file, check_output_file, ensure_writable_folder
from rtflow.plan.compiler import compile_flow
from rtflow.plan.graph import Plan, call_node_id
from rtflow.providers.base import Provider
from rtflow.results.assertions.timing import is_run_level
from rtflow.results.records import RunRecord, TurnRecord, new_run_id
from rtflow.results.report import write_export
from rtflow.results.report.data import JsonlWriter
from rtflow.results.run_result import RunResult
from rtflow.results.store import RunStore
from rtflow.runner.progress import RunProgress
from rtflow.runner.ray_executor import RayExecutor, require_ray
from rtflow.runner.run_providers import DEFAULT_GRADER, build_run_providers
from rtflow.runner.scheduler import Scheduler, SchedulerSettings
from rtflow.runner.writer import TurnWriter

__all__ = ["DEFAULT_GRADER", "arun", "run"]

_INTERRUPT_GRACE_S = 2.0

P = ParamSpec("P")
T = TypeVar("T")

TurnCallback = Callable[[TurnRecord], Awaitable[None] | None]


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable


@contextlib.asynccontextmanager
async def _simulator(sim: Any, *, speaks_in_time: bool = False) -> AsyncIterator[str | None]:
    """The simulator's http base URL while it runs, or None when the run goes to the real endpoints.

    `speaks_in_time`: the plan cuts answers by what the caller heard, so the simulator speaks at the rate its
    audio plays (as the live service does for a long answer) unless its settings say otherwise; sent as fast as
    it goes, a whole answer would be in before any cut, and `flows/barge-in.yaml --sim` would test nothing."""
    if not sim:
        yield None
        return
    from rtflow.sim import SimConfig, SimServer  # the simulator is only imported by runs that use it

    if isinstance(sim, SimConfig):
        config = sim
    elif isinstance(sim, Mapping):  # its settings as plain data: `{"voice": {"realtime_audio": True}}`
        from pydantic import ValidationError

        try:
            config = SimConfig.model_validate(sim)
        except ValidationError as exc:
            raise FlowError(f"sim settings: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from None
    else:
        config = SimConfig()
    if speaks_in_time and "realtime_audio" not in config.voice.model_fields_set:
        config = config.model_copy(update={"voice": config.voice.model_copy(update={"realtime_audio": True})})
    async with SimServer(config) as server:
        yield server.http_base_url


def _with_endpoints(
    run: RunRecord, providers: Mapping[str, Provider], sim_url: str | None, resuming: RunStore | None, force: bool
) -> RunRecord:
    """The run's record with where each provider's calls go (`sim` for the simulator, whose port changes).

    When resuming (`resuming` is the store), a change of either (the simulator for real endpoints, one server for
    another) is refused unless `force`: one run's turns would otherwise mix answers from both. Forced, the
    changes are logged and kept in the record's options."""
    endpoints = {
        label: "sim" if sim_url is not None and provider.endpoint == sim_url else provider.endpoint
        for label, provider in providers.items()
        if provider.endpoint is not None
    }
    simulated = sim_url is not None
    update: dict[str, Any] = {"endpoints": {**run.endpoints, **endpoints}}
    if resuming is not None:
        changes = resuming.check_resume(run.run_id, simulated=simulated, endpoints=endpoints, force=force)
        for change in changes:
            get_logger().warning("run.resumed_with_change", run=run.run_id, change=change)
        if changes:
            update["options"] = {
                **run.options,
                "resumed_with_changes": [*run.options.get("resumed_with_changes", []), *changes],
            }
    return run.model_copy(update=update)


def _settings(
    flow: FlowSpec, concurrency: int | None, seed: int | None, max_cost: float | None, fail_fast: bool | None
) -> SchedulerSettings:
    execution = flow.execution
    return SchedulerSettings(
        concurrency=concurrency or execution.concurrency,
        timeout=execution.timeout,
        retries=execution.retries,
        backoff_base=execution.backoff_base,
        backoff_max=execution.backoff_max,
        max_retry_after=execution.max_retry_after,
        grading_concurrency=execution.grading_concurrency,
        seed=seed,
        max_cost=execution.max_cost if max_cost is None else max_cost,
        fail_fast=execution.fail_fast if fail_fast is None else fail_fast,
    )


def _check_ray_can_run(spec: FlowSpec, replay_callers: str | None, settings: SchedulerSettings) -> None:
    """Each Ray worker runs its own scheduler on its batches: a budget, fail-fast or replayed callers would hold
    per batch, not for the run, so they are refused (before anything runs) rather than quietly weakened."""
    if spec.source_path is None:
        raise FlowError("--executor ray runs a flow file: a flow built in code cannot reach the workers")
    asked = {  # the option, and the flow's `execution` key that gives the same
        "--max-cost": ("execution.max_cost", settings.max_cost is not None),
        "--fail-fast": ("execution.fail_fast", settings.fail_fast),
        "--replay-callers": (None, bool(replay_callers)),
    }
    unsupported = [name for name, (_, given) in asked.items() if given]
    if unsupported:
        keys = [key for name, (key, _) in asked.items() if name in unsupported and key is not None]
        where = f" (given on the command line or as {' or '.join(keys)} in the flow)" if keys else ""
        raise FlowError(f"{', '.join(unsupported)} cannot be used with --executor ray yet{where}: run without it")


async def _watch_signals(
    scheduler: Scheduler | RayExecutor, cancel_scope: anyio.CancelScope, state: dict[str, bool]
) -> None:
    """First Ctrl-C: start nothing new, give in-flight calls a moment, then cancel. Second: cancel now."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            if state.get("interrupted"):
                cancel_scope.cancel()
                return
            state["interrupted"] = True
            get_logger().warning("run.interrupted", run=scheduler.run_id, grace_s=_INTERRUPT_GRACE_S)
            scheduler.request_stop()
            cancel_scope.deadline = min(cancel_scope.deadline, anyio.current_time() + _INTERRUPT_GRACE_S)


def _as_started(
    run: RunRecord, selection: Mapping[str, Any], vars: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The selection (threads, repeats, shard) and vars a resumed run was started with: it finishes the plan it
    began, not another. An option given again must say the same; one that differs is refused, naming it."""
    stored = run.options
    shard = stored.get("shard")
    started: dict[str, Any] = {
        "repeat": stored.get("repeat"),
        "thread_filter": stored.get("thread_filter"),
        "only_threads": stored.get("only_threads"),
        "shard": tuple(int(part) for part in shard.split("/")) if isinstance(shard, str) else None,
    }
    names = {"repeat": "repeat", "thread_filter": "thread filter", "only_threads": "threads", "shard": "shard"}
    for key, given in selection.items():
        if given is None:
            continue
        as_stored = sorted(given) if key == "only_threads" else tuple(given) if key == "shard" else given
        if as_stored != started[key]:
            raise FlowError(
                f"run {run.run_id} was started with {names[key]} {started[key]!r}; a resume finishes that run as it "
                f"began, so give no other {names[key]} (got {given!r}), or start a new run"
            )
    started_vars = dict(stored.get("vars") or {})
    if vars and dict(vars) != started_vars:
        raise FlowError(
            f"run {run.run_id} was started with vars {started_vars!r}; a resume finishes that run as it began, so give"
            " the same --var values or none"
        )
    return started, started_vars


def _prepare(
    flow: str | Path | FlowSpec | None,
    run_store: RunStore | None,
    resume: str | None,
    *,
    sim: Any,
    concurrency: int | None,
    selection: Mapping[str, Any],
    vars: Mapping[str, Any] | None,
) -> tuple[FlowSpec, Plan, RunRecord, dict[str, TurnRecord], Mapping[str, Any], Mapping[str, Any] | None]:
    """Load and compile the flow (`selection`: `compile_flow`'s keyword arguments), and the run's record: a new
    one, or the one being resumed with its turns; then the selection and vars the run goes by (a resumed run's
    own, see `_as_started`)."""
    resume_records: dict[str, TurnRecord] = {}
    resumed_run: RunRecord | None = None
    if resume is not None:
        assert run_store is not None
        resumed_run = run_store.get_run(resume)  # `latest` is resolved there
        resume_records = {turn.node_id: turn for turn in run_store.turns(resumed_run.run_id)}
        selection, vars = _as_started(resumed_run, selection, vars)
        if flow is None:
            if resumed_run.flow_path is None:
                raise FlowError(f"run {resumed_run.run_id} has no flow file on record; name the flow to resume it")
            flow = resumed_run.flow_path
    if flow is None:
        raise FlowError("no flow given: name a flow file, or a run to resume")
    spec = load(flow) if isinstance(flow, str | Path) else flow
    plan = compile_flow(spec, **selection)
    if resumed_run is not None:
        resumed = resumed_run.model_copy(update={"status": "running", "ended_at": None})
        return spec, plan, resumed, resume_records, selection, vars
    run_record = RunRecord(
        run_id=new_run_id(),
        flow_path=str(spec.source_path.resolve()) if spec.source_path else None,
        description=spec.description,
        started_at=time.time(),
        simulated=bool(sim),
        options={
            "concurrency": concurrency,
            "thread_filter": selection["thread_filter"],
            "repeat": selection["repeat"],  # None: the flow's `execution.repeat`
            "only_threads": sorted(only) if (only := selection["only_threads"]) is not None else None,
            "shard": f"{shard[0]}/{shard[1]}" if (shard := selection["shard"]) is not None else None,
            "vars": dict(vars or {}),
        },
        total_turns=plan.counts.turns,
    )
    return spec, plan, run_record, resume_records, selection, vars


async def arun(
    flow: str | Path | FlowSpec | None,
    *,
    sim: Any = False,
    concurrency: int | None = None,
    thread_filter: str | None = None,
    repeat: int | None = None,
    vars: Mapping[str, Any] | None = None,
    db: str | Path | None = None,
    store: bool = True,
    resume: str | None = None,
    jsonl: str | Path | None = None,
    on_turn: TurnCallback | None = None,
    seed: int | None = None,
    handle_signals: bool = False,
    progress: bool = False,
    force: bool = False,
    replay_callers: str | None = None,
    max_cost: float | None = None,
    fail_fast: bool | None = None,
    only_threads: Collection[str] | None = None,
    shard: tuple[int, int] | None = None,
    executor: str = "local",
    workers: int | None = None,
    ray_address: str | None = None,
) -> RunResult:
    """Run a flow and return its result.

    `flow` is a path or a loaded `FlowSpec` (None with `resume`: the flow file the run was started from). `sim=True`
    (or a `rtflow.sim.SimConfig`, or its settings as a mapping) starts the simulator in this process and points
    every OpenAI provider at it. `db` moves the run store (default `.rtflow/rtflow.db` or `RTFLOW_DB`);
    `store=False` keeps nothing on disk. `resume` continues an earlier run by id (or `latest`): only turns that are
    missing, errored or skipped are run again, against the same endpoints (a resume that would switch between the
    simulator and real endpoints, or between servers, is refused unless `force`).

    `on_turn` (sync, or async: it is then awaited before `arun` returns) is called once per turn, with the turn's
    final record, never one that is `pending`: when the turn is graded (when it is answered, if it has no
    assertions; when it ends, if it ends `error` or `skipped`). Two kinds of turn are handed over only once the
    scheduler has finished, because a later record may change their verdict: turns carrying a `latency`
    assertion with `p` (judged over the whole run) and the turns of simulated dialogues (the last takes the
    dialogue's verdict; a regenerated dialogue replaces its turns). A resumed run does not hand over the turns it
    keeps from the earlier run, except pending ones, which it grades.

    `handle_signals` installs the CLI's Ctrl-C behaviour; `progress` draws a progress bar on stderr.
    `replay_callers` (a run id, or `latest`) has simulated dialogues say what that run's caller models said, turn
    for turn, instead of asking a caller model: the agent hears exactly what it heard then. `max_cost` (US dollars)
    starts no new turn once the stored answers cost that much, and `fail_fast` none once a turn has failed; the
    turns not started are recorded `skipped` with the reason (both default to the flow's `execution`).
    `only_threads` runs just the threads with these ids (`--rerun-failed`). `shard=(k, n)` runs the k-th of n
    disjoint shares of the conversations (`--shard K/N`; `rtflow merge` puts the shards' runs back together).
    `repeat` (None: the flow's `execution.repeat`) runs each conversation that many times. `executor="ray"`
    runs the conversations on `workers` Ray actors (default: one per node) of the cluster at `ray_address`
    (default: the running one, else a local one; see `rtflow.runner.ray_executor`); this process alone writes
    the run store.
    """
    if executor not in ("local", "ray"):
        raise FlowError(f"executor {executor!r}: expected local or ray")
    if executor == "ray":
        require_ray()  # before anything starts: without the extra, one line that says how to get it

    status = "crashed"
    async with AsyncExitStack() as stack:
        run_store = stack.enter_context(RunStore(db)) if store or resume or replay_callers else None
        replayed = _caller_lines(run_store, replay_callers) if replay_callers is not None else None
        # What the plan holds: the driver compiles it with these, and so does each Ray worker.
        selection: Mapping[str, Any] = {
            "repeat": repeat, "thread_filter": thread_filter, "only_threads": only_threads, "shard": shard
        }  # fmt: skip
        spec, plan, run_record, resume_records, selection, vars = _prepare(
            flow, run_store, resume, sim=sim, concurrency=concurrency, selection=selection, vars=vars
        )
        settings = _settings(spec, concurrency, seed, max_cost, fail_fast)
        if executor == "ray":
            _check_ray_can_run(spec, replay_callers, settings)
        run_id = run_record.run_id
        if resume is not None and run_store is not None:  # a second resume of the same run refuses, naming the first
            stack.enter_context(run_store.claim_run(run_id))
        # Every place the run writes to is checked before the first request (and before the simulator starts).
        artifact_dir = (run_store.path.parent if run_store else Path(".rtflow")) / "artifacts" / run_id
        ensure_writable_folder(artifact_dir.parent, "the artifacts folder")
        if jsonl is not None:
            check_output_file(Path(jsonl), "the JSONL output")
        flow_outputs = [spec.base_dir / output for output in spec.outputs]
        for output in flow_outputs:
            check_export_file(output, "the flow's `outputs`:")
        log = get_logger().bind(run=run_id)
        from rtflow.js.run_scope import js_for_run  # the bridge's modules too only when a run starts

        await stack.enter_async_context(js_for_run())  # Node starts only if a prompt, handler or check needs it
        sim_url = await stack.enter_async_context(_simulator(sim, speaks_in_time=plan.cuts_by_playback))
        if sim_url is not None:
            log.info("sim.started", base_url=sim_url)
        run_providers = build_run_providers(plan, spec, sim_url)
        stack.push_async_callback(run_providers.aclose)
        run_providers.check_ready(simulated=sim_url is not None)
        run_record = _with_endpoints(
            run_record, run_providers.providers, sim_url, run_store if resume is not None else None, force
        )
        for warning in [*spec.warnings, *plan.warnings]:  # the loader gathered the providers' own warnings too
            log.warning("flow.warning", warning=warning)
        jsonl_file = stack.enter_context(JsonlWriter(Path(jsonl))) if jsonl is not None else None
        if run_store is not None:
            run_store.start_run(run_record)
        writer = TurnWriter(run_store, jsonl_file)
        progress_bar: RunProgress | None = None
        callbacks: anyio.abc.TaskGroup | None = None

        held: dict[str, TurnRecord] = {}
        """Records a later save may still replace (see `_settles_later`), by node id: for `on_turn` at the end."""

        def deliver(record: TurnRecord) -> None:
            assert on_turn is not None
            maybe = on_turn(record)
            if inspect.isawaitable(maybe) and callbacks is not None:
                callbacks.start_soon(_await, maybe)

        def sink(record: TurnRecord) -> None:
            writer.put(record)
            if progress_bar is not None:
                progress_bar.turn(record)
            if on_turn is None or record.status == "pending":
                return  # `on_turn` gets each turn once, with its verdict: the graded record follows
            if _settles_later(plan, record):
                held[record.node_id] = record
            else:
                deliver(record)

        def deliver_held() -> None:
            """The held records, each turn's last, in plan order: nothing replaces them once the scheduler ended."""
            for record in _in_plan_order(plan, held):
                deliver(record)
            held.clear()

        scheduler: Scheduler | RayExecutor
        if executor == "ray":
            assert spec.source_path is not None  # `_check_ray_can_run`
            scheduler = RayExecutor(
                plan,
                flow_path=spec.source_path,
                compile_options=dict(selection),
                run_id=run_id,
                settings=settings,
                sink=sink,
                sim_url=sim_url,
                extra_vars=vars,
                artifact_dir=artifact_dir,
                resume_from=resume_records,
                workers=workers,
                address=ray_address,
                key_variables=run_providers.key_variables(),
                provider_limits=run_providers.concurrency_limits(),
            )
        else:
            scheduler = Scheduler(
                plan,
                run_providers.providers,
                run_id=run_id,
                settings=settings,
                sink=sink,
                grader=run_providers.grader,
                graders=run_providers.graders,
                callers=run_providers.callers,
                replay_callers=replayed,
                artifact_dir=artifact_dir,
                resume_from=resume_records,
                extra_vars=vars,
            )
        if progress:
            progress_bar = stack.enter_context(RunProgress(plan.counts.turns, lambda: scheduler.in_flight))
        started = time.monotonic()
        signal_state: dict[str, bool] = {}
        log.info("run.started", conversations=len(plan.conversations), turns=plan.counts.turns, simulated=bool(sim))
        try:
            with anyio.CancelScope() as run_scope:
                async with anyio.create_task_group() as callbacks:
                    callbacks.start_soon(writer.run)
                    if handle_signals:
                        async with anyio.create_task_group() as watching:
                            watching.start_soon(_watch_signals, scheduler, run_scope, signal_state)
                            await scheduler.run()
                            watching.cancel_scope.cancel()
                    else:
                        await scheduler.run()
                    deliver_held()
                    writer.close()
            interrupted = signal_state.get("interrupted", False) or run_scope.cancelled_caught
            status = "interrupted" if interrupted else "finished"
        except (KeyboardInterrupt, anyio.get_cancelled_exc_class()):
            status = "interrupted"
            raise
        except BaseExceptionGroup as group:
            # A task group wraps what its tasks raised; an rtflow error (the run store failing) is shown as such.
            first = first_error_in(group, RtflowError)
            if first is None:
                raise
            raise first from group
        finally:
            ended = time.time()
            writer.close()  # every record handed over is on disk before the run ends
            if run_store is not None:
                run_store.finish_run(run_id, status, ended)  # type: ignore[arg-type]
            log.info("run.finished", status=status, duration_s=round(time.monotonic() - started, 3))
    records = _in_plan_order(plan, scheduler.records)
    final = run_record.model_copy(update={"status": status, "ended_at": ended})
    result = RunResult(run=final, turns=records, plan=plan, duration_s=time.monotonic() - started)
    result.outputs_written = [
        write_export(final, records, output, summary=result.summary) for output in flow_outputs
    ]  # the run's one summary: each export would otherwise work it out again
    return result


def _settles_later(plan: Plan, record: TurnRecord) -> bool:
    """Whether a turn's record, though no longer `pending`, may be stored again with another verdict before the
    run ends: a turn judged over the whole run (`is_run_level`, re-judged once every turn is in), or a turn of a
    simulated dialogue (its last turn takes the dialogue's verdict, and a regenerated dialogue replaces the turns
    it had)."""
    conversation = plan.conversations.get(record.conversation_id)
    if conversation is None or not conversation.turns:
        return False
    turn = conversation.turns[min(record.turn_index, len(conversation.turns) - 1)]  # a dialogue is the last entry
    if turn.simulate is not None:
        return True
    return any(is_run_level(assertion) for assertion in turn.asserts)


def _caller_lines(run_store: RunStore | None, run_id: str) -> dict[str, tuple[list[str], bool]]:
    """What the caller models said in a stored run, per conversation, turn by turn, and whether each dialogue
    then ended with the caller's stop phrase."""
    assert run_store is not None
    run = run_store.get_run(run_id)
    lines: dict[str, tuple[list[str], bool]] = {}
    for turn in sorted(run_store.turns(run.run_id), key=lambda record: record.turn_index):
        if turn.dialogue is not None:
            said, _ = lines.get(turn.conversation_id, ([], False))
            lines[turn.conversation_id] = ([*said, turn.dialogue.caller], turn.dialogue.stop_reason == "phrase")
    if not lines:
        raise FlowError(f"run {run.run_id} has no simulated dialogue whose caller could be replayed")
    return lines


def _in_plan_order(plan: Plan, records: Mapping[str, TurnRecord]) -> list[TurnRecord]:
    """Each conversation's turn records in turn order; a dialogue's are the turns it generated, each recorded
    under the call node id of the turn it became."""
    ordered: list[TurnRecord] = []
    for conversation in plan.conversations.values():
        for turn_index, node_id in enumerate(conversation.primary_nodes):
            if conversation.turns[turn_index].simulate is None:
                record = records.get(node_id)
                if record is not None:
                    ordered.append(record)
                continue
            generated = turn_index
            while (record := records.get(call_node_id(conversation.id, generated))) is not None:
                ordered.append(record)
                generated += 1
    return ordered


def _blocking(async_function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """A sync twin of `async_function` with the very same typed parameters (so editors and mypy check them)."""

    @functools.wraps(async_function)
    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        if kwargs.get("handle_signals"):
            raise FlowError("handle_signals is only for the command line")
        return anyio.run(functools.partial(async_function, *args, **kwargs))

    return blocking


run = _blocking(arun)
"""`arun` for code that is not async: `rtflow.run("flows/conversation.yaml", sim=True)`; same parameters."""
