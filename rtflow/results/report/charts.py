"""The report's charts as inline SVG, drawn here in Python so the report needs no script library.

Every label that comes from a run (conversation ids, provider labels, error messages) is escaped before it
enters the SVG; the functions return `Markup` only for markup they built themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

from rtflow.messages import EventMark
from rtflow.results.records import CallAttempt, TurnRecord
from rtflow.results.statistics import percentile
from rtflow.results.summary import concurrency_profile

__all__ = ["Bar", "BargeIn", "barge_ins", "histogram_svg", "timeline_bars", "timeline_svg"]

_ROW_HEIGHT = 18
_LABEL_WIDTH = 230
_PLOT_WIDTH = 720
_AXIS_HEIGHT = 22
_CONCURRENCY_HEIGHT = 60


@dataclass(frozen=True)
class Bar:
    """One call attempt placed on the timeline."""

    conversation_id: str
    attempt: CallAttempt
    outcome: str
    """What the attempt's colour says: `ok` (answered, the turn passed), `failed` (answered, an assertion failed),
    `fallback` (a fallback provider answered), `retry` (failed, another attempt followed), `error` (failed, the
    last attempt of a turn no provider answered) or `pending` (answered, not graded)."""
    turn_status: str
    """The status of the attempt's turn, so a fallback's answer that failed its assertions shows both."""
    turn_anchor: str = ""
    """The transcript element of the attempt's turn (`#` + it links there); empty: no link."""


def _outcome(turn: TurnRecord, attempt: CallAttempt, is_last: bool) -> str:
    if attempt.error is not None:
        return "error" if is_last else "retry"
    # The turn's node id is its primary's: an answer from any other node is a fallback's (as the summary counts).
    if attempt.node_id != turn.node_id:
        return "fallback"
    if turn.status in ("failed", "pending"):
        return turn.status
    return "ok"


def timeline_bars(turns: Sequence[TurnRecord], anchors: Mapping[str, str] | None = None) -> list[Bar]:
    """Every call attempt of every turn, with the outcome the timeline colours it by; `anchors` maps a turn's
    node id to its transcript element, for bars that link to their turn."""
    bars: list[Bar] = []
    for turn in turns:
        anchor = (anchors or {}).get(turn.node_id, "")
        for position, attempt in enumerate(turn.calls):
            outcome = _outcome(turn, attempt, position == len(turn.calls) - 1)
            bars.append(Bar(turn.conversation_id, attempt, outcome, turn.status, anchor))
    return bars


@dataclass(frozen=True)
class BargeIn:
    """Where the caller cut an answer short, placed on the timeline."""

    conversation_id: str
    at: float
    """Wall-clock seconds, within the answering attempt's bar."""
    label: str


_REQUEST_MARKS = frozenset({("client", "response.create"), ("server", "input_audio_buffer.speech_stopped")})
"""The events a turn's request time is taken from (`Interruption.at_ms` counts from it): the first response
asked for, or under server VAD the end of the caller's speech."""


def _request_offset_ms(events: Sequence[EventMark]) -> float:
    """When the request was made, in ms from the start of the turn (0 when no event says: the turn's start)."""
    return next((mark.at_ms for mark in events if (mark.source, mark.type) in _REQUEST_MARKS), 0.0)


def barge_ins(turns: Sequence[TurnRecord]) -> list[BargeIn]:
    """Every barge-in, on the bar of the attempt that answered. The attempt's start stands for the turn's start
    (the provider starts its turn clock a moment after it), so a mark can sit a few ms late; it is kept within
    the bar."""
    marks: list[BargeIn] = []
    for turn in turns:
        output = turn.output
        cut = output.interruption if output is not None else None
        answering = next((call for call in reversed(turn.calls) if call.error is None), None)
        if output is None or cut is None or answering is None:
            continue
        at = answering.started_at + (_request_offset_ms(output.events) + cut.at_ms) / 1000
        at = min(max(at, answering.started_at), answering.ended_at)
        label = f"{turn.node_id} · barge-in {cut.plan} · {cut.at_ms:,.0f} ms after the request"
        marks.append(BargeIn(turn.conversation_id, at, label))
    return marks


def _ticks(span: float) -> list[float]:
    """About six round tick positions over 0..span seconds."""
    if span <= 0:
        return [0.0]
    raw_step = span / 6
    magnitude = 10 ** math.floor(math.log10(raw_step))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw_step)
    return [index * step for index in range(int(span / step) + 1)]


