"""The HTML report: one self-contained file that works offline.

It holds a summary (with the run's turn-taking percentiles, when it has any), a threads x providers matrix,
every conversation's transcript (tool calls, verdicts, audio players, and for an answer the caller cut short the
part heard set apart from the rest), a timeline of call attempts over wall time (barge-ins marked) and the
latency distribution. A simulated dialogue reads as a chat: each caller line (`caller (simulated)`) then the
agent's answer, and after the last, why it stopped and the conversation's verdicts (from `dialogue`). Charts
are inline SVG from `charts`; the CSS and the small script are inlined from package data. Jinja2 autoescapes
everything, so model output is text, never markup, and a content security policy lets only the report's own
script run.

Audio players point at the files where the run left them, by a path relative to the report, so the report and
the run's folder can move together.
"""

from __future__ import annotations

import os
import re
import secrets
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from hashlib import sha1
from importlib.resources import files
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from rtflow.messages import Interruption, TurnOutput
from rtflow.results.records import RunRecord, TurnRecord
from rtflow.results.report.atomic import atomic_text_file
from rtflow.results.report.charts import histogram_svg, timeline_svg
from rtflow.results.report.data import turn_input_text
from rtflow.results.report.dialogue import DialogueEnding, dialogue_ending
from rtflow.results.summary import SPOKEN_METRICS, RunSummary, turn_taking_values

__all__ = ["render_html", "write_html"]

_AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a", ".webm", ".pcm")
_environment = Environment(
    loader=PackageLoader("rtflow.results.report", "."),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True, default=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


@dataclass
class MatrixCell:
    """One thread against one provider column: its turns' verdicts."""

    passed: int = 0
    total: int = 0
    worst: str = "passed"
    """The most serious status among the cell's turns: error > failed > skipped > pending > passed."""
    anchor: str = ""


@dataclass(frozen=True)
class AnswerPart:
    """A stretch of an answer's text, and whether the caller heard it."""

    text: str
    heard: bool


@dataclass
class TurnView:
    """A turn as the transcript shows it."""

    record: TurnRecord
    input_text: str
    input_audio: list[str]
    output_audio: str | None
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


_SEVERITY = {"passed": 0, "pending": 1, "skipped": 2, "failed": 3, "error": 4}


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


def _media_src(file: str, base_dir: Path, report_dir: Path) -> str:
    """`file` (relative to the absolute `base_dir`) as a URL relative to the absolute `report_dir`."""
    path = Path(file.removeprefix("file://")).expanduser()
    return urllib.parse.quote(Path(os.path.relpath(base_dir / path, report_dir)).as_posix())


def _input_audio(turn: TurnRecord, flow_dir: Path, report_dir: Path) -> list[str]:
    sources: list[str] = []
    for message in turn.request_messages[-1:]:
        if message.role == "user" and not isinstance(message.content, str):
            sources += [_media_src(part.file, flow_dir, report_dir) for part in message.content if part.file]
    for value in turn.vars.values():
        if isinstance(value, str) and value.lower().endswith(_AUDIO_SUFFIXES) and "\n" not in value:
            sources.append(_media_src(value, flow_dir, report_dir))
    return list(dict.fromkeys(sources))


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


def _turn_view(turn: TurnRecord, input_audio: list[str], output_audio: str | None) -> TurnView:
    """A turn as the transcript shows it, with the heard part of a cut answer set apart."""
    view = TurnView(record=turn, input_text=turn_input_text(turn), input_audio=input_audio, output_audio=output_audio)
    output: TurnOutput | None = turn.output
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


def _matrix(
    conversations: Sequence[ConversationView],
) -> tuple[list[str], list[str], dict[tuple[str, str], MatrixCell]]:
    threads = list(dict.fromkeys(conversation.thread_id for conversation in conversations))
    columns = list(dict.fromkeys(conversation.column for conversation in conversations))
    cells: dict[tuple[str, str], MatrixCell] = {}
    for conversation in conversations:
        key = (conversation.thread_id, conversation.column)
        cell = cells.get(key)
        if cell is None:
            cell = cells[key] = MatrixCell(anchor=conversation.anchor)
        for view in conversation.turns:
            status = view.record.status
            cell.total += 1
            cell.passed += status == "passed"
            if _SEVERITY[status] > _SEVERITY[cell.worst]:
                cell.worst = status
    return threads, columns, cells


def _latencies(turns: Sequence[TurnRecord]) -> dict[str, list[float]]:
    metrics = [turn.output.metrics for turn in turns if turn.output is not None]
    return {
        "Time to first delta": [m.first_delta_ms for m in metrics if m.first_delta_ms is not None],
        "Total turn time": [m.total_ms for m in metrics if m.total_ms is not None],
    }


def _timestamp(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def render_html(
    run: RunRecord, turns: Sequence[TurnRecord], report_dir: Path, *, summary: RunSummary | None = None
) -> str:
    """The report as a string; audio paths are made relative to `report_dir`, where it will be written.
    `summary` defaults to the summary of the whole run from `turns`."""
    # Resolved once: every audio path of every turn is made relative to these.
    working_dir = Path.cwd()
    flow_dir = (working_dir / run.flow_path).parent if run.flow_path else working_dir
    report_dir = report_dir.absolute()
    ordered = sorted(turns, key=lambda turn: (turn.conversation_id, turn.turn_index))
    conversations: dict[str, ConversationView] = {}
    for turn in ordered:
        view = conversations.get(turn.conversation_id)
        if view is None:
            view = conversations[turn.conversation_id] = ConversationView(
                turn.conversation_id, _anchor(turn.conversation_id), provider_column(turn), turn.thread_id
            )
        audio = turn.output.audio if turn.output is not None else None
        output_audio = audio.playable_file if audio is not None else None  # raw G.711 plays from its WAV copy
        view.turns.append(
            _turn_view(
                turn,
                _input_audio(turn, flow_dir, report_dir),
                _media_src(output_audio, working_dir, report_dir) if output_audio else None,
            )
        )
    for conversation in conversations.values():
        _close_dialogue(conversation)
    threads, columns, cells = _matrix(list(conversations.values()))
    latencies = _latencies(ordered)
    template = _environment.get_template("report.html")
    return template.render(
        run=run,
        started=_timestamp(run.started_at),
        summary=summary if summary is not None else RunSummary.of(run, ordered),
        concurrency=run.options.get("concurrency"),
        threads=threads,
        columns=columns,
        cells=cells,
        conversations=list(conversations.values()),
        timeline=timeline_svg(ordered),
        histograms=[histogram_svg(values, label=label) for label, values in latencies.items()],
        css=Markup(files("rtflow.results.report").joinpath("report.css").read_text(encoding="utf-8")),
        script=Markup(files("rtflow.results.report").joinpath("report.js").read_text(encoding="utf-8")),
        nonce=secrets.token_urlsafe(16),
    )


def write_html(run: RunRecord, turns: Sequence[TurnRecord], path: Path, *, summary: RunSummary | None = None) -> None:
    """Write the report to `path` (whole or not at all)."""
    html = render_html(run, turns, path.parent, summary=summary)
    with atomic_text_file(path) as handle:
        handle.write(html)
