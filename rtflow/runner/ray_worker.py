"""One Ray actor of a run on Ray (`--executor ray`): rtflow's own scheduler on the batches of conversations the
driver hands it, keeping each record its conversations finish until the driver drains them.

The worker loads and compiles the flow itself (the same flow file, the same options: the same conversation ids
as the driver's plan), builds its providers once, and runs each batch in the background so that `drain`
answers while it goes. Every record it keeps is marked with the worker's name. Records of turns that finished
before (`resume`) are restored, not asked again, as a resumed run does it: a batch re-run after a worker died
replays those conversations' history and asks only what was missing.

Nothing here imports Ray: the driver wraps the class with `ray.remote`, so this module loads without the extra.
"""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

from rtflow.flow.loader import load
from rtflow.flow.spec import FlowSpec, ProviderSpec
from rtflow.js.run_scope import js_for_run
from rtflow.plan.compiler import compile_flow
from rtflow.results.records import TurnRecord
from rtflow.runner.limits import RateLimiter
from rtflow.runner.run_providers import RunProviders, build_run_providers
from rtflow.runner.scheduler import Scheduler, SchedulerSettings

__all__ = ["ConversationWorker"]


_RATE_KEYS = ("rpm", "tpm")
_CONCURRENCY_KEYS = ("max_concurrency", "maxConcurrency")


def _share_of(key: str, value: Any, share: float) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value
    if key in _RATE_KEYS:
        return value * share
    if key in _CONCURRENCY_KEYS:
        return max(1, math.floor(value * share))
    return value


def _with_rate_share(spec: FlowSpec, share: float) -> FlowSpec:
    """The flow with every provider's `rpm`, `tpm` and `max_concurrency` cut to this worker's share of them (a
    concurrency share is at least one call)."""
    if share >= 1.0:
        return spec

    def shared(provider: ProviderSpec) -> ProviderSpec:
        config = {key: _share_of(key, value, share) for key, value in provider.config.items()}
        return provider.model_copy(update={"config": config, "fallback": [shared(f) for f in provider.fallback]})

    copy = spec.model_copy(update={"providers": [shared(provider) for provider in spec.providers]})
    return copy


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
        artifact_root: str,
    ) -> None:
        self.name = name
        self.run_id = run_id
        self.settings = settings
        self.sim_url = sim_url
        self.extra_vars = extra_vars
        self.artifact_root = Path(artifact_root)
        options = dict(compile_options)
        share = float(options.pop("rate_share", 1.0))
        self.spec = _with_rate_share(load(flow_path), share)
        self.plan = compile_flow(self.spec, **options)
        self._providers: RunProviders | None = None
        self._finished: list[TurnRecord] = []
        self._schedulers: set[Scheduler] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failures: list[str] = []
        self._rate_limits: dict[str, RateLimiter] = {}
        """One set of rate buckets for all this worker's batches (its share of the flow's `rpm`/`tpm`)."""

    def _providers_for_run(self) -> RunProviders:
        if self._providers is None:
            self._providers = build_run_providers(self.plan, self.spec, self.sim_url)
            self._providers.check_ready(simulated=self.sim_url is not None)
        return self._providers

    def _keep(self, record: TurnRecord) -> None:
        self._finished.append(record.model_copy(update={"worker": self.name}))

    async def run_batch(self, conversation_ids: list[str], resume: list[TurnRecord]) -> None:
        """Start these conversations (in the background) and return at once."""
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
            artifact_dir=self.artifact_root,
            resume_from={record.node_id: record for record in resume},
            extra_vars=self.extra_vars,
            rate_limits=self._rate_limits,
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

    async def drain(self) -> tuple[list[TurnRecord], int, int, list[str]]:
        """The records finished since the last drain, the batches still running, the calls in flight, and what
        went wrong in a batch since the last drain."""
        finished, self._finished = self._finished, []
        failures, self._failures = self._failures, []
        in_flight = sum(scheduler.in_flight for scheduler in self._schedulers)
        return finished, len(self._tasks), in_flight, failures

    async def stop(self) -> None:
        """Start nothing new in any batch; what is running finishes and is drained as usual."""
        for scheduler in self._schedulers:
            scheduler.request_stop()

    async def close(self) -> None:
        if self._providers is not None:
            await self._providers.aclose()