def timeline_svg(turns: Sequence[TurnRecord], anchors: Mapping[str, str] | None = None) -> Markup:
    """Call attempts over wall time: a row per conversation, a bar per attempt coloured by how it and its turn
    ended (a tick where the caller barged in), and the concurrency beneath. With `anchors` (node id -> element
    id) each bar links to its turn's transcript."""
    bars = timeline_bars(turns, anchors)
    if not bars:
        return Markup('<p class="empty">No call attempts were recorded.</p>')
    start = min(bar.attempt.started_at for bar in bars)
    span = max(max(bar.attempt.ended_at for bar in bars) - start, 1e-3)
    conversations = sorted({bar.conversation_id for bar in bars})
    rows = {conversation: index for index, conversation in enumerate(conversations)}
    plot_height = len(conversations) * _ROW_HEIGHT
    height = plot_height + _AXIS_HEIGHT + _CONCURRENCY_HEIGHT + 10
    width = _LABEL_WIDTH + _PLOT_WIDTH + 20

    def x_of(moment: float) -> float:
        return _LABEL_WIDTH + (moment - start) / span * _PLOT_WIDTH

    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="Timeline of call attempts">'
    ]
    for conversation, row in rows.items():
        y = row * _ROW_HEIGHT
        parts.append(f'<rect class="lane" x="0" y="{y}" width="{width}" height="{_ROW_HEIGHT}"/>' if row % 2 else "")
        parts.append(f'<text class="lane-label" x="4" y="{y + 13}">{escape(conversation)}</text>')
    for bar in bars:
        attempt = bar.attempt
        x = x_of(attempt.started_at)
        bar_width = max(x_of(attempt.ended_at) - x, 1.5)
        y = rows[bar.conversation_id] * _ROW_HEIGHT + 3
        tooltip = (
            f"{attempt.node_id} · {attempt.provider} · attempt {attempt.attempt} · "
            f"{(attempt.ended_at - attempt.started_at) * 1000:.0f} ms"
        )
        if attempt.error is not None:
            tooltip += f" · {attempt.error.kind}: {attempt.error.message}"
        tooltip += f" · turn {bar.turn_status}"
        rect = (
            f'<rect class="bar {bar.outcome} turn-{bar.turn_status}" x="{x:.1f}" y="{y}" width="{bar_width:.1f}" '
            f'height="{_ROW_HEIGHT - 6}"><title>{escape(tooltip)}</title></rect>'
        )
        parts.append(f'<a href="#{escape(bar.turn_anchor)}">{rect}</a>' if bar.turn_anchor else rect)
    for mark in barge_ins(turns):
        if mark.conversation_id not in rows:
            continue
        x, y = x_of(mark.at), rows[mark.conversation_id] * _ROW_HEIGHT
        parts.append(
            f'<line class="barge-in" x1="{x:.1f}" y1="{y + 1}" x2="{x:.1f}" y2="{y + _ROW_HEIGHT - 1}">'
            f"<title>{escape(mark.label)}</title></line>"
        )
    axis_y = plot_height + 14
    for tick in _ticks(span):
        x = x_of(start + tick)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{plot_height}"/>')
        parts.append(f'<text class="tick" x="{x:.1f}" y="{axis_y}" text-anchor="middle">{tick:g}s</text>')
    parts.append(_concurrency_path([bar.attempt for bar in bars], x_of, plot_height + _AXIS_HEIGHT))
    parts.append("</svg>")
    return Markup("".join(parts))


def _concurrency_path(attempts: Sequence[CallAttempt], x_of: Callable[[float], float], top: float) -> str:
    profile = concurrency_profile(attempts)
    peak = max((count for _, count in profile), default=0) or 1
    bottom = top + _CONCURRENCY_HEIGHT - 4

    def y_of(count: int) -> float:
        return bottom - count / peak * (_CONCURRENCY_HEIGHT - 12)

    points = [f"M{x_of(profile[0][0]):.1f},{bottom:.1f}"]
    previous = 0
    for moment, count in profile:
        x = x_of(moment)
        points.append(f"L{x:.1f},{y_of(previous):.1f} L{x:.1f},{y_of(count):.1f}")
        previous = count
    return (
        f'<text class="lane-label" x="4" y="{top + 20}">in flight (peak {peak})</text>'
        f'<path class="concurrency" d="{" ".join(points)}"/>'
    )


def histogram_svg(values: Sequence[float], *, label: str, bins: int = 12) -> Markup:
    """A histogram of millisecond values with p50 and p95 marked (the percentiles the summary reports)."""
    if not values:
        return Markup(f'<p class="empty">No {escape(label)} measurements.</p>')
    low, high = min(values), max(values)
    width_ms = (high - low) / bins or 1.0
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / width_ms), bins - 1)] += 1
    width, height, left, bottom = 360, 160, 36, 130
    bar_width = (width - left - 8) / bins
    tallest = max(counts)
    parts = [
        f'<svg class="histogram" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)} distribution">',
        f'<text class="chart-title" x="{left}" y="12">{escape(label)} (ms, n={len(values)})</text>',
    ]
    for index, count in enumerate(counts):
        bar_height = count / tallest * (bottom - 56)
        x = left + index * bar_width
        bucket = f"{low + index * width_ms:.0f}–{low + (index + 1) * width_ms:.0f} ms: {count}"
        parts.append(
            f'<rect class="hist-bar" x="{x:.1f}" y="{bottom - bar_height:.1f}" '
            f'width="{max(bar_width - 2, 1):.1f}" height="{bar_height:.1f}"><title>{bucket}</title></rect>'
        )
    for row, (share, name) in enumerate(((0.5, "p50"), (0.95, "p95"))):
        mark = percentile(values, share)
        assert mark is not None
        x = left + (mark - low) / (width_ms * bins) * (width - left - 8)
        # Labels sit at the top, one line each, so they never collide with the axis labels or each other.
        anchor = "end" if x > width * 0.7 else "start"
        offset = -3 if anchor == "end" else 3
        parts.append(
            f'<line class="marker" x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{bottom}"/>'
            f'<text class="tick" x="{x + offset:.1f}" y="{30 + 12 * row}" text-anchor="{anchor}">'
            f"{name} {mark:.0f}</text>"
        )
    parts.append(f'<text class="tick" x="{left}" y="{bottom + 14}" text-anchor="start">{low:.0f}</text>')
    parts.append(f'<text class="tick" x="{width - 8}" y="{bottom + 14}" text-anchor="end">{high:.0f}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
