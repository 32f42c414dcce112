"""The executor: runs a `Plan` as fast as its graph and the providers' limits allow.

One anyio task group. A node starts when all its predecessors have ended (`_pending` counts them down); what it
then does depends on its kind and on its conversation's state:

- a primary call node renders the turn's prompt, builds the conversation for the provider and calls it, with
  retries; if the conversation already failed it ends as skipped and records the turn `skipped`;
- a fallback call node runs only if the call before it in the chain failed; otherwise it ends as skipped;
- a grade node evaluates the turn's assertions once the turn was answered. Nothing waits for it, so grading
  runs beside the next turn.

Limits: a global semaphore for calls in flight, one per provider key for `max_concurrency` (held for a whole
conversation by providers that keep sessions open), a `RateLimiter` per provider key, and a semaphore for
grading. Every attempt (grader calls too) runs under a deadline of `timeout`, and so does each call of a flow's own
Python (a prompt function, a `python` assertion). Retryable failures are retried with backoff and jitter; then the
chain moves on to the fallback with the same history.

Errors are data: a provider error becomes a record, never an exception in the task group. Each turn record is
handed to the sink the moment it is known (`pending` when answered and awaiting grading, then its verdict).
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import structlog

from rtflow.audio.files import vars_audio_path
from rtflow.errors import PromptError, ProtocolError, ProviderError, ProviderTimeoutError
from rtflow.flow.prompts import render_prompt
from rtflow.flow.spec import AssertionSpec
from rtflow.gc_pause import steady_heap
from rtflow.log import get_logger
from rtflow.messages import InterruptPlan, Message, TurnOutput, TurnRequest, approximate_tokens, usd
from rtflow.plan.graph import CallNode, Conversation, DialogueNode, GradeNode, Plan, call_node_id
from rtflow.providers.base import Provider, ProviderSession
from rtflow.results.assertions import (
    AssertionContext,
    evaluate_assertions,
    evaluate_one,
    turn_passed,
)
from rtflow.results.assertions.base import Unevaluable, render_value
from rtflow.results.assertions.conversation import ConversationView, DerivedAssertion, judge_conversation
from rtflow.results.assertions.transform import TransformError, transformed, transformed_vars
from rtflow.results.records import AssertionResult, CallAttempt, DialogueTurn, ErrorInfo, TurnRecord
from rtflow.runner.dialogue import (
    CALLER_CHECK_RUBRIC,
    DialogueState,
    Exchange,
    caller_check_text,
    caller_key,
    caller_messages,
    line_out_of_role,
    obvious_persona_break,
    says_stop_phrase,
)
from rtflow.runner.history import ConversationHistory
from rtflow.runner.limits import RateLimiter, Slots, part_of
from rtflow.runner.retry import RetryPolicy, retrying
from rtflow.runner.run_verdicts import judged_over_the_run

__all__ = ["NodeState", "Scheduler", "SchedulerSettings", "TurnSink", "restorable"]

TurnSink = Callable[[TurnRecord], None]


class NodeState(enum.Enum):
    WAITING = "waiting"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class SchedulerSettings:
    concurrency: int = 16
    timeout: float = 60.0
    retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    max_retry_after: float = 60.0
    grading_concurrency: int = 4
    seed: int | None = None
    max_cost: float | None = None
    """US dollars: once the answers stored so far cost this much, no new turn starts (`--max-cost`)."""
    fail_fast: bool = False
    """No new turn starts once a turn has failed or could not be answered (`--fail-fast`)."""
    part: tuple[int, int] = (0, 1)
    """`(i, n)`: this scheduler runs the i-th of n parts of the run's `concurrency` and of each provider's
    `max_concurrency` (a Ray worker's, one part per busy worker); `Scheduler.reshare` changes it mid-run."""


@dataclass
class _TurnState:
    """What one turn has gathered so far across its chain."""

    started_at: float | None = None
    attempts: int = 0
    calls: list[CallAttempt] = field(default_factory=list)
    prompt_messages: list[Message] = field(default_factory=list)
    request_messages: list[Message] = field(default_factory=list)
    output: TurnOutput | None = None
    answered_by: CallNode | None = None
    record: TurnRecord | None = None
    heard: str | None = None
    """A transcription of the turn's input audio that a failed attempt received (handed to the fallback)."""
    attempt_started: float = 0.0
    """When the current attempt got past every limit and really started (what the timeline draws)."""
    vars: dict[str, Any] | None = None
    """The turn's vars once built (after the test's `transformVars`), shared by every provider of its chain."""
    transformed_vars: dict[str, Any] = field(default_factory=dict)
    """The vars `transformVars` added or changed, which the turn's record shows beside the flow's."""


@dataclass
class _ConversationState:
    conversation: Conversation
    history: ConversationHistory = field(default_factory=ConversationHistory)
    turns: list[_TurnState] = field(default_factory=list)
    sessions: dict[str, ProviderSession] = field(default_factory=dict)
    session_slots: set[str] = field(default_factory=set)
    failure: str | None = None
    """Why the rest of the conversation is skipped, once a turn's whole chain failed."""


def restorable(record: TurnRecord) -> bool:
    """Whether a stored record of a turn is kept when its run is resumed (answered: graded or not), rather than
    the turn asked again."""
    return record.output is not None and record.status in ("passed", "failed", "pending")


class _Stopped(Exception):
    """The run is stopping (Ctrl-C): a call that was still waiting for its limits must not start."""


class _Halted(_Stopped):
    """The budget is spent or a turn failed under fail-fast: a call that was still waiting must not start. Unlike
    Ctrl-C the run goes on to the end, recording the turns it does not start as `skipped`."""


def _step_results(output: TurnOutput) -> list[AssertionResult]:
    """A script step that did not go as written (a `wait_for` that timed out) fails the turn, saying which."""
    return [
        AssertionResult(type="step", passed=False, score=0.0, reason=failure, error=failure)
        for failure in output.step_failures
    ]


def _carrying_instructions(messages: list[Message], primary: Provider, fallback: Provider) -> list[Message]:
    """The fallback's messages with the primary's own instructions (a Realtime session's `instructions`) in front
    as a system message: the same assistant answers, by another API. Not when the fallback has instructions of
    its own, nor when the prompt already starts with a system message (it says what the assistant is)."""
    instructions = primary.instructions
    if instructions is None or fallback.instructions is not None:
        return messages
    if messages and messages[0].role in ("system", "developer"):
        return messages
    return [Message.of("system", instructions), *messages]


def _error_info(exc: ProviderError) -> ErrorInfo:
    return ErrorInfo(kind=exc.kind, message=str(exc), status=exc.status, code=exc.code, retryable=exc.retryable)


class Scheduler:
    """Runs one plan once. Create, `await run()`, read `records`."""

    def __init__(
        self,
        plan: Plan,
        providers: Mapping[str, Provider],
        *,
        run_id: str,
        settings: SchedulerSettings,
        sink: TurnSink,
        grader: Provider | None = None,
        graders: Mapping[str, Provider] | None = None,
        callers: Mapping[str, Provider] | None = None,
        replay_callers: Mapping[str, tuple[list[str], bool]] | None = None,
        artifact_dir: Path | None = None,
        resume_from: Mapping[str, TurnRecord] | None = None,
        extra_vars: Mapping[str, Any] | None = None,
        rate_limits: dict[str, RateLimiter] | None = None,
        judges_the_run: bool = True,
    ) -> None:
        self.plan = plan
        self.providers = providers
        self.run_id = run_id
        self.settings = settings
        self.sink = sink
        self.grader = grader
        self.callers: Mapping[str, Provider] = callers or {}
        """Caller models of simulated dialogues, by `caller_key`."""
        self.replay_callers = replay_callers
        """When set, dialogues say these caller lines (by conversation id) and ask no caller model."""
        self.graders = dict(graders or {})
        """Graders assertions name themselves, by `grader_key`; `grader` grades the rest."""
        self.artifact_dir = artifact_dir
        self.extra_vars = dict(extra_vars or {})
        self._resume_from = dict(resume_from or {})
        self._retry_policy = RetryPolicy(
            retries=settings.retries,
            backoff_base=settings.backoff_base,
            backoff_max=settings.backoff_max,
            max_retry_after=settings.max_retry_after,
            rng=random.Random(settings.seed),
        )
        self._log = get_logger()  # rtflow's pipeline as configured when the run starts
        # Binding context for providers' own events costs more than a call's bookkeeping: only when it shows.
        self._bind_context = self._log.is_enabled_for(logging.INFO)
        self._base_dir = plan.flow.base_dir  # read once: a pydantic private attribute is slow to reach
        self.node_states: dict[str, NodeState] = {}
        """Where every node of the plan stands; each ends in SUCCEEDED, FAILED or SKIPPED."""
        self._pending: dict[str, int] = {}
        self._conversations = {cid: _ConversationState(c) for cid, c in plan.conversations.items()}
        for state in self._conversations.values():
            state.turns = [_TurnState() for _ in state.conversation.turns]
        # Semaphores with fast_acquire: taking a free slot costs no trip through the event loop, which matters
        # at thousands of calls per second; waiters are still served first come, first served.
        self._calls = Slots(part_of(settings.concurrency, settings.part))
        self._grading = anyio.Semaphore(settings.grading_concurrency, fast_acquire=True)
        self._provider_limits: dict[str, Slots] = {}
        # Given by a caller that runs several schedulers one after another on the same keys (a Ray worker's
        # batches): the buckets carry over, so a new batch does not start with a full minute's budget.
        self._rate_limits: dict[str, RateLimiter] = {} if rate_limits is None else rate_limits
        self._judges_the_run = judges_the_run
        """False for one batch of a larger run (a Ray worker's): the run's driver judges run-level assertions."""
        for provider in providers.values():
            key = provider.concurrency_key
            if provider.max_concurrency and key not in self._provider_limits:
                self._provider_limits[key] = Slots(part_of(provider.max_concurrency, settings.part))
            if key not in self._rate_limits:
                self._rate_limits[key] = RateLimiter(*provider.per_minute_limits)
        self._stopping = False
        self._halted: str | None = None
        """Why no new turn starts any more (the budget is spent, or a turn failed under fail-fast); the turns
        that would have started are recorded `skipped` with this reason, so the run still accounts for them."""
        self._costs: dict[str, float] = {}
        self._spent = 0.0
        """US dollars the stored answers cost so far (resumed ones included)."""
        self.in_flight = 0
        """Provider calls running right now."""
        self.records: dict[str, TurnRecord] = {}
        """The latest record of every turn that reached one, keyed by the turn's primary node id."""

    # -- driving the graph -------------------------------------------------------------------------------

    def request_stop(self) -> None:
        """Start no new node; what is running goes on (the caller cancels it if it must)."""
        self._stopping = True

    def reshare(self, part: tuple[int, int]) -> None:
        """Run part `(i, n)` of the run's concurrency limits from now on (calls already running finish)."""
        self.settings = dataclasses.replace(self.settings, part=part)
        self._calls.resize(part_of(self.settings.concurrency, part))
        for provider in self.providers.values():
            limiter = self._provider_limits.get(provider.concurrency_key)
            if limiter is not None and provider.max_concurrency:
                limiter.resize(part_of(provider.max_concurrency, part))

    async def run(self) -> dict[str, TurnRecord]:
        roots: list[str] = []
        for node_id, waiting_for in self.plan.in_degrees().items():
            self.node_states[node_id] = NodeState.WAITING
            self._pending[node_id] = waiting_for
            if waiting_for == 0:
                roots.append(node_id)
        with steady_heap():
            try:
                async with anyio.create_task_group() as task_group:
                    self._task_group = task_group
                    for node_id in roots:
                        task_group.start_soon(self._run_node, node_id)
            finally:
                with anyio.CancelScope(shield=True):
                    for state in self._conversations.values():
                        await self._close_sessions(state)
        if not self._stopping and self._judges_the_run:
            self._judge_over_the_run()
        return self.records

    def _judge_over_the_run(self) -> None:
        for record in judged_over_the_run(self.plan, self.records):
            self._save(record)

    async def _run_node(self, node_id: str) -> None:
        if self._stopping:
            return
        node = self.plan.node(node_id)
        self.node_states[node_id] = NodeState.RUNNING
        if isinstance(node, DialogueNode):
            final = await self._run_dialogue_node(node)
        elif isinstance(node, CallNode):
            final = await self._run_call_node(node)
        else:
            final = await self._run_grade_node(node)
        self.node_states[node_id] = final
        for successor in self.plan.edges[node_id]:
            self._pending[successor] -= 1
            if self._pending[successor] == 0:
                self._task_group.start_soon(self._run_node, successor)

    # -- dialogue nodes -----------------------------------------------------------------------------------

    async def _run_dialogue_node(self, node: DialogueNode) -> NodeState:
        """A simulated conversation: caller line, agent answer, stop conditions; each agent turn stored at once,
        the conversation's verdict on the last (see `rtflow.runner.dialogue`). A caller that fails the caller
        check makes the conversation a caller error, after `regenerate` more tries."""
        state = self._conversations[node.conversation_id]
        conversation = state.conversation
        spec = conversation.turns[node.turn_index].simulate
        assert spec is not None
        if state.failure is not None:
            return NodeState.SKIPPED
        if self._halted is not None:
            return await self._halt_dialogue(state, node, node.turn_index)
        variables = self._turn_vars(state, node.turn_index)
        try:
            persona, goal = str(render_value(spec.persona, variables)), str(render_value(spec.goal, variables))
        except Unevaluable as exc:
            return await self._dialogue_failed(state, node, node.turn_index, ErrorInfo(kind="prompt", message=str(exc)))
        scripted = len(state.history.turns)
        reached = node.turn_index
        for attempt in range(spec.regenerate + 1):
            dialogue = DialogueState(spec, persona, goal)
            for finished in state.history.turns:  # the scripted turns before it: the caller heard them too
                caller_line = "\n".join(message.text for message in finished.user_messages)
                dialogue.exchanges.append(Exchange(caller_line, finished.output_text))
            try:
                stop_reason, last, turn_index = await self._dialogue_attempt(
                    state, node, dialogue, variables, restore=attempt == 0
                )
            except _Halted:  # the budget ran out (or a turn failed) mid-dialogue: say where it stopped
                stopped_at = node.turn_index + dialogue.generated
                self._supersede(conversation.id, stopped_at + 1, reached)
                return await self._halt_dialogue(state, node, stopped_at)
            except _Stopped:
                return NodeState.SKIPPED
            except (ProviderError, PromptError) as exc:
                prompt_error = ErrorInfo(kind="prompt", message=str(exc))
                error = _error_info(exc) if isinstance(exc, ProviderError) else prompt_error
                return await self._dialogue_failed(state, node, node.turn_index + dialogue.generated, error)
            reached = max(reached, turn_index)
            broken = dialogue.out_of_role[1] if dialogue.out_of_role else None
            if broken is None and spec.caller_check:
                broken = await self._caller_check(dialogue, variables)
            if broken is None:
                await self._dialogue_verdict(state, node, dialogue, stop_reason, last, turn_index, variables)
                break
            if attempt < spec.regenerate:  # the caller's fault: the dialogue is held again from its start
                self._log.warning("dialogue.caller_error", conversation=conversation.id, attempt=attempt, why=broken)
                await self._drop_session(state, node.provider_label)
                del state.history.turns[scripted:]
                continue
            tries = f" (and in {attempt} regenerated dialogue{'s' if attempt != 1 else ''})" if attempt else ""
            error = ErrorInfo(kind="caller", message=f"caller-error: {broken}{tries}")
            if dialogue.out_of_role is not None:  # the unsent line gets the record: the agent's turns stand
                line = dialogue.out_of_role[0]
                await self._dialogue_failed(state, node, turn_index, error, caller_line=line, stop_reason=stop_reason)
                reached = max(reached, turn_index + 1)
                turn_index += 1
            else:
                await self._dialogue_failed(state, node, turn_index, error, last=last, stop_reason=stop_reason)
            break
        self._supersede(conversation.id, turn_index, reached)
        await self._close_sessions(state)
        return NodeState.SUCCEEDED

    def _supersede(self, conversation_id: str, start: int, reached: int) -> None:
        """Turns `start` to `reached` (exclusive) of a dialogue came from an earlier, longer attempt, dropped after
        a caller error: recorded `skipped`, so they count for nothing."""
        superseded = ErrorInfo(kind="skipped", message="superseded: the dialogue was regenerated after a caller error")
        for index in range(start, reached):
            old = self.records.get(call_node_id(conversation_id, index))
            if old is not None and old.status != "skipped":
                self._save(old.model_copy(update={"status": "skipped", "error": superseded}))

    async def _halt_dialogue(self, state: _ConversationState, node: DialogueNode, turn_index: int) -> NodeState:
        """No new turn starts (`--max-cost`, `--fail-fast`): the dialogue's next turn is recorded `skipped` with
        the reason, so the run accounts for where the dialogue stopped; the turns it took stand. Its sessions
        close now (a Live session is billed while it is open)."""
        assert self._halted is not None
        state.failure = self._halted
        skipped = ErrorInfo(kind="skipped", message=self._halted)
        self._save(
            self._dialogue_record(
                state, node, turn_index, status="skipped", error=skipped, description="simulated turn"
            )
        )
        await self._close_sessions(state)
        return NodeState.SKIPPED

    async def _dialogue_attempt(
        self,
        state: _ConversationState,
        node: DialogueNode,
        dialogue: DialogueState,
        variables: dict[str, Any],
        *,
        restore: bool,
    ) -> tuple[str, TurnRecord | None, int]:
        """One run of the dialogue to its stop: (why it stopped, its last record, the index after its last turn)."""
        spec = dialogue.spec
        conversation = state.conversation
        stop_reason, last = self._restore_dialogue(state, node, dialogue) if restore else (None, None)
        turn_index = node.turn_index + dialogue.generated
        caller = self.callers[caller_key(spec.caller)]
        caller_session = caller.session(f"{conversation.id}#caller")
        try:
            while stop_reason is None:
                if dialogue.generated >= spec.max_turns:
                    stop_reason = "max_turns"
                    break
                if spec.max_duration is not None and dialogue.elapsed() >= spec.max_duration:
                    stop_reason = "max_duration"
                    break
                agent_first = spec.first == "agent" and not dialogue.exchanges
                if self.replay_callers is not None:
                    replayed, said_stop = self.replay_callers.get(conversation.id, ([], False))
                    if dialogue.generated >= len(replayed):  # the earlier run's caller said no more
                        stop_reason = "phrase" if said_stop else "replay_ended"
                        break
                    line = replayed[dialogue.generated]
                elif agent_first:
                    line = ""
                else:
                    line = await self._caller_line(caller, caller_session, dialogue)
                if line and says_stop_phrase(line, dialogue):
                    stop_reason = "phrase"
                    break
                previous = dialogue.exchanges[-1].agent if dialogue.exchanges else None
                broken = line_out_of_role(line, previous, len(dialogue.exchanges) + 1) if not agent_first else None
                if broken is not None and self.replay_callers is None and spec.caller_check:
                    dialogue.out_of_role = (line, broken)  # no agent hears a caller out of role: stop here
                    stop_reason = "caller_error"
                    break
                last = await self._dialogue_turn(state, node, turn_index, line, variables)
                assert last.output is not None
                dialogue.exchanges.append(Exchange(line, last.output.heard, last.output))
                dialogue.generated += 1
                turn_index += 1
                stop_reason = await self._stop_after_answer(dialogue, last.output, variables)
        finally:
            with anyio.CancelScope(shield=True):
                await caller_session.aclose()
        return stop_reason, last, turn_index

    async def _caller_check(self, dialogue: DialogueState, variables: dict[str, Any]) -> str | None:
        """Why the caller was out of role, or None: rtflow's own rules first, then the grader's judgement (a
        grader that cannot answer blames nobody)."""
        broken = obvious_persona_break(dialogue)
        if broken is not None or self.grader is None or not dialogue.generated:
            return broken
        judge = DerivedAssertion(type="llm-rubric", value=CALLER_CHECK_RUBRIC)
        async with self._grading:
            verdict = await evaluate_one(judge, TurnOutput(text=caller_check_text(dialogue)), self._context(variables))
        if verdict.passed or verdict.error is not None:
            return None
        return f"the grader found the caller out of its role: {verdict.reason}"

    def _restore_dialogue(
        self, state: _ConversationState, node: DialogueNode, dialogue: DialogueState
    ) -> tuple[str | None, TurnRecord | None]:
        """The generated turns a resumed run already has, back into the history (asked of no model again)."""
        stop_reason: str | None = None
        last: TurnRecord | None = None
        while stop_reason is None:
            node_id = call_node_id(state.conversation.id, node.turn_index + dialogue.generated)
            record = self._resume_from.get(node_id)
            if record is None or record.dialogue is None or record.output is None or not record.finished:
                break
            state.history.add(record.prompt_messages, record.output.heard, {})
            dialogue.exchanges.append(Exchange(record.dialogue.caller, record.output.heard, record.output))
            dialogue.generated += 1
            self.records[node_id] = last = record
            stop_reason = record.dialogue.stop_reason
        return stop_reason, last

    async def _caller_line(self, caller: Provider, session: ProviderSession, dialogue: DialogueState) -> str:
        """The caller model's next line, with the run's limits, deadline and retries."""
        request = TurnRequest(
            conversation_id=f"{caller.info.label}#caller",
            turn_index=len(dialogue.exchanges),
            messages=caller_messages(dialogue),
        )

        async def one_attempt(_attempt: int) -> str:
            async with self._calls:
                if self._stopping:
                    raise _Stopped
                return (await self._send_with_deadline(session, request, caller.info.label)).text.strip()

        try:
            return await retrying(one_attempt, self._retry_policy, stop=lambda: self._stopping)
        except ProviderError as exc:
            exc.message = f"the caller model failed: {exc.message}"
            exc.args = (exc.message,)
            raise

    async def _dialogue_turn(
        self, state: _ConversationState, node: DialogueNode, turn_index: int, line: str, variables: dict[str, Any]
    ) -> TurnRecord:
        """One agent turn of the dialogue, stored the moment it ends. It goes to the conversation's primary
        provider and, when that fails (its retries spent), down the chain of fallbacks with the same history, as
        a written turn does; the next turn starts on the primary again."""
        conversation = state.conversation
        while len(state.turns) <= turn_index:
            state.turns.append(_TurnState())
        turn = state.turns[turn_index]
        turn.started_at = time.time()
        turn_vars = {**variables, "caller": line}
        clip_dir = self._artifact_dir(call_node_id(conversation.id, turn_index))
        spoken = await self._spoken(node, conversation.id, turn_index, line, clip_dir) if line else None
        if spoken is not None:  # the agent hears the line: the clip goes in as the user's audio, its text beside it
            turn_vars.update(audio=spoken, transcript=line)
        labels = [provider.display_label for provider in conversation.chain]
        primary = self.providers[labels[0]]
        for position, label in enumerate(labels):
            provider = self.providers[label]
            call = CallNode(
                id=call_node_id(conversation.id, turn_index, label if position else None),
                conversation_id=conversation.id,
                turn_index=turn_index,
                provider_label=label,
                chain_position=position,
                is_fallback=position > 0,
            )
            where = {"run": self.run_id, "conversation": conversation.id, "turn": turn_index + 1, "node": call.id}
            try:  # as for a written turn: a prompt that fails for one provider goes down the chain too
                rendered = await self._dialogue_prompt(state, provider, line, turn_vars)
                messages = state.history.context_for(rendered) if provider.keeps_history else list(rendered)
                turn.prompt_messages = rendered
                turn.request_messages = _carrying_instructions(messages, primary, provider) if position else messages
                request = TurnRequest(
                    conversation_id=conversation.id,
                    turn_index=turn_index,
                    messages=turn.request_messages,
                    vars=turn_vars,
                    artifact_dir=self._artifact_dir(call.id),  # a fallback's own, as for a written turn
                )
                output = await self._call_with_retries(state, call, provider, request, where)
            except (ProviderError, PromptError) as exc:
                if position + 1 == len(labels):
                    raise
                self._log.warning("fallback.used", error=str(exc), next=labels[position + 1], **where)
                continue
            break
        turn.output = output
        state.history.add(rendered, output.heard, {})
        record = self._dialogue_record(
            state,
            node,
            turn_index,
            status="passed",
            provider=label,
            provider_id=provider.info.id,
            is_fallback=position > 0,
            attempts=turn.attempts,
            vars={k: v for k, v in turn_vars.items() if not k.startswith("_")},
            description=f"simulated turn {turn_index - node.turn_index + 1}",
            prompt_messages=rendered,
            request_messages=turn.request_messages,
            output=output,
            calls=turn.calls,
            started_at=turn.started_at,
            dialogue=DialogueTurn(caller=line, caller_audio=spoken),
        )
        self._save(record)
        return record

    async def _dialogue_prompt(
        self, state: _ConversationState, provider: Provider, line: str, turn_vars: dict[str, Any]
    ) -> list[Message]:
        """The messages of a dialogue turn for `provider`: the prompt, and the caller's line as the user's."""
        rendered = await render_prompt(
            state.conversation.prompt,
            {**turn_vars, "_conversation": state.history.conversation_var()},
            provider.info,
            self._base_dir,
            deadline_s=self.settings.timeout,
        )
        if line and any(line in message.text for message in rendered if message.role == "user"):
            return rendered  # the prompt says the caller's line itself (`{{ caller }}`, or through `_conversation`)
        # The prompt is the agent's instructions (promptfoo's form): the caller's line follows it.
        rendered = [
            Message(role="system", content=message.content) if message.role == "user" else message
            for message in rendered
            if message.text.strip()
        ]
        if line:
            rendered.append(Message.of("user", line))
        return rendered

    async def _spoken(
        self, node: DialogueNode, conversation_id: str, turn_index: int, line: str, artifact_dir: str | None
    ) -> str | None:
        """The caller's line as speech (a WAV file), when its dialogue has a voice; None when it has not."""
        spec = self._conversations[node.conversation_id].conversation.turns[node.turn_index].simulate
        if spec is None or spec.voice is None:
            return None
        speaker = self.callers[caller_key(spec.voice.speaker())]
        request = TurnRequest(
            conversation_id=f"{conversation_id}#caller",
            turn_index=turn_index,
            messages=[Message.of("user", line)],
            artifact_dir=artifact_dir,
        )
        session = speaker.session(f"{conversation_id}#voice")

        async def one_attempt(_attempt: int) -> TurnOutput:
            async with self._calls:
                if self._stopping:
                    raise _Stopped
                return await self._send_with_deadline(session, request, speaker.info.label)

        try:
            output = await retrying(one_attempt, self._retry_policy, stop=lambda: self._stopping)
        except ProviderError as exc:
            exc.message = f"the caller's voice failed: {exc.message}"
            exc.args = (exc.message,)
            raise
        finally:
            with anyio.CancelScope(shield=True):
                await session.aclose()
        if output.audio is None:
            label = speaker.info.label
            raise ProtocolError(f"the caller's voice {label} returned no audio", provider=label)
        return output.audio.file

    async def _stop_after_answer(
        self, dialogue: DialogueState, output: TurnOutput, variables: dict[str, Any]
    ) -> str | None:
        """The stop condition the agent's answer meets, in the order written (the stop phrase is the caller's)."""
        for stop in dialogue.spec.stop:
            if stop.tool_called is not None and any(call.name == stop.tool_called for call in output.tool_calls):
                dialogue.stop_detail = stop.tool_called
                return "tool"
            if stop.judge is not None:
                judge = DerivedAssertion(type="llm-rubric", value=stop.judge)
                verdict = await evaluate_one(judge, TurnOutput(text=dialogue.transcript()), self._context(variables))
                if verdict.passed:
                    dialogue.stop_detail = stop.judge
                    return "judge"
        return None

    def _context(self, variables: dict[str, Any]) -> AssertionContext:
        return AssertionContext(
            vars=variables,
            base_dir=self._base_dir,
            grade=functools.partial(self._grade, self.grader) if self.grader is not None else None,
            graders={key: functools.partial(self._grade, grader) for key, grader in self.graders.items()},
            timeout=self.settings.timeout,
        )

    async def _dialogue_verdict(
        self,
        state: _ConversationState,
        node: DialogueNode,
        dialogue: DialogueState,
        stop_reason: str,
        last: TurnRecord | None,
        turn_index: int,
        variables: dict[str, Any],
    ) -> None:
        """The conversation-level assertions, on the dialogue's last turn (a record of its own when the caller
        stopped before the agent said anything)."""
        spec = dialogue.spec
        turn_spec = state.conversation.turns[node.turn_index]
        view = ConversationView(
            transcript=dialogue.transcript(),
            goal=dialogue.goal,
            turns=dialogue.generated,
            stop_reason=stop_reason,
            outputs=dialogue.outputs(),
            tool_calls=dialogue.tool_calls(),
        )
        async with self._grading:
            results = await judge_conversation(turn_spec.asserts, view, self._context(variables))
        if stop_reason in ("max_turns", "max_duration") and not spec.limit_passes:
            limit = f"{spec.max_turns} agent turns" if stop_reason == "max_turns" else f"{spec.max_duration:g} s"
            reason = f"the dialogue reached its limit ({limit}) before any stop condition (limit_passes: false)"
            results.insert(0, AssertionResult(type="dialogue", passed=False, score=0.0, reason=reason))
        status: Any = "passed" if turn_passed(results, turn_spec.threshold) else "failed"
        said = last.dialogue if last is not None and last.dialogue is not None else DialogueTurn(caller="")
        ending = said.model_copy(update={"stop_reason": stop_reason, "stop_detail": dialogue.stop_detail})
        if last is None or last.output is None:  # nothing was generated: the verdict gets a record of its own
            last = self._dialogue_record(
                state, node, turn_index, status=status, description="the dialogue ended before the agent spoke"
            )
        self._save(last.model_copy(update={"assertions": results, "status": status, "dialogue": ending}))

    async def _dialogue_failed(
        self,
        state: _ConversationState,
        node: DialogueNode,
        turn_index: int,
        error: ErrorInfo,
        *,
        last: TurnRecord | None = None,
        stop_reason: str | None = None,
        caller_line: str | None = None,
    ) -> NodeState:
        """The dialogue ends in an error: on its last stored turn when it has one and the error is the caller's
        (the agent's answers stand), else on a record of the turn that failed."""
        state.failure = f"turn {turn_index + 1} failed: {error.message}"
        if last is not None and last.dialogue is not None:
            ending = last.dialogue.model_copy(update={"stop_reason": stop_reason})
            self._save(last.model_copy(update={"status": "error", "error": error, "dialogue": ending}))
        else:
            said = DialogueTurn(caller=caller_line or "", stop_reason=stop_reason) if stop_reason else None
            self._save(
                self._dialogue_record(
                    state, node, turn_index, status="error", error=error, description="simulated turn", dialogue=said
                )
            )
        await self._close_sessions(state)
        return NodeState.FAILED

    def _dialogue_record(
        self, state: _ConversationState, node: DialogueNode, turn_index: int, **fields: Any
    ) -> TurnRecord:
        """A record of a dialogue's turn `turn_index` (the call node id of the turn it became), with `fields` (the
        primary provider's unless they name another)."""
        conversation = state.conversation
        now = time.time()
        given = {
            "provider": node.provider_label,
            "provider_id": self.providers[node.provider_label].info.id,
            "started_at": now,
            "ended_at": now,
            **fields,
        }
        return TurnRecord(
            run_id=self.run_id,
            node_id=call_node_id(conversation.id, turn_index),
            conversation_id=conversation.id,
            thread_id=conversation.thread_id,
            turn_index=turn_index,
            prompt=conversation.prompt.display_label,
            **given,
        )

    # -- call nodes ---------------------------------------------------------------------------------------

    async def _run_call_node(self, node: CallNode) -> NodeState:
        state = self._conversations[node.conversation_id]
        conversation = state.conversation
        turn = state.turns[node.turn_index]
        if turn.answered_by is not None:
            return NodeState.SKIPPED  # an earlier provider of the chain answered: this fallback is not needed
        if state.failure is not None:
            if not node.is_fallback:
                self._save(self._skipped_record(state, node, state.failure))
            return NodeState.SKIPPED
        if not node.is_fallback and self._restore_from_resume(state, node):
            return NodeState.SUCCEEDED
        if self._halted is not None:  # a fallback too: the turn it would finish is new spending all the same
            return await self._halt_turn(state, node)
        # The node's identity goes with each event as keywords: cheaper than binding a logger per node, and
        # info events cost nothing at all when they are filtered out.
        where = {
            "run": self.run_id,
            "conversation": conversation.id,
            "turn": node.turn_index + 1,
            "provider": node.provider_label,
            "node": node.id,
        }
        if turn.started_at is None:
            turn.started_at = time.time()
        log = self._log
        log.info("node.started", fallback=node.is_fallback, **where)
        provider = self.providers[node.provider_label]
        try:
            request = await self._build_request(state, node, provider)
            output = await self._call_with_retries(state, node, provider, request, where)
        except _Halted:
            return await self._halt_turn(state, node)
        except _Stopped:
            log.info("node.not_started", reason="the run is stopping", **where)
            return NodeState.SKIPPED  # no record: the turn counts as not run, and a resume runs it
        except (ProviderError, PromptError) as exc:
            error = _error_info(exc) if isinstance(exc, ProviderError) else ErrorInfo(kind="prompt", message=str(exc))
            chain = conversation.call_nodes[node.turn_index]
            if node.chain_position + 1 < len(chain):
                log.warning("fallback.used", error=error.message, next=chain[node.chain_position + 1], **where)
                return NodeState.FAILED
            state.failure = f"turn {node.turn_index + 1} failed: {error.message}"
            self._save(self._turn_record(state, node, status="error", error=error))
            log.info("node.finished", status="error", attempts=turn.attempts, **where)
            await self._close_sessions(state)
            return NodeState.FAILED
        turn.output = output
        turn.answered_by = node
        state.history.add(turn.prompt_messages, output.heard, conversation.turns[node.turn_index].metadata)
        has_grade = conversation.grade_nodes[node.turn_index] is not None
        record = self._turn_record(state, node, status="pending" if has_grade else "passed")
        if not has_grade and output.step_failures:  # nothing to grade, but a script step did not go as written
            record = record.model_copy(update={"assertions": _step_results(output), "status": "failed"})
            turn.record = record
        self._save(record)
        log.info("node.finished", status="answered", attempts=turn.attempts, **where)
        if node.turn_index == len(conversation.turns) - 1:
            await self._close_sessions(state)
        return NodeState.SUCCEEDED

    async def _halt_turn(self, state: _ConversationState, node: CallNode) -> NodeState:
        """The turn does not start (`_halted` says why): recorded `skipped`, and the rest of its conversation too."""
        assert self._halted is not None
        state.failure = self._halted
        self._save(self._skipped_record(state, node, self._halted))
        await self._close_sessions(state)
        return NodeState.SKIPPED

    async def _build_request(self, state: _ConversationState, node: CallNode, provider: Provider) -> TurnRequest:
        conversation = state.conversation
        turn_vars = await self._built_vars(state, node.turn_index)
        variables = {**turn_vars, "_conversation": state.history.conversation_var()}
        # A prompt function gets an attempt's deadline: one that hangs is the turn's PromptError, not a stuck run.
        rendered = await render_prompt(
            conversation.prompt, variables, provider.info, self._base_dir, deadline_s=self.settings.timeout
        )
        turn = state.turns[node.turn_index]
        turn.prompt_messages = rendered
        messages = state.history.context_for(rendered) if provider.keeps_history else list(rendered)
        if node.is_fallback:
            first = self.plan.nodes[conversation.call_nodes[node.turn_index][0]]
            assert isinstance(first, CallNode)
            messages = _carrying_instructions(messages, self.providers[first.provider_label], provider)
        turn.request_messages = messages
        artifact_dir = self._artifact_dir(node.id)
        turn_spec = conversation.turns[node.turn_index]
        interrupt = turn_spec.interrupt
        barge_in_audio = None
        if interrupt is not None and node.turn_index + 1 < len(conversation.turns):
            clip = vars_audio_path(conversation.turns[node.turn_index + 1].vars, self._base_dir)
            barge_in_audio = str(clip) if clip is not None else None
        return TurnRequest(
            conversation_id=conversation.id,
            turn_index=node.turn_index,
            messages=turn.request_messages,
            vars={**({"transcript": turn.heard} if turn.heard else {}), **turn_vars},
            artifact_dir=artifact_dir,
            interrupt=InterruptPlan(**interrupt.model_dump(), audio=barge_in_audio) if interrupt is not None else None,
            after_answer=[step.model_dump(exclude_none=True) for step in turn_spec.then],
        )

    def _artifact_dir(self, node_id: str) -> str | None:
        """Where a call node's files go (its audio, a spoken caller line): a folder of the run's, named after it."""
        if self.artifact_dir is None:
            return None
        return str(self.artifact_dir / node_id.replace("/", "_").replace("~", "_").replace("#", "_"))

    async def _call_with_retries(
        self, state: _ConversationState, node: CallNode, provider: Provider, request: TurnRequest, where: dict[str, Any]
    ) -> TurnOutput:
        turn = state.turns[node.turn_index]
        key = provider.concurrency_key
        await self._hold_session_slot(state, node, provider)

        async def one_attempt(attempt: int) -> TurnOutput:
            turn.attempts += 1
            with self._attempt_context(node, attempt):
                try:
                    output = await self._attempt(state, node, provider, request)
                except ProviderError as exc:
                    turn.calls.append(self._attempt_record(node, attempt, turn.attempt_started, _error_info(exc)))
                    turn.heard = exc.input_transcript or turn.heard
                    await self._drop_session(state, node.provider_label)
                    if exc.retry_after is not None and exc.kind == "rate_limit":
                        self._rate_limits[key].pause(self._retry_policy.capped(exc.retry_after) or 0.0)
                    self._log.warning("attempt.failed", attempt=attempt, error=str(exc), kind=exc.kind, **where)
                    raise
            turn.calls.append(self._attempt_record(node, attempt, turn.attempt_started, None))
            return output

        output = await retrying(one_attempt, self._retry_policy, stop=lambda: self._stopping)
        if output.rate_limit_pause_s:  # the server said a budget is spent: hold every caller of this key
            self._rate_limits[key].pause(self._retry_policy.capped(output.rate_limit_pause_s) or 0.0)
        return output

    def _attempt_context(self, node: CallNode, attempt: int) -> contextlib.AbstractContextManager[Any]:
        """Binds the attempt's identity for every log event inside it (providers' included), when logs show."""
        if not self._bind_context:
            return contextlib.nullcontext()
        return structlog.contextvars.bound_contextvars(
            run=self.run_id,
            conversation=node.conversation_id,
            turn=node.turn_index + 1,
            provider=node.provider_label,
            node=node.id,
            attempt=attempt,
        )

    async def _attempt(
        self, state: _ConversationState, node: CallNode, provider: Provider, request: TurnRequest
    ) -> TurnOutput:
        key = provider.concurrency_key
        per_provider = None if provider.holds_sessions else self._provider_limits.get(key)
        async with self._calls:
            if per_provider is not None:
                await per_provider.acquire()
            self.in_flight += 1
            try:
                rate_limiter = self._rate_limits[key]
                if rate_limiter.active:
                    tokens = 0  # the history's length is counted only for a `tpm` limit
                    if rate_limiter.counts_tokens:
                        tokens = sum(approximate_tokens(m.text) for m in request.messages)
                    await rate_limiter.acquire(tokens)
                if self._stopping:  # waited for a limit across Ctrl-C: no request starts after it
                    raise _Stopped
                if self._halted is not None:  # the budget ran out (or a turn failed) while this one waited
                    raise _Halted
                state.turns[node.turn_index].attempt_started = time.time()
                session = state.sessions.get(node.provider_label)
                if session is None:
                    session = provider.session(state.conversation.id)
                    state.sessions[node.provider_label] = session
                return await self._send_with_deadline(session, request, node.provider_label)
            finally:
                self.in_flight -= 1
                if per_provider is not None:
                    per_provider.release()

    async def _send_with_deadline(self, session: ProviderSession, request: TurnRequest, label: str) -> TurnOutput:
        """One call, bounded by the run's timeout. A bare cancel scope rather than fail_after: the same meaning
        at a fraction of the cost per call."""
        with anyio.CancelScope(deadline=anyio.current_time() + self.settings.timeout) as deadline:
            return await session.send(request)
        assert deadline.cancelled_caught  # only the deadline ends the block without a return
        raise ProviderTimeoutError(f"no answer within {self.settings.timeout:g}s", provider=label)

    def _turn_vars(self, state: _ConversationState, turn_index: int) -> dict[str, Any]:
        """The turn's variables as the flow gives them, with the run's `--var` values on top (and, once the turn
        was built, what its `transformVars` made of them)."""
        built = state.turns[turn_index].vars
        return built if built is not None else {**state.conversation.turns[turn_index].vars, **self.extra_vars}

    async def _built_vars(self, state: _ConversationState, turn_index: int) -> dict[str, Any]:
        """The turn's vars, through the test's `transformVars` the first time (a failure is the prompt's error)."""
        turn = state.turns[turn_index]
        if turn.vars is None:
            given = self._turn_vars(state, turn_index)
            transform = state.conversation.turns[turn_index].options.get("transformVars")
            if isinstance(transform, str) and transform.strip():
                try:
                    changed = await transformed_vars(transform, given, self._base_dir, self.settings.timeout)
                except TransformError as exc:
                    raise PromptError(str(exc)) from exc
                turn.transformed_vars = {k: v for k, v in changed.items() if k not in given or given[k] != v}
                given = changed
            turn.vars = given
        return turn.vars

    async def _hold_session_slot(self, state: _ConversationState, node: CallNode, provider: Provider) -> None:
        """Providers that keep a session open count sessions, not requests: hold a slot for the conversation."""
        limiter = self._provider_limits.get(provider.concurrency_key)
        if not provider.holds_sessions or limiter is None or node.provider_label in state.session_slots:
            return
        await limiter.acquire()
        state.session_slots.add(node.provider_label)

    async def _drop_session(self, state: _ConversationState, label: str) -> None:
        """After a failed attempt the session's state is unknown: the next attempt starts a fresh one."""
        session = state.sessions.pop(label, None)
        if session is not None:
            with anyio.CancelScope(shield=True):
                await session.aclose()

    async def _close_sessions(self, state: _ConversationState) -> None:
        for label in list(state.sessions):
            await self._drop_session(state, label)
        for label in list(state.session_slots):
            provider = self.providers[label]
            limiter = self._provider_limits.get(provider.concurrency_key)
            if limiter is not None:
                limiter.release()
        state.session_slots.clear()

    def _attempt_record(self, node: CallNode, attempt: int, started: float, error: ErrorInfo | None) -> CallAttempt:
        return CallAttempt(
            node_id=node.id,
            provider=node.provider_label,
            attempt=attempt,
            started_at=started,
            ended_at=time.time(),
            error=error,
        )

    # -- resume ---------------------------------------------------------------------------------------------

    def _restore_from_resume(self, state: _ConversationState, node: CallNode) -> bool:
        """Take a turn answered in an earlier run of this run id instead of calling again."""
        previous = self._resume_from.get(node.id)
        if previous is None or not restorable(previous):
            return False
        output = previous.output
        assert output is not None  # restorable: it was answered
        turn = state.turns[node.turn_index]
        turn.output = output
        turn.answered_by = node
        turn.prompt_messages = list(previous.prompt_messages)
        turn.request_messages = list(previous.request_messages)
        turn.attempts = previous.attempts
        turn.calls = list(previous.calls)
        turn.started_at = previous.started_at
        turn.record = previous
        self.records[node.id] = previous
        self._count_cost(previous)  # a kept failure is not a new one: it does not trip fail-fast
        conversation = state.conversation
        state.history.add(previous.prompt_messages, output.heard, conversation.turns[node.turn_index].metadata)
        return True

    # -- grade nodes --------------------------------------------------------------------------------------

    async def _run_grade_node(self, node: GradeNode) -> NodeState:
        state = self._conversations[node.conversation_id]
        turn = state.turns[node.turn_index]
        record = turn.record
        if turn.output is None or record is None:
            return NodeState.SKIPPED
        if record.status in ("passed", "failed"):
            return NodeState.SUCCEEDED  # graded in the run being resumed
        turn_spec = state.conversation.turns[node.turn_index]
        context = AssertionContext(
            vars=self._turn_vars(state, node.turn_index),
            base_dir=self._base_dir,
            grade=functools.partial(self._grade, self.grader) if self.grader is not None else None,
            graders={key: functools.partial(self._grade, grader) for key, grader in self.graders.items()},
            timeout=self.settings.timeout,
        )
        async with self._grading:
            transforms = {
                f"provider {record.provider}'s transform": self.providers[record.provider].info.transform,
                "transform": turn_spec.options.get("transform"),
            }
            results = await self._judge(turn_spec.asserts, transforms, turn.output, context)
        results = [*_step_results(turn.output), *results]
        passed = turn_passed(results, turn_spec.threshold)
        self._save(record.model_copy(update={"assertions": results, "status": "passed" if passed else "failed"}))
        self._log.info("grade.finished", run=self.run_id, node=node.id, passed=passed)
        return NodeState.SUCCEEDED

    @staticmethod
    async def _judge(
        asserts: list[AssertionSpec], transforms: dict[str, Any], output: TurnOutput, context: AssertionContext
    ) -> list[AssertionResult]:
        """The assertions' verdicts, on the output as `transforms` (named for errors, in order) leave it."""
        for what, transform in transforms.items():
            if not (isinstance(transform, str) and transform.strip()):
                continue
            try:
                output = await transformed(transform, output, context, what=what)
            except TransformError as exc:  # nothing can be judged: one failed result that says why
                return [AssertionResult(type="transform", passed=False, score=0.0, reason=str(exc), error=str(exc))]
        return await evaluate_assertions(asserts, output, context=context)

    async def _grade(self, grader: Provider, messages: list[Message]) -> str:
        """Send grading messages to a grader provider, with the run's timeout and retries."""

        async def one_attempt(_attempt: int) -> str:
            session = grader.session("grader")
            request = TurnRequest(conversation_id="grader", turn_index=0, messages=messages)
            try:
                return (await self._send_with_deadline(session, request, grader.info.label)).text
            finally:
                with anyio.CancelScope(shield=True):
                    await session.aclose()

        return await retrying(one_attempt, self._retry_policy)

    # -- records ----------------------------------------------------------------------------------------------

    def _turn_record(
        self, state: _ConversationState, node: CallNode, *, status: Any, error: ErrorInfo | None = None
    ) -> TurnRecord:
        conversation = state.conversation
        turn = state.turns[node.turn_index]
        turn_spec = conversation.turns[node.turn_index]
        provider = self.providers[node.provider_label]
        record = TurnRecord(
            run_id=self.run_id,
            node_id=conversation.call_nodes[node.turn_index][0],
            conversation_id=conversation.id,
            thread_id=conversation.thread_id,
            turn_index=node.turn_index,
            provider=node.provider_label,
            provider_id=provider.info.id,
            prompt=conversation.prompt.display_label,
            is_fallback=node.is_fallback,
            attempts=turn.attempts,
            status=status,
            vars={k: v for k, v in {**turn_spec.vars, **turn.transformed_vars}.items() if not k.startswith("_")},
            description=turn_spec.description,
            pass_rate=turn_spec.pass_rate,
            prompt_messages=turn.prompt_messages,
            request_messages=turn.request_messages,
            output=turn.output,
            error=error,
            calls=turn.calls,
            started_at=turn.started_at,
            ended_at=time.time(),
        )
        turn.record = record
        return record

    def _skipped_record(self, state: _ConversationState, node: CallNode, reason: str) -> TurnRecord:
        return self._turn_record(state, node, status="skipped", error=ErrorInfo(kind="skipped", message=reason))

    def _save(self, record: TurnRecord) -> None:
        self.records[record.node_id] = record
        self._account(record)
        self.sink(record)

    def _account(self, record: TurnRecord) -> None:
        """Count a stored record against `max_cost` and, when it failed, under `fail_fast`."""
        self._count_cost(record)
        if self._halted is None and self.settings.fail_fast and record.status in ("failed", "error"):
            self._halt(f"fail-fast: {record.conversation_id} turn {record.turn_index + 1} {record.status}")

    def _count_cost(self, record: TurnRecord) -> None:
        """Add a record's cost to the spend (a record saved again, graded or regraded, replaces its earlier cost
        rather than adding to it); halt new work once the spend reaches `max_cost`."""
        cost = record.output.cost if record.output is not None else None
        if cost is not None:
            self._spent += cost - self._costs.get(record.node_id, 0.0)
            self._costs[record.node_id] = cost
        budget = self.settings.max_cost
        if self._halted is None and budget is not None and self._spent >= budget:
            self._halt(f"budget: the run had spent ${usd(self._spent)} of its ${budget:g} (--max-cost)")

    def _halt(self, reason: str) -> None:
        self._halted = reason
        self._log.warning("run.halted", run=self.run_id, reason=reason)
