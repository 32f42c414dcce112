"""Hand-built run and turn records for the results tests (the scheduler makes these in a real run)."""

from __future__ import annotations

from pathlib import Path

from rtflow.messages import AudioOutput, ContentPart, Message, ToolCall, TurnMetrics, TurnOutput, Usage
from rtflow.results.records import AssertionResult, CallAttempt, ErrorInfo, RunRecord, TurnRecord

RUN_ID = "run-20260101-0001"
T0 = 1_767_225_600.0
HOSTILE_OUTPUT = "<script>alert(1)</script> and <img src=x onerror=alert(1)>"


def write_wav(path: Path, seconds: float = 0.05) -> Path:
    """A short silent pcm16 24 kHz mono WAV file (`audio_support.silent_wav`)."""
    # Imported here, not at the top: test_atomic_exports' writer subprocess imports this module with only this
    # folder on its path, and never asks for audio.
    from audio_support import silent_wav

    return silent_wav(path, seconds)


def make_run(**changes: object) -> RunRecord:
    """A finished, simulated run record."""
    run = RunRecord(
        run_id=RUN_ID,
        flow_path="flows/conversation.yaml",
        description="Realtime conversations with chat fallback",
        started_at=T0,
        ended_at=T0 + 4.0,
        status="finished",
        simulated=True,
        options={"concurrency": 4},
        total_turns=5,
    )
    return run.model_copy(update=changes)


def _turn(
    conversation: str,
    thread: str,
    index: int,
    *,
    provider: str = "realtime",
    text: str = "",
    status: str = "passed",
    start: float = 0.0,
    **extra: object,
) -> TurnRecord:
    question = f"Question {index + 1} of {thread}"
    fields: dict[str, object] = {
        "run_id": RUN_ID,
        "node_id": f"{conversation}/{index + 1}",
        "conversation_id": conversation,
        "thread_id": thread,
        "turn_index": index,
        "provider": provider,
        "provider_id": "openai:chat:gpt-4.1-mini" if provider == "chat" else "openai:realtime:gpt-realtime",
        "prompt": "conversation",
        "status": status,
        "vars": {"question": question},
        "request_messages": [Message.of("system", "Be brief."), Message.of("user", question)],
        "output": TurnOutput(
            text=text or f'You said: "{question}" (user messages: {index + 1}, instructions: none)',
            usage=Usage(input_tokens=20, output_tokens=10, total_tokens=30),
            cost=0.0001,
            metrics=TurnMetrics(first_delta_ms=40.0 + 10 * index, total_ms=120.0 + 30 * index),
        ),
        "assertions": [
            AssertionResult(
                type="icontains",
                value="said",
                passed=status == "passed",
                score=1.0 if status == "passed" else 0.0,
                reason="checked",
            )
        ],
        "attempts": 1,
        "calls": [
            CallAttempt(
                node_id=f"{conversation}/{index + 1}",
                provider=provider,
                attempt=1,
                started_at=T0 + start,
                ended_at=T0 + start + 0.3,
            )
        ],
        "started_at": T0 + start,
        "ended_at": T0 + start + 0.3,
    }
    fields.update(extra)
    return TurnRecord.model_validate(fields)


def make_turns(audio_dir: Path | None = None) -> list[TurnRecord]:
    """Five turns over three conversations: passes, a failure, a retry then fallback, an error and a skip."""
    audio = None
    input_audio_message = Message.of("user", "Question 2 of japan_travel")
    if audio_dir is not None:
        answer = write_wav(audio_dir / "answer.wav")
        question = write_wav(audio_dir / "question.wav")
        audio = AudioOutput(file=str(answer), format="wav", duration_s=0.05, sample_rate=24_000)
        input_audio_message = Message(
            role="user",
            content=[ContentPart(type="input_audio", file=str(question), transcript="Question 2 of japan_travel")],
        )
    failed_attempt = ErrorInfo(kind="rate_limit", message="429 Too Many Requests", status=429, retryable=True)
    fallback_calls = [
        CallAttempt(
            node_id="realtime/japan_travel/2",
            provider="realtime",
            attempt=1,
            started_at=T0 + 0.4,
            ended_at=T0 + 0.6,
            error=failed_attempt,
        ),
        CallAttempt(
            node_id="realtime/japan_travel/2",
            provider="realtime",
            attempt=2,
            started_at=T0 + 0.9,
            ended_at=T0 + 1.1,
            error=failed_attempt,
        ),
        CallAttempt(
            node_id="realtime/japan_travel/2~chat", provider="chat", attempt=1, started_at=T0 + 1.2, ended_at=T0 + 1.6
        ),
    ]
    weather_call = ToolCall(
        call_id="call_1",
        name="get_weather",
        arguments='{"city": "Kyoto"}',
        output='{"forecast": "sunny"}',
        duration_ms=3.0,
    )
    return [
        _turn("realtime/japan_travel", "japan_travel", 0, start=0.0),
        _turn(
            "realtime/japan_travel",
            "japan_travel",
            1,
            provider="chat",
            is_fallback=True,
            attempts=3,
            calls=fallback_calls,
            start=0.4,
            request_messages=[Message.of("system", "Be brief."), input_audio_message],
            output=TurnOutput(
                text="Kyoto is sunny.",
                tool_calls=[weather_call],
                audio=audio,
                usage=Usage(input_tokens=50, output_tokens=5, total_tokens=55),
                cost=0.0002,
                metrics=TurnMetrics(first_delta_ms=300.0, total_ms=1200.0),
            ),
        ),
        _turn("realtime/tech_thread", "tech_thread", 0, text=HOSTILE_OUTPUT, status="failed", start=0.1),
        _turn(
            "realtime/weather",
            "weather",
            0,
            status="error",
            start=0.2,
            output=None,
            assertions=[],
            error=ErrorInfo(kind="authentication", message="401 Unauthorized", status=401),
            calls=[
                CallAttempt(
                    node_id="realtime/weather/1",
                    provider="realtime",
                    attempt=1,
                    started_at=T0 + 0.2,
                    ended_at=T0 + 0.25,
                    error=ErrorInfo(kind="authentication", message="401 Unauthorized", status=401),
                )
            ],
        ),
        _turn(
            "realtime/weather",
            "weather",
            1,
            status="skipped",
            start=0.3,
            output=None,
            assertions=[],
            calls=[],
            attempts=0,
            started_at=None,
            ended_at=None,
            error=ErrorInfo(kind="skipped", message="turn 1 of this conversation failed"),
        ),
    ]
