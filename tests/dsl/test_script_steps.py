"""A thread's script in time: `interrupt`, `silence`, `wait_for` and `dtmf` steps, as turn keys or as entries of
their own between turns, and the load errors that name the step, its line and what would be right."""

from __future__ import annotations

import pytest

from rtflow.errors import FlowLoadError
from rtflow.flow.loader import load_text

HEAD = """\
providers: [{providers}]
prompts: ["{{{{ q }}}}"]
"""


def _load(body: str, providers: str = "openai:realtime:gpt-realtime") -> object:
    return load_text(HEAD.format(providers=providers) + body, source="flow.yaml")


def test_step_entries_belong_to_the_turn_before_them() -> None:
    flow = _load(
        """\
threads:
  rome:
    - q: Tell me about Rome
    - interrupt: {after_ms: 600}
    - silence: 2s
    - q: Just the short version
      then: [{wait_for: response.done}, {wait_for: {event: response.created, timeout: 3s}}]
"""
    )
    first, second = flow.thread_specs()[0].turns  # type: ignore[attr-defined]
    assert first.vars == {"q": "Tell me about Rome"} and first.interrupt.after_ms == 600
    assert [step.silence for step in first.then] == [2.0]
    assert [(step.wait_for.event, step.wait_for.timeout) for step in second.then] == [
        ("response.done", 10.0),
        ("response.created", 3.0),
    ]


def test_promptfoo_tests_take_the_same_keys() -> None:
    flow = _load(
        """\
tests:
  - vars: {q: Tell me about Rome}
    metadata: {conversationId: rome}
    interrupt: {after_words: 3}
  - vars: {q: Short version}
    metadata: {conversationId: rome}
"""
    )
    first, second = flow.thread_specs()[0].turns  # type: ignore[attr-defined]
    assert first.interrupt.after_words == 3 and second.interrupt is None


@pytest.mark.parametrize(
    ("body", "line", "says"),
    [
        ("threads:\n  t:\n    - silence: 2s\n    - q: hi\n", 3, "thread `t` starts with a step"),
        ("threads:\n  t:\n    - q: hi\n    - interrupt: {}\n", 6, "exactly one of after_ms, after_words, after_event"),
        (
            "threads:\n  t:\n    - q: hi\n    - interrupt: {after_ms: 5, after_words: 2}\n",
            6,
            "(got after_ms, after_words)",
        ),
        ("threads:\n  t:\n    - q: hi\n    - silence: soon\n", 6, "expected a duration"),
        ("threads:\n  t:\n    - q: hi\n    - dtmf: '12#'\n", 6, "no client event for keypad tones"),
    ],
)
def test_a_bad_step_names_its_line_and_what_is_right(body: str, line: int, says: str) -> None:
    with pytest.raises(FlowLoadError) as caught:
        _load(body)
    assert says in caught.value.message and f"flow.yaml:{line}:" in caught.value.message, caught.value.message


def test_a_text_provider_cannot_play_a_barge_in() -> None:
    with pytest.raises(FlowLoadError) as caught:
        _load(
            "threads:\n  t:\n    - q: hi\n    - interrupt: {after_ms: 100}\n    - q: more\n", "openai:chat:gpt-4.1-mini"
        )
    message = caught.value.message
    assert "flow.yaml:6:" in message and "`interrupt` cannot be played by provider openai:chat:gpt-4.1-mini" in message
