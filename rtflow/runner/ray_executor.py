"""A run on a Ray cluster (`rtflow run FLOW --executor ray`): the plan's conversations, which share nothing, are
handed out in batches to long-lived async actors that each run rtflow's own scheduler; the driver alone writes
the run store.

- **Batches.** The conversations are cut, in plan order, into a few batches per worker (`_BATCHES_PER_WORKER`);
  a worker runs one batch at a time and gets the next as soon as it ends: fast and slow shares even out.
- **Records.** The driver drains each worker every `_DRAIN_S` seconds (a worker keeps what finished since the
  last drain) and hands every record to the run's sink at once, so the store holds every finished turn however
  the run ends, and `--resume` works as for a local run.
- **Limits.** The run's `concurrency` and each provider's `max_concurrency` are shared among the busy workers
  (each gets an equal part, at least one call, so no more workers start than the smallest limit) and shared again
  whenever a worker runs out of work or a lost worker's batch starts elsewhere. `rpm`/`tpm` are not divided: one
  rate-limit actor (`RateLedger`) holds each key's buckets and the workers lease from it in small batches; a
  `Retry-After` pauses the key on every worker.
  Run-level assertions (`latency` with `p`) are judged here, over every worker's turns.
- **Retries.** Ray's own actor restarts and task retries are off: rtflow retries calls itself, and a paid call
  must not run twice behind its back. A worker that dies has the conversations of its running batches re-run
  on another worker, with the turns already stored restored rather than asked again (history replayed).
- **Stopping.** `request_stop` (Ctrl-C) asks every worker to start nothing new; what is running ends and is
  drained; the caller's cancel scope bounds how long that may take.
- **Logs.** A worker keeps what it logs (at the driver's level) and hands it over at each drain; the driver logs
  it under the worker's name (`worker=worker-N`).
- **Files.** The flow's folder reaches the workers as Ray's `working_dir`, so prompts, handlers and clips are
  where the flow names them; a worker that cannot load the flow fails the run with one clear error before any
  request.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import anyio

from rtflow.errors import FlowError, RtflowError
from rtflow.log import current_level, get_logger, log_collected
from rtflow.plan.graph import Plan
from rtflow.results.records import TurnRecord
from rtflow.runner.run_verdicts import judged_over_the_run
from rtflow.runner.scheduler import SchedulerSettings, restorable

__all__ = ["INSTALL_HINT", "RAY_NAMESPACE", "RayExecutor", "require_ray"]

RAY_NAMESPACE = "rtflow"
INSTALL_HINT = 'the Ray executor needs the ray extra: pip install "rtflow[ray]"'
_BATCHES_PER_WORKER = 4
_DRAIN_S = 0.1
_FORWARDED_PREFIXES = ("OPENAI_", "AZURE_OPENAI_", "RTFLOW_")
_EXCLUDED_FILES = [".rtflow", ".git", "**/__pycache__", "*.db", "*.db-wal", "*.db-shm", "node_modules"]
"""What the flow's folder sends to the workers without: run stores, VCS data, caches."""


_Lose = Callable[[int, Exception], None]
"""What the driver does with a worker that died: `(its index, the error)`."""


def require_ray() -> Any:
    """The `ray` module, or a `FlowError` with the install line (exit 2 at the command line)."""
    try:
        import ray
    except ImportError:
        raise FlowError(INSTALL_HINT) from None
    return ray


