"""One Realtime turn on one clock: its events in order, the answer's audio as the caller hears it, the words in
that audio, and the moments that turn-taking metrics are made of.

The session (`openai_realtime`) tells a `TurnTimeline` what it sends and receives as it happens; the timeline
keeps the turn's event marks, plays the audio on a `PlaybackClock`, places transcript pieces on the audio
(`SpokenWords`), notes the first audible sample and the silences around tool calls, and at the end writes the
metrics (`TurnMetrics`) and the event marks (`EventMark`) of the turn's record. Times are `time.perf_counter`
seconds; the record's are milliseconds from the start of the turn (marks) or from the request (metrics).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import TypeAdapter

from rtflow.messages import EventMark, InterruptPlan, TurnMetrics
from rtflow.providers.playback import PlaybackClock, SpokenWords, audio_ms, first_audible_ms

__all__ = ["TurnTimeline"]

_MARKS = TypeAdapter(list[EventMark])

_RUNS = frozenset(
    {
        "response.output_audio.delta",
        "response.audio.delta",
        "response.output_audio_transcript.delta",
        "response.audio_transcript.delta",
        "response.output_text.delta",
        "response.text.delta",
        "response.function_call_arguments.delta",
        "input_audio_buffer.append",
        "conversation.item.input_audio_transcription.delta",
    }
)
"""Event types that come in runs: a run of one of them (nothing else between) is one mark with a count."""


class TurnTimeline:
    """What happened during one turn, and when."""

    def __init__(self, started: float, audio_format: str, *, paced: bool) -> None:
        self.started = started
        self.audio_format = audio_format
        self.clock = PlaybackClock(paced=paced)
        self.words = SpokenWords()
        self._marks: list[tuple[str, Literal["server", "client"], float, str | None]] = []
        self.first_delta_at: float | None = None
        """When the first delta of any kind arrived."""
        self.audible_at: float | None = None
        """When the first audible sample of the answer played."""
        self.speech_end_at: float | None = None
        """When the caller's speech ended (the VAD's speech_stopped, or the end of the clip sent)."""
        self.silence_from: float | None = None
        """While a tool call is answered: when the agent's audio before it ended."""
        self.tool_silence_ms: list[float] = []
        self.audio_item_id: str | None = None
        """The item the answer's audio belongs to (the one a barge-in truncates)."""
        self.cut_at: float | None = None
        """When the caller barged in."""
        self.last_audio_after_cut: float | None = None
        self.cut_response_done_at: float | None = None

    # -- what happens ---------------------------------------------------------------------------------------

    def server(self, kind: str, now: float, detail: str | None = None) -> None:
        self._marks.append((kind, "server", now, detail))

    def client(self, kind: str, now: float, detail: str | None = None) -> None:
        self._marks.append((kind, "client", now, detail))

    def audio(self, now: float, data: bytes, item_id: str | None) -> None:
        """An output audio delta arrived: it plays after what came before it."""
        before = self.clock.received_ms
        self.clock.add(now, audio_ms(len(data), self.audio_format))
        if self.first_delta_at is None:
            self.first_delta_at = now
        if item_id is not None:
            self.audio_item_id = item_id
        if self.cut_at is not None:
            self.last_audio_after_cut = now
        if self.audible_at is None or self.silence_from is not None:
            offset = first_audible_ms(data, self.audio_format)
            if offset is not None:
                plays_at = self.clock.time_at(before + offset) or now
                if self.audible_at is None:
                    self.audible_at = plays_at
                if self.silence_from is not None:
                    self.tool_silence_ms.append(max(0.0, plays_at - self.silence_from) * 1000)
                    self.silence_from = None

    def transcript(self, now: float, text: str) -> None:
        """A piece of the answer's audio transcript: said where the audio received so far ends."""
        if self.first_delta_at is None:
            self.first_delta_at = now
        self.words.add(self.clock.received_ms, text)

    def text(self, now: float) -> None:
        if self.first_delta_at is None:
            self.first_delta_at = now

    def tool_call_answered(self, now: float) -> None:
        """A tool's output went back: the silence lasts until the agent is heard again."""
        ends = self.clock.ends_at()
        self.silence_from = max(ends, now) if ends is not None and ends > now else now

    # -- barge-in ------------------------------------------------------------------------------------------

    def cut_time(self, plan: InterruptPlan) -> float | None:
        """When the caller barges in, as far as the audio received tells (None: not known yet)."""
        if plan.after_ms is not None:
            return self.clock.time_at(plan.after_ms)
        if plan.after_words is not None:
            starts = self.words.word_starts()
            if len(starts) > plan.after_words:
                return self.clock.time_at(starts[plan.after_words])
        return None

    def heard_ms(self, now: float) -> int:
        return int(self.clock.position(now))

    # -- the record -------------------------------------------------------------------------------------------

    def marks(self) -> list[EventMark]:
        """The event marks, runs of one delta type folded into one (folded on plain lists, then validated as one
        list: a dozen models built one by one per turn cost several times more)."""
        rows: list[dict[str, Any]] = []
        started = self.started
        for kind, source, at, detail in self._marks:
            at_ms = round((at - started) * 1000, 1)
            if rows and kind in _RUNS and rows[-1]["type"] == kind and rows[-1]["source"] == source:
                rows[-1]["last_ms"] = at_ms
                rows[-1]["count"] += 1
                continue
            rows.append({"type": kind, "source": source, "at_ms": at_ms, "count": 1, "detail": detail})
        return _MARKS.validate_python(rows)

    def fill(self, metrics: TurnMetrics, request_at: float | None, heard_ms: float | None) -> None:
        """Write the turn-taking metrics: `request_at` is when the answer was asked for, `heard_ms` how much of
        its audio the caller heard (None: all of it)."""
        if request_at is not None and self.first_delta_at is not None:
            metrics.ttfb_ms = (self.first_delta_at - request_at) * 1000
        if request_at is not None and self.audible_at is not None:
            metrics.ttfa_ms = (self.audible_at - request_at) * 1000
        answered_at = self.audible_at if self.audible_at is not None else self.first_delta_at
        speech_end = self.speech_end_at if self.speech_end_at is not None else request_at
        if answered_at is not None and speech_end is not None:
            metrics.response_latency_ms = (answered_at - speech_end) * 1000
        if self.clock.received_ms > 0:
            metrics.agent_speaking_ms = self.clock.received_ms if heard_ms is None else float(heard_ms)
        metrics.tool_silence_ms = list(self.tool_silence_ms)
        if self.cut_at is not None:
            last = self.last_audio_after_cut
            metrics.yield_ms = (last - self.cut_at) * 1000 if last is not None else 0.0
            if self.cut_response_done_at is not None:
                metrics.yield_done_ms = (self.cut_response_done_at - self.cut_at) * 1000
