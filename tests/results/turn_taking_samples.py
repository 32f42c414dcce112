"""Hand-built voice turns with turn-taking metrics, one of them cut short by the caller (the Realtime provider
makes these in a real run)."""

from __future__ import annotations

from results_samples import RUN_ID, T0

from rtflow.messages import EventMark, Interruption, Message, TurnMetrics, TurnOutput, Usage
from rtflow.results.records import CallAttempt, TurnRecord

FULL_ANSWER = "Rome was founded in 753 BC <b>by</b> Romulus, & grew into an empire."
HEARD = "Rome was founded in 753 BC <b>by</b>"
CUT = Interruption(
    plan="after 600 ms heard", at_ms=640.0, audio_end_ms=600, item_id="item_1", reason="client_cancelled"
)


def voice_turn(
    provider: str,
    thread: str,
    index: int,
    metrics: TurnMetrics,
    *,
    text: str = "Sure.",
    heard_text: str | None = None,
    interruption: Interruption | None = None,
    start: float = 0.0,
    events: list[EventMark] | None = None,
) -> TurnRecord:
    """An answered voice turn of `provider`'s conversation on `thread`, with the given metrics."""
    conversation = f"{provider}/{thread}"
    node = f"{conversation}/{index + 1}"
    return TurnRecord(
        run_id=RUN_ID,
        node_id=node,
        conversation_id=conversation,
        thread_id=thread,
        turn_index=index,
        provider=provider,
        provider_id="openai:realtime:gpt-realtime",
        prompt="conversation",
        status="passed",
        request_messages=[Message.of("user", f"question {index + 1}")],
        output=TurnOutput(
            text=text,
            usage=Usage(total_tokens=10),
            metrics=metrics,
            heard_text=heard_text,
            interruption=interruption,
            events=events or [],
        ),
        attempts=1,
        calls=[CallAttempt(node_id=node, provider=provider, attempt=1, started_at=T0 + start, ended_at=T0 + start + 2)],
        started_at=T0 + start,
        ended_at=T0 + start + 2,
    )


def voice_turns() -> list[TurnRecord]:
    """Four answered turns over two providers: one cut short (with yield figures), two with tool rounds, and one
    text-like turn with no turn-taking metric at all."""
    return [
        voice_turn(
            "voice",
            "rome",
            0,
            TurnMetrics(
                ttfb_ms=100.0,
                ttfa_ms=180.0,
                response_latency_ms=400.0,
                yield_ms=20.0,
                yield_done_ms=55.0,
                agent_speaking_ms=600.0,
            ),
            text=FULL_ANSWER,
            heard_text=HEARD,
            interruption=CUT,
            events=[EventMark(type="response.create", source="client", at_ms=500.0)],
        ),
        voice_turn(
            "voice",
            "rome",
            1,
            TurnMetrics(
                ttfb_ms=300.0,
                ttfa_ms=380.0,
                response_latency_ms=700.0,
                tool_silence_ms=[900.0, 1100.0],
                agent_speaking_ms=2500.0,
            ),
            start=2.5,
        ),
        voice_turn(
            "mini",
            "rome",
            0,
            TurnMetrics(ttfb_ms=200.0, ttfa_ms=250.0, response_latency_ms=500.0, tool_silence_ms=[1300.0]),
            start=0.2,
        ),
        voice_turn("mini", "rome", 1, TurnMetrics(first_delta_ms=50.0, total_ms=90.0), start=2.7),
    ]