def _cause(exc: Exception) -> Exception:
    """What a worker raised, as rtflow's own error when it was one (Ray wraps it with the remote traceback)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, RtflowError):
        return cause
    first_line = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return FlowError(f"a Ray worker failed: {first_line}")


def _batches(conversation_ids: list[str], workers: int) -> list[list[str]]:
    size = max(1, math.ceil(len(conversation_ids) / (workers * _BATCHES_PER_WORKER)))
    return [conversation_ids[start : start + size] for start in range(0, len(conversation_ids), size)]


class RayExecutor:
    """Runs a plan on Ray: `await run()`, then read `records` (like a `Scheduler`, which each worker runs)."""

    def __init__(
        self,
        plan: Plan,
        *,
        flow_path: Path,
        compile_options: dict[str, Any],
        run_id: str,
        settings: SchedulerSettings,
        sink: Callable[[TurnRecord], None],
        sim_url: str | None,
        extra_vars: Mapping[str, Any] | None,
        artifact_dir: Path,
        resume_from: Mapping[str, TurnRecord] | None,
        workers: int | None,
        address: str | None,
        key_variables: Collection[str] = (),
        provider_limits: Collection[int] = (),
    ) -> None:
        self.plan = plan
        self.flow_path = flow_path
        self.compile_options = compile_options
        self.run_id = run_id
        self.settings = settings
        self.sink = sink
        self.sim_url = sim_url
        self.extra_vars = dict(extra_vars or {})
        self.artifact_dir = artifact_dir
        self.key_variables = key_variables
        self.resume_from = dict(resume_from or {})
        self.workers = workers
        self.provider_limits = provider_limits
        """The providers' `max_concurrency` limits: no more workers start than the smallest allows."""
        self.address = address
        self.records: dict[str, TurnRecord] = {
            node_id: record for node_id, record in self.resume_from.items() if restorable(record)
        }
        """The latest record of every turn that reached one, keyed by the turn's primary node id: those a resumed
        run keeps (its workers restore them without a record), then what the workers drain."""
        self.in_flight = 0
        """Calls in flight across the workers, as of the last drains."""
        self._stopping = False
        self._actors: list[Any] = []
        self._ledger: Any = None
        self.leases = 0
        """Rate leases the workers asked the ledger for, counted when the run ends."""
        self._log = get_logger()

    def request_stop(self) -> None:
        self._stopping = True
        for actor in self._actors:
            actor.stop.remote()

    def _forwarded_environment(self) -> dict[str, str]:
        """The variables the workers' providers read (OpenAI's own names, and those `api_key_env` names; `{{
        env.NAME }}` references were rendered at load): workers start from their node's environment, not this one."""
        names = {name for name in os.environ if name.startswith(_FORWARDED_PREFIXES)} | set(self.key_variables)
        return {name: os.environ[name] for name in sorted(names) if name in os.environ}

    def _connect(self, ray: Any) -> None:
        if ray.is_initialized():
            return
        base_dir = self.plan.flow.base_dir
        runtime_env = {
            "working_dir": str(base_dir),
            "excludes": _EXCLUDED_FILES,
            "env_vars": self._forwarded_environment(),
        }
        options: dict[str, Any] = {
            "runtime_env": runtime_env,
            "namespace": RAY_NAMESPACE,  # workers are named `rtflow-RUN-worker-N` there, for `ray list actors`
            "log_to_driver": False,
            "logging_level": "warning",
        }
        if self.address not in (None, "auto"):
            ray.init(address=self.address, **options)
            return
        try:
            ray.init(address="auto", **options)
        except ConnectionError:  # no cluster running here: start a local one for this run
            ray.init(include_dashboard=False, **options)

    def _start_workers(self, ray: Any) -> None:
        from rtflow.runner.rate_leases import RateLedger
        from rtflow.runner.ray_worker import ConversationWorker

        nodes = sum(1 for node in ray.nodes() if node.get("Alive"))
        # Each busy worker runs at least one call of every limit (its part is never zero, or its conversations could
        # not run): more workers than the smallest limit would exceed that limit together.
        wanted = self.workers or max(1, nodes)
        count = min(wanted, self.settings.concurrency, *self.provider_limits)
        if count < wanted:
            self._log.warning(
                "ray.fewer_workers",
                workers=count,
                asked=wanted,
                reason=f"each worker runs at least one call, and the smallest concurrency limit is {count}",
            )
        relative_flow = self.flow_path.resolve().relative_to(self.plan.flow.base_dir.resolve())
        self._ledger = (
            ray.remote(RateLedger)
            .options(name=f"rtflow-{self.run_id}-rate-ledger", max_restarts=0, max_task_retries=0, num_cpus=0)
            .remote()
        )
        remote = ray.remote(ConversationWorker)
        for index in range(1, count + 1):
            name = f"worker-{index}"
            actor = remote.options(
                name=f"rtflow-{self.run_id}-{name}",
                max_restarts=0,  # rtflow owns retries: a paid call must never run twice behind its back
                max_task_retries=0,
                max_concurrency=1000,
                num_cpus=0,
                scheduling_strategy="SPREAD",
            ).remote(
                name,
                str(relative_flow),
                self.compile_options,
                self.run_id,
                dataclasses.replace(self.settings, part=(index - 1, count)),
                self.sim_url,
                self.extra_vars,
                str(self.artifact_dir),
                self._ledger,
                current_level(),
            )
            self._actors.append(actor)
        self._ledger.register.remote({f"worker-{index + 1}": actor for index, actor in enumerate(self._actors)})

    def _take(self, records: list[TurnRecord]) -> None:
        for record in records:
            self.records[record.node_id] = record
            self.sink(record)

    def _resume_records(self, conversation_ids: list[str]) -> list[TurnRecord]:
        """What is already stored of these conversations (from before a resume, or before a worker died)."""
        wanted = set(conversation_ids)
        known = {**self.resume_from, **self.records}
        return [record for record in known.values() if record.conversation_id in wanted]

    async def run(self) -> dict[str, TurnRecord]:
        ray = require_ray()
        self._connect(ray)
        self._start_workers(ray)
        try:
            await self._check_workers(ray)
            await self._drive(ray)
        finally:
            with anyio.CancelScope(shield=True):
                await self._drain_all(ray)
                await self._close_workers(ray)
        if not self._stopping:
            self._take(judged_over_the_run(self.plan, self.records))
        return self.records

    async def _check_workers(self, ray: Any) -> None:
        """Every worker loaded the flow and built its providers, before any request: else one clear error."""
        for actor in self._actors:
            try:
                await actor.ready.remote()
            except ray.exceptions.RayError as exc:
                raise _cause(exc) from None

    async def _drive(self, ray: Any) -> None:
        queue = _batches(list(self.plan.conversations), len(self._actors))
        running: dict[int, list[str] | None] = dict.fromkeys(range(len(self._actors)))
        """Each live worker's batch (None: idle); a worker that dies leaves this map."""

        def lose(index: int, exc: Exception) -> None:
            """A worker died (killed, its node lost): its batch goes back to the front of the queue, to be re-run
            on the others from what is stored."""
            lost = running.pop(index)
            self._log.warning("worker.lost", worker=f"worker-{index + 1}", error=str(exc))
            self._ledger.forget.remote(f"worker-{index + 1}")
            if not running:
                raise FlowError(f"every Ray worker of run {self.run_id} died (last: {exc})") from None
            if lost is not None:
                queue.insert(0, lost)

        shared_among: list[int] = list(running)
        """The busy workers the concurrency limits were last shared among (each has the part of its place)."""
        while True:
            starting = [index for index in running if running[index] is None]
            starting = starting[: 0 if self._stopping else len(queue)]
            for index in starting:
                running[index] = queue.pop(0)
            busy = [index for index, batch in running.items() if batch is not None]
            parts = {index: (place, len(busy)) for place, index in enumerate(busy)}
            if busy and busy != shared_among:
                shared_among = busy
                for index in busy:  # the busy ones first shrink (or grow), then the new batches start
                    if index not in starting:
                        await self._tell(ray, index, "set_part", parts[index], lose=lose)
            for index in starting:
                batch = running.get(index)
                if batch is not None:
                    resume = self._resume_records(batch)
                    await self._tell(ray, index, "run_batch", batch, resume, parts[index], lose=lose)
            self.in_flight = 0
            for index in list(running):
                try:
                    drained = await self._actors[index].drain.remote()
                except ray.exceptions.RayActorError as exc:  # the worker is gone: only then is its batch re-run
                    lose(index, exc)
                    continue
                except ray.exceptions.RayTaskError as exc:
                    raise _cause(exc) from None
                log_collected(drained.events, worker=f"worker-{index + 1}")
                self._take(drained.records)
                self.in_flight += drained.in_flight
                if drained.failures:
                    raise FlowError(f"a batch failed on Ray {drained.failures[0]}")
                if not drained.batches:
                    running[index] = None
            if all(batch is None for batch in running.values()) and (not queue or self._stopping):
                return
            await anyio.sleep(_DRAIN_S)

    async def _tell(self, ray: Any, index: int, method: str, *args: Any, lose: _Lose) -> None:
        """Call a worker's `method`; a worker that died is lost (its batch goes back to the queue)."""
        try:
            await getattr(self._actors[index], method).remote(*args)
        except ray.exceptions.RayActorError as exc:
            lose(index, exc)
        except ray.exceptions.RayTaskError as exc:
            raise _cause(exc) from None

    async def _close_workers(self, ray: Any) -> None:
        """Close each worker's providers (their sessions and connections), then end it, and the ledger."""
        for actor in self._actors:
            with contextlib.suppress(ray.exceptions.RayError):  # a dead worker has nothing left to close
                await actor.close.remote()
            ray.kill(actor, no_restart=True)
        if self._ledger is not None:
            with contextlib.suppress(ray.exceptions.RayError):
                self.leases = await self._ledger.lease_count.remote()
                self._log.info("rate.leases", run=self.run_id, leases=self.leases)
            ray.kill(self._ledger, no_restart=True)

    async def _drain_all(self, ray: Any) -> None:
        for index, actor in enumerate(self._actors):
            try:
                drained = await actor.drain.remote()
            except ray.exceptions.RayError:
                continue
            log_collected(drained.events, worker=f"worker-{index + 1}")
            self._take(drained.records)
