"""A conversation written while it runs: `simulate:` in a thread, a model playing the caller with a goal.

    threads:
      refund:
        - simulate:
            caller: openai:chat:gpt-4.1-mini
            persona: A customer who bought a kettle that does not heat
            goal: Get a refund for order {{ order }}. Make sure the amount is confirmed.
            max_turns: 6
            stop: [{phrase: "###STOP###"}, {tool_called: issue_refund}, {judge: the refund is confirmed}]
          vars: {order: A-1234}
          assert:
            - {type: goal-met}
            - {type: turns, value: {max: 6}}

The entry is the thread's last: scripted turns may come before it, and the caller hears them as part of the
conversation. `persona` and `goal` are templates over the thread's vars. The dialogue stops at the first stop
condition met, checked in this order: the caller says the stop phrase (before its line reaches the agent), the
agent called the tool, the judge says the condition holds (asked after each agent turn), `max_turns` agent turns,
`max_duration`. Reaching `max_turns` or `max_duration` fails the conversation unless `limit_passes: true`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from rtflow.durations import Duration
from rtflow.flow.spec.base import _SpecModel
from rtflow.flow.spec.providers import ProviderSpec

__all__ = [
    "DEFAULT_CALLER",
    "DEFAULT_SPEAKER",
    "DEFAULT_STOP_PHRASE",
    "SIMULATED_USER",
    "CallerVoiceSpec",
    "SimulateSpec",
    "StopSpec",
    "is_simulated_user",
    "simulated_user_as_simulate",
]

DEFAULT_STOP_PHRASE = "###STOP###"
DEFAULT_CALLER = "openai:chat:gpt-4.1-mini"
"""The caller's model when a flow names none (promptfoo's simulated user has no model setting of its own)."""
SIMULATED_USER = "promptfoo:simulated-user"


def is_simulated_user(provider: Any) -> bool:
    """Whether a test's `provider` is promptfoo's simulated user (`promptfoo:simulated-user`, or `{id: ...}`)."""
    provider_id = provider.get("id") if isinstance(provider, dict) else provider
    return provider_id == SIMULATED_USER


def simulated_user_as_simulate(config: dict[str, Any]) -> dict[str, Any]:
    """promptfoo's simulated-user config as a `simulate:` entry. promptfoo gives one text for who the user is and
    what they want (`instructions`, in the config or, as its docs show, in `vars.instructions`): it is both the
    persona and the goal here; `maxTurns` is `max_turns`; promptfoo's user ends with `###STOP###`, and reaching
    the turn limit is not a failure there, so it is not here either."""
    simulate: dict[str, Any] = {
        "persona": config.get("instructions", "{{ instructions }}"),
        "goal": config.get("instructions", "{{ instructions }}"),
        "limit_passes": True,
    }
    if "maxTurns" in config or "max_turns" in config:
        simulate["max_turns"] = config.get("maxTurns", config.get("max_turns"))
    if "caller" in config:
        simulate["caller"] = config["caller"]
    return simulate


class StopSpec(_SpecModel):
    """One way a simulated conversation ends: exactly one of `phrase`, `tool_called`, `judge`."""

    phrase: str | None = Field(default=None, min_length=1)
    """The caller says this (its line is then not sent to the agent)."""
    tool_called: str | None = Field(default=None, min_length=1, alias="tool-called")
    """The agent called this tool."""
    judge: str | None = Field(default=None, min_length=1)
    """The grader, asked after each agent turn, says this holds for the conversation so far."""

    @model_validator(mode="after")
    def _exactly_one(self) -> StopSpec:
        given = [name for name in ("phrase", "tool_called", "judge") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("a stop condition is exactly one of phrase, tool-called, judge")
        return self

    @property
    def kind(self) -> Literal["phrase", "tool", "judge"]:
        """The stop reason this condition gives."""
        return "phrase" if self.phrase is not None else "tool" if self.tool_called is not None else "judge"


DEFAULT_SPEAKER = "openai:tts:gpt-4o-mini-tts"


class CallerVoiceSpec(_SpecModel):
    """The caller speaks its lines: text to speech, sent to the agent as the user's input audio."""

    provider: ProviderSpec = Field(default_factory=lambda: ProviderSpec(id=DEFAULT_SPEAKER))
    """The text-to-speech model (`openai:tts:gpt-4o-mini-tts`, or `{id, config}`)."""
    voice: str | None = None
    """The voice (`alloy`, `marin`, ...); the provider's own `voice` when not given."""
    speed: float | None = Field(default=None, ge=0.25, le=4.0)
    """How fast the caller speaks (0.25 to 4)."""

    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if data is True:
            return {}
        return {"provider": data} if isinstance(data, str) else data

    def speaker(self) -> ProviderSpec:
        """The text-to-speech provider with this voice and speed in its config."""
        config = dict(self.provider.config)
        if self.voice is not None:
            config["voice"] = self.voice
        if self.speed is not None:
            config["speed"] = self.speed
        return self.provider.model_copy(update={"config": config})


class SimulateSpec(_SpecModel):
    """A model plays the caller, with a persona and a goal, until a stop condition."""

    caller: ProviderSpec = Field(default_factory=lambda: ProviderSpec(id=DEFAULT_CALLER))
    """The caller's model: a chat provider (`openai:chat:gpt-4.1-mini` by default, or `{id, config}`)."""
    persona: str = "A caller."
    """Who the caller is (a template over the thread's vars)."""
    goal: str = Field(min_length=1)
    """What the caller wants from the conversation (a template over the thread's vars)."""
    first: Literal["caller", "agent"] = "caller"
    """Who speaks first."""
    max_turns: int = Field(default=10, ge=1, le=1000)
    """The most agent turns the dialogue may take."""
    max_duration: Duration | None = None
    """A backstop on the dialogue's wall time (`2m`)."""
    limit_passes: bool = False
    """Whether ending at `max_turns` or `max_duration` is acceptable (by default it fails the conversation)."""
    stop: list[StopSpec] = Field(default_factory=lambda: [StopSpec(phrase=DEFAULT_STOP_PHRASE)])
    """The stop conditions (by default the caller's `###STOP###`)."""
    voice: CallerVoiceSpec | None = None
    """Speak the caller's lines into the agent's session as audio (`voice: true`, a TTS provider id, or
    `{provider, voice, speed}`), so the agent hears a caller rather than reads one."""
    caller_check: bool = True
    """After the dialogue, check that the caller kept to its persona and goal and never spoke as the agent; a
    caller that did not makes the conversation a caller error (the caller's fault, not the agent's)."""
    regenerate: int = Field(default=0, ge=0, le=10)
    """Run a dialogue whose caller failed the check again, up to this many times."""

    @model_validator(mode="before")
    @classmethod
    def _stop_as_list(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("stop"), dict | str):
            stop = data["stop"]
            data = {**data, "stop": [{"phrase": stop} if isinstance(stop, str) else stop]}
        return data

    @property
    def stop_phrase(self) -> str:
        """The phrase the caller is told to say when done (the first `phrase` condition, or the default)."""
        return next((stop.phrase for stop in self.stop if stop.phrase is not None), DEFAULT_STOP_PHRASE)
