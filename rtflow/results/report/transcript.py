"""Each conversation as the report's transcripts tell it: turn by turn, what was said and sent, and how it went.

A turn's view holds what its header and bubbles show (the question, the answer, for an answer the caller cut
short the part heard set apart from the rest, its audio) and what its details fold away: the system prompt and
the exact messages the model was sent (`TurnRecord.request_messages`), the prompt rendered for the turn when
it says more than the last message, the variables and every call attempt. The matrix and the filters read the
same views, so a turn is one thing wherever the report shows it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from hashlib import sha1
from pathlib import Path

from rtflow.messages import AUDIO_PART_TYPES, Interruption, Message, TurnOutput
from rtflow.results.records import AssertionResult, TurnRecord
from rtflow.results.report.data import turn_input_text
from rtflow.results.report.dialogue import DialogueEnding, dialogue_ending
from rtflow.results.report.media import AUDIO_SUFFIXES, AudioEmbedder, AudioSource
from rtflow.results.summary import SPOKEN_METRICS, turn_taking_values, workers_of

__all__ = [
    "AnswerPart",
    "AttemptView",
    "ConversationView",
    "MessageView",
    "TurnView",
    "answer_parts",
    "conversation_views",
    "cut_label",
    "interruption_line",
    "provider_column",
    "turn_taking_line",
]

_SYSTEM_ROLES = ("system", "developer")


@dataclass(frozen=True)
class AnswerPart:
    """A stretch of an answer's text, and whether the caller heard it."""

    text: str
    heard: bool


@dataclass(frozen=True)
class MessageView:
    """One message the model was sent, as its details list it."""

    role: str
    text: str
    audio: list[str]
    """What each audio part was: its file, or `inline audio` for base64 data (which the record keeps as sent)."""


@dataclass(frozen=True)
class AttemptView:
    """One call attempt of a turn, as its details list it."""

    number: int
    node_id: str
    provider: str
    offset_ms: float
    """When it started, in ms after the turn's first attempt started."""
    duration_ms: float
    outcome: str
    """`answered`, or the error (`server_error (500): ...`)."""
    failed: bool


@dataclass
class TurnView:
    """A turn as the report shows it."""

    record: TurnRecord
    anchor: str
    """The id of its transcript element (the matrix, the timeline and the compare view link to it)."""
    input_text: str
    input_audio: list[AudioSource]
    output_audio: AudioSource | None
    answer_parts: list[AnswerPart] | None = None
    """For an answer cut short: its text in heard and unheard stretches (None: shown whole, or not splittable)."""
    cut_label: str | None = None
    """What the unheard stretch is labelled with (`not heard — cut at 600 ms`)."""
    interruption_line: str | None = None
    """The barge-in as the flow asked for it and as it went, for an answer cut short."""
    turn_taking: list[str] = field(default_factory=list)
    """The turn's own turn-taking metrics (`ttfa 420 ms`), for its header."""
    verdicts_below: bool = False
    """Whether the turn's assertions are its dialogue's verdicts, shown once after the whole dialogue instead."""
    system_prompt: list[str] = field(default_factory=list)
    """The text of every system (or developer) message sent."""
    sent: list[MessageView] = field(default_factory=list)
    """The messages sent, in order, system messages included, after the `sent_before` first ones."""
    sent_before: int = 0
    """How many of the first messages sent are exactly those the conversation's previous turn sent, listed
    there (a conversation's history grows turn by turn: listing it whole each time would grow the report with
    the square of its length)."""
    rendered_prompt: list[MessageView] = field(default_factory=list)
    """The turn's own rendered prompt, when it holds more than the last message sent (else empty)."""
    variables: list[tuple[str, str]] = field(default_factory=list)
    """The turn's variables, each value as JSON unless it is a string."""
    attempts: list[AttemptView] = field(default_factory=list)

    @property
    def failed_assertions(self) -> list[AssertionResult]:
        """The assertions that did not pass (the reasons the matrix shows)."""
        return [result for result in self.record.assertions if not result.passed]

    @property
    def assertion_types(self) -> list[str]:
        """The distinct assertion types of the turn, as written (`not-` prefix included)."""
        return list(dict.fromkeys(result.type for result in self.record.assertions))


