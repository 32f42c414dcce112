"""What a run of a plan will cost, before it runs (`rtflow validate --estimate`).

For each conversation and each of its turns, the primary provider gets one request whose input is the whole
conversation so far (the rendered prompt, the earlier turns' messages and answers), as Realtime sessions and
Chat Completions both bill it, and whose output is one answer. The prompt is rendered, and the history built,
exactly as the run does it (`rtflow.runner.history`), with stand-in answers. Tokens come from a stated rule,
never a guess dressed up as a count:

- text is counted as about four characters a token (OpenAI's rule of thumb for English); against the simulator
  (`--sim`) as its whitespace-separated words, which is how the simulator counts;
- a turn's input audio clip (`vars.audio`) adds its seconds at ten tokens a second (a token per 100 ms);
- an answer is `answer_tokens` long, unless an earlier run is given (`--from-run`): then each turn's answer is
  as long as that run's answer to the same turn, or that provider's mean answer there.

A simulated dialogue is priced at its most, `max_turns` exchanges (how long it runs is known only then), its
caller model's requests under that model. Not counted: fallbacks (they run only when the primary fails),
retries and model-graded assertions. Prices come from the price table (`rtflow.providers.pricing`); a model it
does not know has no cost.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rtflow.audio.files import AudioFileError, clip_seconds, vars_audio_path
from rtflow.errors import RtflowError
from rtflow.flow.prompts import render_prompt
from rtflow.flow.spec.dialogue import SimulateSpec
from rtflow.js.run_scope import js_for_run
from rtflow.messages import Message, Usage, approximate_tokens
from rtflow.plan.graph import Conversation, Plan
from rtflow.providers.base import ProviderInfo
from rtflow.providers.pricing import PRICES_AS_OF, cost_of
from rtflow.results.records import TurnRecord
from rtflow.runner.history import ConversationHistory

__all__ = ["DEFAULT_ANSWER_TOKENS", "Estimate", "ProviderEstimate", "estimate_plan"]

DEFAULT_ANSWER_TOKENS = 100
"""The answer length assumed when no earlier run says better: a few sentences."""

_AUDIO_TOKENS_PER_SECOND = 10


def _tokens_by_words(text: str) -> int:
    return len(text.split())


@dataclass
class ProviderEstimate:
    """One primary provider's share of the run."""

    provider: str
    model: str
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    audio_seconds: float = 0.0
    cost: float | None = None
    """US dollars; None when the price table does not know the model."""


@dataclass
class Estimate:
    """The run's requests, tokens, audio seconds and cost, per provider, and the assumptions behind them."""

    providers: list[ProviderEstimate]
    assumptions: list[str] = field(default_factory=list)

    @property
    def cost(self) -> float | None:
        costs = [p.cost for p in self.providers if p.cost is not None]
        return sum(costs) if costs else None

    @property
    def requests(self) -> int:
        return sum(p.requests for p in self.providers)


def _answer_lengths(turns: Iterable[TurnRecord]) -> tuple[dict[tuple[str, str, int], int], dict[str, float]]:
    """From an earlier run: each answered turn's output tokens by (provider, thread, turn), and each provider's
    mean (by primary label: the conversation id starts with it)."""
    by_turn: dict[tuple[str, str, int], int] = {}
    totals: dict[str, list[int]] = {}
    for turn in turns:
        if turn.output is None:
            continue
        label = turn.conversation_id.split("/", 1)[0]
        tokens = turn.output.usage.output_tokens
        by_turn.setdefault((label, turn.thread_id, turn.turn_index), tokens)
        totals.setdefault(label, []).append(tokens)
    return by_turn, {label: sum(values) / len(values) for label, values in totals.items()}


async def _rendered(
    conversation: Conversation, variables: Mapping[str, Any], info: ProviderInfo, base_dir: Path, deadline_s: float
) -> list[Message]:
    """The turn's prompt, rendered as the run renders it (prompt functions included: they are the flow's own code
    and the run calls them too); a prompt that fails is stood in for by the turn's vars (the run reports it)."""
    try:
        return await render_prompt(conversation.prompt, variables, info, base_dir, deadline_s=deadline_s)
    except RtflowError:  # a template, a prompt function or its JavaScript worker failed
        said = " ".join(str(value) for name, value in variables.items() if not name.startswith("_"))
        return [Message.of("user", said)]


def _audio_seconds(variables: Mapping[str, Any], base_dir: Path) -> float:
    path = vars_audio_path(variables, base_dir)
    if path is None:
        return 0.0
    try:
        return clip_seconds(path)
    except AudioFileError:  # missing, or not a sound file: the run says so
        return 0.0


