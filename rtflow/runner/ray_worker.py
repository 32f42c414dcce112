"""One Ray actor of a run on Ray (`--executor ray`): rtflow's own scheduler on the batches of conversations the
driver hands it, keeping each record its conversations finish until the driver drains them.

The worker loads and compiles the flow itself (the same flow file, the same options: the same conversation ids
as the driver's plan), builds its providers once, and runs each batch in the background so that `drain`
answers while it goes. Every record it keeps is marked with the worker's name. Records of turns that finished
before (`resume`) are restored, not asked again, as a resumed run does it: a batch re-run after a worker died
replays those conversations' history and asks only what was missing.

Limits: the worker runs its part of the run's concurrency limits (`set_part`, changed by the driver as
workers run out of work), and spends the run's `rpm`/`tpm` from the rate ledger's leases (`rate_leases`); a
`Retry-After` it receives pauses the key on every worker through the ledger.

Nothing here imports Ray: the driver wraps the class with `ray.remote`, so this module loads without the extra.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from rtflow.flow.loader import load
from rtflow.js.run_scope import js_for_run
from rtflow.log import CollectedEvent, collect_events
from rtflow.plan.compiler import compile_flow
from rtflow.results.records import TurnRecord
from rtflow.runner.limits import RateLimiter
from rtflow.runner.rate_leases import Lease, LeasedRateLimiter
from rtflow.runner.run_providers import RunProviders, build_run_providers
from rtflow.runner.scheduler import Scheduler, SchedulerSettings

__all__ = ["ConversationWorker", "Drained"]


@dataclasses.dataclass(frozen=True)
class Drained:
    """What a worker hands the driver at each drain."""

    records: list[TurnRecord]
    """Turn records finished since the last drain, each marked with the worker's name."""
    batches: int
    """Batches still running."""
    in_flight: int
    """Provider calls in flight right now."""
    failures: list[str]
    """What went wrong in a batch (an exception that ended it) since the last drain."""
    events: list[CollectedEvent]
    """What the worker logged since the last drain, for the driver to log under the worker's name."""


class ConversationWorker:
    """The body of a Ray actor: `run_batch` starts a batch, `drain` hands over what finished, `stop` asks every
    batch to start nothing new."""

    def __init__(
        self,
        name: str,
        flow_path: str,
        compile_options: dict[str, Any],
        run_id: str,
        settings: SchedulerSettings,
        sim_url: str | None,
        extra_vars: dict[str, Any],
        artifact_dir: str,
        ledger: Any,
        log_level: int,
    ) -> None:
        self._events = collect_events(log_level)
        """What this worker logged since the last drain: the driver logs it under the worker's name."""
        self.name = name
        self.run_id = run_id
        self.settings = settings
        self.sim_url = sim_url
        self.extra_vars = extra_vars
        self.artifact_dir = Path(artifact_dir)
        self.spec = load(flow_path)
        self.plan = compile_flow(self.spec, **compile_options)
        self._ledger = ledger
        """The run's rate ledger (a Ray actor handle): leases of `rpm`/`tpm`, pauses for every worker."""
        self._providers: RunProviders | None = None
        self._finished: list[TurnRecord] = []
        self._schedulers: set[Scheduler] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: list[str] = []
        self._rate_limits: dict[str, RateLimiter] = {}
        """One leasing limiter per provider key, for all this worker's batches."""

    def _providers_for_run(self) -> RunProviders:
        if self._providers is None:
            self._providers = build_run_providers(self.plan, self.spec, self.sim_url)
            self._providers.check_ready(simulated=self.sim_url is not None)
            for provider in self._providers.providers.values():
                key = provider.concurrency_key
                if key not in self._rate_limits:  # every key: a pause must reach keys without a limit too
                    rpm, tpm = provider.per_minute_limits
                    self._rate_limits[key] = LeasedRateLimiter(
                        key, rpm, tpm, lease=self._lease, report_pause=self._report_pause, share=self._share
                    )
        return self._providers

    def _share(self) -> float:
        """This worker's part of a limit as the run's limits are shared now (one of n busy workers)."""
        return 1.0 / self.settings.part[1]

    async def _lease(self, key: str, rpm: float | None, tpm: float | None, requests: float, tokens: float) -> Lease:
        lease: Lease = await self._ledger.lease.remote(key, rpm, tpm, requests, tokens)
        return lease

    def _report_pause(self, key: str, seconds: float) -> None:
        self._ledger.pause.remote(key, seconds, self.name)  # the ledger tells the others; nothing to wait for

    async def pause_key(self, key: str, seconds: float) -> None:
        """Another worker got a `Retry-After` (or an exhausted budget) for `key`: hold it here too."""
        limiter = self._rate_limits.get(key)
        if isinstance(limiter, LeasedRateLimiter):
            limiter.pause_here(seconds)

    async def set_part(self, part: tuple[int, int]) -> None:
        """Run part `(i, n)` of the run's concurrency limits, in the running batches and the next ones."""
        self.settings = dataclasses.replace(self.settings, part=part)
        for scheduler in self._schedulers:
            scheduler.reshare(part)

    def _keep(self, record: TurnRecord) -> None:
        self._finished.append(record.model_copy(update={"worker": self.name}))

    async def run_batch(self, conversation_ids: list[str], resume: list[TurnRecord], part: tuple[int, int]) -> None:
        """Start these conversations (in the background) on part `part` of the run's concurrency limits, and
        return at once."""
        await self.set_part(part)
        providers = self._providers_for_run()
        scheduler = Scheduler(
            self.plan.only(conversation_ids),
            providers.providers,
            run_id=self.run_id,
            settings=self.settings,
            sink=self._keep,
            grader=providers.grader,
            graders=providers.graders,
            callers=providers.callers,
            artifact_dir=self.artifact_dir,
            resume_from={record.node_id: record for record in resume},
            extra_vars=self.extra_vars,
            rate_limits=self._rate_limits,
            judges_the_run=False,
        )
        self._schedulers.add(scheduler)
        task = asyncio.get_running_loop().create_task(self._run(scheduler))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, scheduler: Scheduler) -> None:
        try:
            async with js_for_run():
                await scheduler.run()
        except Exception as exc:  # the driver reports it; the worker goes on with its other batches
            self._failures.append(f"{self.name}: {type(exc).__name__}: {exc}")
        finally:
            self._schedulers.discard(scheduler)

    async def ready(self) -> str:
        """Answers once the worker has loaded the flow and its providers are ready (a missing key, a flow file the
        worker cannot read: the error surfaces here, before any request)."""
        self._providers_for_run()
        return self.name

    async def drain(self) -> Drained:
        """What happened since the last drain: see `Drained`."""
        finished, self._finished = self._finished, []
        failures, self._failures = self._failures, []
        count = len(self._events)  # the list itself stays (the log pipeline appends to it): take what is there
        events = self._events[:count]
        del self._events[:count]
        in_flight = sum(scheduler.in_flight for scheduler in self._schedulers)
        return Drained(finished, len(self._tasks), in_flight, failures, events)

    async def stop(self) -> None:
        """Start nothing new in any batch; what is running finishes and is drained as usual."""
        for scheduler in self._schedulers:
            scheduler.request_stop()

    async def close(self) -> None:
        if self._providers is not None:
            await self._providers.aclose()