@dataclass
class ConversationView:
    """One conversation's transcript."""

    conversation_id: str
    anchor: str
    column: str
    thread_id: str
    turns: list[TurnView] = field(default_factory=list)
    ending: DialogueEnding | None = None
    """For a simulated dialogue that ended: why, and the conversation's verdicts."""

    @property
    def simulated(self) -> bool:
        """Whether a simulated caller spoke in this conversation (its summary line says so)."""
        return any(view.record.dialogue is not None for view in self.turns)

    @property
    def workers(self) -> list[str]:
        """The Ray workers that ran this conversation's turns, in turn order (two when a worker died mid-way and
        another finished it); empty for a run in one process."""
        return workers_of(view.record for view in self.turns)


def _anchor(conversation_id: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", conversation_id).strip("-")
    return f"conv-{slug}-{sha1(conversation_id.encode()).hexdigest()[:6]}"


def provider_column(turn: TurnRecord) -> str:
    """The matrix column of a turn: its conversation id without the thread (primary provider, and prompt)."""
    for thread in (turn.thread_id, turn.thread_id.split("#")[0]):
        for conversation in (turn.conversation_id, turn.conversation_id.split("#")[0]):
            if conversation.endswith("/" + thread):
                return conversation[: -len(thread) - 1]
    return turn.provider


def answer_parts(text: str, heard: str) -> list[AnswerPart] | None:
    """`text` in stretches heard and not heard, when `heard` is `text` with a stretch taken out: a beginning,
    and maybe what the agent said after the barge-in (joined on after the cut, as the provider records it).
    None when `heard` is not such a part of `text`, so the report never shows a split it cannot vouch for."""
    start = next((index for index, (a, b) in enumerate(zip(text, heard, strict=False)) if a != b), None)
    if start is None:  # one is a beginning of the other
        start = min(len(text), len(heard))
    later = heard[start:]
    end = len(text) - len(later)
    if later and (end < start or not text.endswith(later)):
        return None
    unheard = text[start:end]
    gap = len(unheard) - len(unheard.lstrip())  # the heard text was stripped: the cut falls before the next word
    parts = [AnswerPart(text[: start + gap], True), AnswerPart(unheard[gap:], False), AnswerPart(later, True)]
    return [part for part in parts if part.text]


def cut_label(cut: Interruption) -> str:
    """The label of an answer's unheard stretch: where the audio was cut (a text answer: when, from the request)."""
    if cut.audio_end_ms is not None:
        return f"not heard — cut at {cut.audio_end_ms:,} ms"
    return f"not heard — cut {cut.at_ms:,.0f} ms after the request"


def interruption_line(cut: Interruption) -> str:
    """The barge-in in one line: the plan, when it came, what was truncated and how the response ended."""
    pieces = [f"barge-in {cut.plan}", f"{cut.at_ms:,.0f} ms after the request"]
    if cut.audio_end_ms is not None:
        pieces.append(f"truncated at audio_end_ms {cut.audio_end_ms:,}")
    if cut.reason:
        pieces.append(f"response ended: {cut.reason}")
    return " · ".join(pieces)


def turn_taking_line(output: TurnOutput) -> list[str]:
    """A turn's turn-taking metrics as short labelled pieces, in the order the summary lists them; none for a
    turn without spoken figures or a barge-in (a text answer's ttfb is its first delta, shown already)."""
    values = turn_taking_values(output.metrics)
    if output.interruption is None and SPOKEN_METRICS.isdisjoint(values):
        return []
    return [
        f"{name.replace('_', ' ')} {', '.join(f'{value:,.0f}' for value in each)} ms" for name, each in values.items()
    ]


def _message_view(message: Message) -> MessageView:
    audio: list[str] = []
    if not isinstance(message.content, str):
        for part in message.content:
            if part.type in AUDIO_PART_TYPES:
                audio.append(part.file or "inline audio")
    return MessageView(message.role, message.text, audio)


def _attempt_views(turn: TurnRecord) -> list[AttemptView]:
    if not turn.calls:
        return []
    first = min(call.started_at for call in turn.calls)
    views: list[AttemptView] = []
    for number, call in enumerate(turn.calls, start=1):
        error = call.error
        outcome = "answered"
        if error is not None:
            outcome = f"{error.kind}{f' ({error.status})' if error.status else ''}: {error.message}"
        views.append(
            AttemptView(
                number,
                call.node_id,
                call.provider,
                (call.started_at - first) * 1000,
                (call.ended_at - call.started_at) * 1000,
                outcome,
                error is not None,
            )
        )
    return views


def _rendered_prompt(turn: TurnRecord) -> list[MessageView]:
    """The turn's rendered prompt, unless it is just the last message sent (then it would say nothing new)."""
    prompt = turn.prompt_messages
    if not prompt or prompt == turn.request_messages[-len(prompt) :]:
        return []
    return [_message_view(message) for message in prompt]


def _variables(turn: TurnRecord) -> list[tuple[str, str]]:
    return [
        (name, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str))
        for name, value in turn.vars.items()
    ]