async def estimate_plan(
    plan: Plan,
    *,
    simulated: bool = False,
    answer_tokens: int = DEFAULT_ANSWER_TOKENS,
    earlier_run: Iterable[TurnRecord] | None = None,
) -> Estimate:
    """The estimate of a run of `plan` (see the module docstring for what is counted and how). Prompt functions
    are called, JavaScript ones in a worker of the estimate's own (Node starts only if one needs it)."""
    async with js_for_run():
        return await _estimate(plan, simulated=simulated, answer_tokens=answer_tokens, earlier_run=earlier_run)


class _Tally:
    """Requests and tokens per provider as the estimate goes; priced once at the end."""

    def __init__(self) -> None:
        self.providers: dict[str, ProviderEstimate] = {}

    def add(self, label: str, model: str, input_tokens: int, output_tokens: int, audio: float = 0.0) -> None:
        figures = self.providers.setdefault(label, ProviderEstimate(provider=label, model=model))
        figures.requests += 1
        figures.input_tokens += input_tokens + round(audio * _AUDIO_TOKENS_PER_SECOND)
        figures.output_tokens += output_tokens
        figures.audio_seconds += audio

    def priced(self) -> list[ProviderEstimate]:
        for figures in self.providers.values():
            usage = Usage(
                input_tokens=figures.input_tokens,
                output_tokens=figures.output_tokens,
                total_tokens=figures.input_tokens + figures.output_tokens,
                input_audio_tokens=round(figures.audio_seconds * _AUDIO_TOKENS_PER_SECOND),
            )
            figures.cost = cost_of(figures.model, usage)
        return list(self.providers.values())


async def _estimate(
    plan: Plan, *, simulated: bool, answer_tokens: int, earlier_run: Iterable[TurnRecord] | None
) -> Estimate:
    count: Callable[[str], int] = _tokens_by_words if simulated else approximate_tokens
    by_turn, means = _answer_lengths(earlier_run or ())
    base_dir = plan.flow.base_dir
    deadline_s = plan.flow.execution.timeout
    tally = _Tally()
    for conversation in plan.conversations.values():
        label = conversation.provider_label
        info = conversation.chain[0].to_info(base_dir)
        history = ConversationHistory()
        for turn_index, turn in enumerate(conversation.turns):
            answer = by_turn.get((label, conversation.thread_id, turn_index))
            if answer is None:
                answer = round(means.get(label, answer_tokens))
            if turn.simulate is not None:
                _estimate_dialogue(tally, turn.simulate, label, info.model, history, count, answer, base_dir)
                continue
            variables = {**turn.vars, "_conversation": history.conversation_var()}
            rendered = await _rendered(conversation, variables, info, base_dir, deadline_s)
            input_tokens = sum(count(message.text) for message in history.context_for(rendered))
            # A stand-in answer `answer` tokens long by either rule: one four-character word a token.
            history.add(rendered, "abc " * answer, turn.metadata)
            tally.add(label, info.model, input_tokens, answer, _audio_seconds(turn.vars, base_dir))
    return Estimate(providers=tally.priced(), assumptions=_assumptions(simulated, answer_tokens, means))


def _estimate_dialogue(
    tally: _Tally,
    simulate: SimulateSpec,
    label: str,
    model: str,
    history: ConversationHistory,
    count: Callable[[str], int],
    answer: int,
    base_dir: Path,
) -> None:
    """A simulated dialogue at its most (`max_turns` exchanges): each a caller line from the caller's model
    (which reads its persona, its goal and the dialogue so far) and the agent's answer (which reads the whole
    conversation so far); caller lines and answers are `answer` tokens each."""
    caller = simulate.caller.to_info(base_dir)
    caller_label = f"{simulate.caller.display_label} (caller)"
    caller_prompt = count(simulate.persona) + count(simulate.goal)
    so_far = sum(count(message.text) for message in history.context_for([]))
    for _ in range(simulate.max_turns):
        tally.add(caller_label, caller.model, caller_prompt + so_far, answer)
        so_far += answer
        tally.add(label, model, so_far, answer)
        so_far += answer


def _assumptions(simulated: bool, answer_tokens: int, means: Mapping[str, float]) -> list[str]:
    rule = "whitespace-separated words (the simulator's rule)" if simulated else "about 4 characters a token"
    answers = (
        "answers as long as the earlier run's answers to the same turns (else that provider's mean there)"
        if means
        else f"answers of {answer_tokens} tokens (--answer-tokens; --from-run RUN measures them instead)"
    )
    return [
        f"text tokens: {rule}; input audio: 10 tokens a second",
        f"each turn sends the whole conversation so far; {answers}",
        "simulated dialogues at their max_turns, caller lines as long as answers; not counted: fallbacks, retries,"
        " model-graded assertions",
        f"prices: rtflow's price table as of {PRICES_AS_OF}; a model it does not know has no cost",
    ]
