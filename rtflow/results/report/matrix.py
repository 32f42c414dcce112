"""The results matrix: a row per turn of each thread, a column per provider and prompt, a cell per answer.

Two providers' answers to the same turn of the same thread sit in one row, side by side. Threads are groups of
rows. A column is a conversation's provider column (`provider_column`: its primary provider, and its prompt
when the flow has several). With `--repeat` a cell holds every copy of its turn.

Every count the matrix shows (a column's, a thread's) is the summary's `TurnFigures` of those turns, so it agrees
with the run's summary by construction: the matrix formats figures, it never counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from rtflow.results.report.media import AudioSource
from rtflow.results.report.transcript import ConversationView, TurnView
from rtflow.results.summary import TurnFigures, primary_provider

__all__ = [
    "FOLD_CHARACTERS",
    "FOLD_LINES",
    "MatrixColumn",
    "MatrixRow",
    "OverviewCell",
    "ResultsMatrix",
    "ThreadGroup",
    "is_long",
]

FOLD_CHARACTERS = 480
"""An answer longer than this is folded in its cell (the rest one click away)."""
FOLD_LINES = 8
"""An answer of more lines than this is folded too."""


def is_long(text: str) -> bool:
    """Whether a cell folds `text` away behind a 'show all'."""
    return len(text) > FOLD_CHARACTERS or text.count("\n") >= FOLD_LINES


@dataclass(frozen=True)
class MatrixColumn:
    """One provider (and prompt) column."""

    key: str
    """The provider column (`realtime`, or `realtime/prompt-2` with several prompts)."""
    provider: str
    """The primary provider's label, what the provider filter names."""
    prompt: str
    """The label of the prompt its conversations use."""
    figures: TurnFigures


@dataclass
class MatrixRow:
    """One turn of one thread, across every column."""

    turn_index: int
    question: str
    """What the user said: from the first column's record (every column is sent the same turn)."""
    description: str | None
    question_audio: list[AudioSource] = field(default_factory=list)
    """What the user sent as audio, from the same record as `question`."""
    cells: dict[str, list[TurnView]] = field(default_factory=dict)
    """Column key -> the turn in that column (several with `--repeat`)."""


@dataclass(frozen=True)
class OverviewCell:
    """One thread on one column, in the overview: its figures, its worst status and where its transcript is."""

    figures: TurnFigures
    anchor: str

    @property
    def worst(self) -> str:
        """The most serious status among its turns: error > failed > skipped > pending > passed."""
        return next(
            (status for status in ("error", "failed", "skipped", "pending") if getattr(self.figures, status)), "passed"
        )


@dataclass
class ThreadGroup:
    """One thread's rows, with its figures over every column and on each."""

    thread_id: str
    figures: TurnFigures
    rows: list[MatrixRow] = field(default_factory=list)
    overview: dict[str, OverviewCell] = field(default_factory=dict)
    """Column key -> the thread's turns on that column, summed up."""


@dataclass(frozen=True)
class ResultsMatrix:
    """The matrix of one run."""

    columns: list[MatrixColumn]
    groups: list[ThreadGroup]
    assertion_types: list[str]
    """Every assertion type some turn has, sorted: the assertion filter's choices."""

    @property
    def providers(self) -> list[str]:
        """The primary providers of the columns, in column order, each once."""
        return list(dict.fromkeys(column.provider for column in self.columns))

    @classmethod
    def of(cls, conversations: Sequence[ConversationView]) -> ResultsMatrix:
        """The matrix of `conversations` (the views of every turn of `run` in the report)."""
        column_turns: dict[str, list[TurnView]] = {}
        thread_turns: dict[str, list[TurnView]] = {}
        cell_turns: dict[tuple[str, str], list[TurnView]] = {}
        cell_anchors: dict[tuple[str, str], str] = {}
        rows: dict[str, dict[int, MatrixRow]] = {}
        for conversation in conversations:
            thread, column_key = conversation.thread_id, conversation.column
            cell_anchors.setdefault((thread, column_key), conversation.anchor)
            thread_rows = rows.setdefault(thread, {})
            for view in conversation.turns:
                column_turns.setdefault(column_key, []).append(view)
                thread_turns.setdefault(thread, []).append(view)
                cell_turns.setdefault((thread, column_key), []).append(view)
                row = thread_rows.get(view.record.turn_index)
                if row is None:
                    row = thread_rows[view.record.turn_index] = MatrixRow(
                        view.record.turn_index, view.input_text, view.record.description, view.input_audio
                    )
                row.cells.setdefault(column_key, []).append(view)
        columns = [
            MatrixColumn(key, primary_provider(views[0].record), views[0].record.prompt, _figures(views))
            for key, views in column_turns.items()
        ]
        groups = [
            ThreadGroup(thread, _figures(views), [rows[thread][index] for index in sorted(rows[thread])])
            for thread, views in thread_turns.items()
        ]
        for group in groups:
            for column in columns:
                views = cell_turns.get((group.thread_id, column.key))
                if views:
                    group.overview[column.key] = OverviewCell(
                        _figures(views), cell_anchors[(group.thread_id, column.key)]
                    )
        types = sorted({kind for views in column_turns.values() for view in views for kind in view.assertion_types})
        return cls(columns, groups, types)


def _figures(views: Sequence[TurnView]) -> TurnFigures:
    """The summary's figures of a part of the run (a column's or a thread's turns)."""
    return TurnFigures.of_turns([view.record for view in views])
