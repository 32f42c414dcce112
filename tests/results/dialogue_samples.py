"""Hand-built turns of a simulated dialogue (the scheduler makes these in a real run): three agent turns led by a
caller model, stopped by the caller's stop phrase, the conversation's verdicts on the last."""

from __future__ import annotations

from results_samples import RUN_ID, T0

from rtflow.messages import AudioOutput, Message, ToolCall, TurnOutput, Usage
from rtflow.results.records import AssertionResult, CallAttempt, DialogueTurn, TurnRecord, TurnStatus

CONVERSATION = "agent/refund"
THREAD = "refund"
HOSTILE_CALLER = "<script>alert('caller')</script> The kettle does not heat."
CALLER_LINES = ("I want a refund for order A-1234.", HOSTILE_CALLER, "Please confirm the refund amount.")
ANSWERS = ("Which order is it?", "Sorry to hear that.", "A refund of 40 EUR is confirmed.")
GOAL_REASON = "The agent confirmed the refund amount of 40 EUR"
RUBRIC_REASON = "The agent never asked for the receipt"
VERDICTS = (
    AssertionResult(
        type="stop-reason",
        value="phrase",
        passed=True,
        score=1.0,
        reason="the dialogue ended by phrase (in ['phrase'])",
    ),
    AssertionResult(
        type="turns", value={"max": 6}, passed=True, score=1.0, reason="the dialogue took 3 agent turns (<= 6)"
    ),
    AssertionResult(type="goal-met", passed=True, score=1.0, reason=GOAL_REASON),
    AssertionResult(
        type="conversation-rubric", value="asks for a receipt", passed=False, score=0.0, reason=RUBRIC_REASON
    ),
)


def dialogue_turn(
    index: int,
    caller: str,
    answer: str,
    *,
    stop_reason: str | None = None,
    stop_detail: str | None = None,
    assertions: tuple[AssertionResult, ...] = (),
    status: TurnStatus = "passed",
    tool_calls: tuple[ToolCall, ...] = (),
    audio: AudioOutput | None = None,
    conversation: str = CONVERSATION,
    thread: str = THREAD,
) -> TurnRecord:
    """Agent turn `index` of a dialogue: the caller's line sent as the user's message, and the agent's answer;
    on the last, why it stopped and (`stop_detail`) the tool or judge condition that met the stop."""
    node = f"{conversation}/{index + 1}"
    return TurnRecord(
        run_id=RUN_ID,
        node_id=node,
        conversation_id=conversation,
        thread_id=thread,
        turn_index=index,
        provider="agent",
        provider_id="openai:realtime:gpt-realtime",
        prompt="{{ caller }}",
        status=status,
        vars={"caller": caller},
        description=f"simulated turn {index + 1}",
        prompt_messages=[Message.of("user", caller)],
        request_messages=[Message.of("user", caller)],
        output=TurnOutput(text=answer, tool_calls=list(tool_calls), audio=audio, usage=Usage(total_tokens=20)),
        assertions=list(assertions),
        attempts=1,
        calls=[
            CallAttempt(node_id=node, provider="agent", attempt=1, started_at=T0 + index, ended_at=T0 + index + 0.5)
        ],
        started_at=T0 + index,
        ended_at=T0 + index + 0.5,
        dialogue=DialogueTurn(caller=caller, stop_reason=stop_reason, stop_detail=stop_detail),
    )


def dialogue_turns(audio: AudioOutput | None = None) -> list[TurnRecord]:
    """The three agent turns of the refund dialogue; the last stopped by the phrase, with the verdicts (one of
    them failed, so the conversation failed). `audio` is the first answer's, when given."""
    return [
        dialogue_turn(0, CALLER_LINES[0], ANSWERS[0], audio=audio),
        dialogue_turn(1, CALLER_LINES[1], ANSWERS[1]),
        dialogue_turn(2, CALLER_LINES[2], ANSWERS[2], stop_reason="phrase", assertions=VERDICTS, status="failed"),
    ]