def _input_audio(turn: TurnRecord, flow_dir: Path, audio: AudioEmbedder) -> list[AudioSource]:
    """The players of what the caller sent: audio parts of the last user message, audio files named by the
    turn's variables, and a simulated caller's spoken line."""
    files: list[str] = []
    for message in turn.request_messages[-1:]:
        if message.role == "user" and not isinstance(message.content, str):
            files += [part.file for part in message.content if part.file]
    for value in turn.vars.values():
        if isinstance(value, str) and value.lower().endswith(AUDIO_SUFFIXES) and "\n" not in value:
            files.append(value)
    sources = [audio.source(file, flow_dir) for file in dict.fromkeys(files)]
    if turn.dialogue is not None and turn.dialogue.caller_audio:
        sources.append(audio.source(turn.dialogue.caller_audio, Path.cwd()))
    return sources


def _sent_before(turn: TurnRecord, previous: TurnRecord | None) -> int:
    """How many of the first messages `turn` sent are exactly those `previous` (the turn before it in its
    conversation) sent: they are listed there, so this turn's details leave them out."""
    earlier = previous.request_messages if previous is not None else []
    if earlier and turn.request_messages[: len(earlier)] == earlier:
        return len(earlier)
    return 0


def _turn_view(turn: TurnRecord, anchor: str, sent_before: int, flow_dir: Path, audio: AudioEmbedder) -> TurnView:
    """A turn as the report shows it, with the heard part of a cut answer set apart and only the messages sent
    after the `sent_before` first ones."""
    output: TurnOutput | None = turn.output
    recorded_audio = output.audio if output is not None else None
    view = TurnView(
        record=turn,
        anchor=anchor,
        input_text=turn_input_text(turn),
        input_audio=_input_audio(turn, flow_dir, audio),
        # Raw G.711 plays from its WAV copy; the run's audio paths are relative to where it ran.
        output_audio=audio.source(recorded_audio.playable_file, Path.cwd()) if recorded_audio is not None else None,
        system_prompt=[message.text for message in turn.request_messages if message.role in _SYSTEM_ROLES],
        sent=[_message_view(message) for message in turn.request_messages[sent_before:]],
        sent_before=sent_before,
        rendered_prompt=_rendered_prompt(turn),
        variables=_variables(turn),
        attempts=_attempt_views(turn),
    )
    if output is None:
        return view
    view.turn_taking = turn_taking_line(output)
    if output.interruption is not None:
        view.interruption_line = interruption_line(output.interruption)
        view.cut_label = cut_label(output.interruption)
        if output.heard_text is not None:
            view.answer_parts = answer_parts(output.text, output.heard_text)
    return view


def _close_dialogue(conversation: ConversationView) -> None:
    """Set the conversation's dialogue ending, and move its verdicts off the last turn to after the dialogue,
    where they read as the whole conversation's (they are not that one answer's)."""
    conversation.ending = dialogue_ending([view.record for view in conversation.turns])
    if conversation.ending is None:
        return
    for view in conversation.turns:
        view.verdicts_below = view.record.turn_index == conversation.ending.turn_index


def conversation_views(turns: Sequence[TurnRecord], flow_dir: Path, audio: AudioEmbedder) -> list[ConversationView]:
    """Every conversation of `turns`, by conversation id, its turns in order. Audio files named by the flow
    (clips a turn sends) are relative to `flow_dir`; those the run recorded, to the working folder."""
    ordered = sorted(turns, key=lambda turn: (turn.conversation_id, turn.turn_index))
    conversations: dict[str, ConversationView] = {}
    for turn in ordered:
        view = conversations.get(turn.conversation_id)
        if view is None:
            view = conversations[turn.conversation_id] = ConversationView(
                turn.conversation_id, _anchor(turn.conversation_id), provider_column(turn), turn.thread_id
            )
        anchor = f"{view.anchor}-{turn.turn_index + 1}"
        if any(other.anchor == anchor for other in view.turns):  # a repeated turn index keeps ids unique
            anchor += f"-{len(view.turns) + 1}"
        sent_before = _sent_before(turn, view.turns[-1].record if view.turns else None)
        view.turns.append(_turn_view(turn, anchor, sent_before, flow_dir, audio))
    for conversation in conversations.values():
        _close_dialogue(conversation)
    return list(conversations.values())
