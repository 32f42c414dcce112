"""Every provider a run calls, built from its flow and plan: the providers of the conversations, the graders that
model-graded assertions name (and the flow's own grader when one needs it), and simulated callers' models and
voices. Built the same way in the process that runs the plan, whether that is the only one or a Ray worker.

With the simulator (`sim_url`), every OpenAI provider is pointed at it with the simulator's key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtflow.errors import FlowError, ProviderError
from rtflow.flow.assertion_types import grader_key, is_model_graded
from rtflow.flow.spec import FlowSpec, ProviderSpec
from rtflow.log import register_secret
from rtflow.plan.graph import Plan
from rtflow.providers.base import Provider
from rtflow.providers.registry import create_provider
from rtflow.runner.dialogue import caller_key

__all__ = ["DEFAULT_GRADER", "SIM_API_KEY", "RunProviders", "build_run_providers", "provider_for"]

DEFAULT_GRADER = "openai:chat:gpt-4.1-mini"
"""The grader of model-graded assertions when neither the assertion nor the flow names one (promptfoo's choice)."""
SIM_API_KEY = "sk-sim-local"
_KEY_ENV_KEYS = ("api_key_env", "api_key_envar")


def provider_for(spec: ProviderSpec, base_dir: Path, sim_url: str | None) -> Provider:
    info = spec.to_info(base_dir)
    if sim_url is not None and info.id.startswith("openai:"):
        config = {**info.config, "api_base_url": sim_url, "api_key": SIM_API_KEY}
        info = dataclasses.replace(info, config=config)
    register_secret(info.config.get("api_key"))
    return create_provider(info)


def _check_ready(provider: Provider, *, simulated: bool) -> None:
    try:
        provider.check_ready()
    except ProviderError as exc:
        hint = "" if simulated else "; or run with --sim (sim=True) to use the local simulator"
        raise FlowError(f"{exc}{hint}") from exc


def _graders_named(plan: Plan) -> tuple[dict[str, Any], bool]:
    """The graders model-graded assertions name (by `grader_key`), and whether any needs the flow's own."""
    named: dict[str, Any] = {}
    needs_default = False
    for conversation in plan.conversations.values():
        for turn in conversation.turns:
            if turn.simulate is not None and (
                turn.simulate.caller_check or any(stop.judge is not None for stop in turn.simulate.stop)
            ):
                needs_default = True  # a judge stop, and the caller check, ask the flow's grader
            for assertion in turn.asserts:
                if not is_model_graded(assertion.type):
                    continue
                key = grader_key(assertion.provider)
                if key is None:
                    needs_default = True
                else:
                    named.setdefault(key, assertion.provider)
    return named, needs_default


@dataclass
class RunProviders:
    """The providers of one run, by role. Close them with `aclose` when the run ends."""

    providers: dict[str, Provider]
    """By provider label: those the conversations call."""
    grader: Provider | None = None
    """The flow's grader, when some assertion, judge or caller check needs it."""
    graders: dict[str, Provider] = field(default_factory=dict)
    """Graders that assertions name themselves, by `grader_key`."""
    callers: dict[str, Provider] = field(default_factory=dict)
    """Simulated callers' models and voices, by `caller_key`."""

    def all(self) -> list[Provider]:
        return [
            *self.providers.values(),
            *self.graders.values(),
            *([self.grader] if self.grader is not None else []),
            *self.callers.values(),
        ]

    async def aclose(self) -> None:
        for provider in self.all():
            await provider.aclose()

    def concurrency_limits(self) -> set[int]:
        """The `max_concurrency` limits of the providers the conversations call (those that have one): the ones
        the scheduler shares among Ray workers (a grader's or a caller's limit is each worker's own)."""
        return {limit for provider in self.providers.values() if (limit := provider.max_concurrency) is not None}

    def key_variables(self) -> set[str]:
        """The environment variables the providers' `api_key_env` names (in either of its snake-case spellings,
        as `ProviderSpec.to_info` leaves the config's keys: see `rtflow.providers.config`)."""
        names = (provider.info.config.get(key) for provider in self.all() for key in _KEY_ENV_KEYS)
        return {name for name in names if isinstance(name, str)}

    def check_ready(self, *, simulated: bool) -> None:
        """A missing key (or the like) is one clear `FlowError` before any request, naming the provider and, off
        the simulator, `--sim`."""
        for provider in self.all():
            _check_ready(provider, simulated=simulated)


def build_run_providers(plan: Plan, spec: FlowSpec, sim_url: str | None) -> RunProviders:
    """Every provider the run of `plan` calls. Nothing is connected yet; hold `aclose` before `check_ready`."""
    base_dir = spec.base_dir
    built = RunProviders(providers={label: provider_for(p, base_dir, sim_url) for label, p in plan.providers.items()})
    named, needs_default = _graders_named(plan)
    for key, value in named.items():
        built.graders[key] = provider_for(ProviderSpec.model_validate(value), base_dir, sim_url)
    if needs_default:
        built.grader = provider_for(spec.grader or ProviderSpec(id=DEFAULT_GRADER), base_dir, sim_url)
    for conversation in plan.conversations.values():
        for turn in conversation.turns:
            if turn.simulate is None:
                continue
            speakers = [turn.simulate.voice.speaker()] if turn.simulate.voice is not None else []
            for caller_spec in [turn.simulate.caller, *speakers]:  # the caller's model, and its voice
                key = caller_key(caller_spec)
                if key not in built.callers:
                    built.callers[key] = provider_for(caller_spec, base_dir, sim_url)
    return built
