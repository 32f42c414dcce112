"""The caller's speaker: what of an answer's audio has been heard at any moment, and which words that was.

A voice agent is heard, not read. `PlaybackClock` plays the answer's audio as a speaker would: from its first
delta, at the audio's own rate, pausing when it runs out (an underrun) and going on when more arrives. So at any
time `t` the caller has heard `position(t)` milliseconds, which is what `conversation.item.truncate` must say
after a barge-in, and when the audio plays faster than it arrives the gaps are heard as gaps. Unpaced (a flow
that does not care about time), everything received counts as heard at once.

`SpokenWords` ties the answer's transcript to the audio: each transcript delta is placed at the audio position
it arrived at (servers send a word's transcript with its audio), so the words heard are those whose audio had
started before the cut. A server whose transcript runs far ahead of its audio makes this count generous; the
live service deletes the transcript of a truncated item for the same reason, and the record keeps both texts.

`first_audible_ms` finds the first sample loud enough to hear, so time to first audio counts leading silence as
waiting, as a caller would.
"""

from __future__ import annotations

from rtflow.audio.formats import BYTES_PER_SECOND

__all__ = ["AUDIBLE_LEVEL", "PlaybackClock", "SpokenWords", "audio_ms", "first_audible_ms"]

AUDIBLE_LEVEL = 0.02
"""A sample at least this loud (of full scale: about -34 dBFS) is heard; quieter is silence or noise."""


def audio_ms(byte_count: int, audio_format: str) -> float:
    """How long `byte_count` bytes of `audio_format` play, in milliseconds."""
    return byte_count * 1000.0 / BYTES_PER_SECOND[audio_format]


def first_audible_ms(data: bytes, audio_format: str) -> float | None:
    """Milliseconds into `data` of its first audible sample, or None when all of it is silence."""
    # numpy (and the G.711 codec on it) only when an answer is spoken: a text run never loads them (~0.1 s).
    import numpy as np

    from rtflow.audio.g711 import alaw_decode, ulaw_decode

    if audio_format == "g711_ulaw":
        samples = ulaw_decode(data)
    elif audio_format == "g711_alaw":
        samples = alaw_decode(data)
    else:
        samples = np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) >= AUDIBLE_LEVEL * 32768)
    if loud.size == 0:
        return None
    samples_per_ms = BYTES_PER_SECOND[audio_format] / (1000.0 * (1 if audio_format.startswith("g711") else 2))
    return float(loud[0]) / samples_per_ms


class PlaybackClock:
    """Plays audio as it arrives, at its real rate (or all at once when not `paced`); times in seconds of
    `time.perf_counter`, positions in milliseconds of audio."""

    def __init__(self, *, paced: bool = True) -> None:
        self.paced = paced
        self.received_ms = 0.0
        """Audio received so far."""
        self.started_at: float | None = None
        """When the first audio arrived (and began to play)."""
        self._anchor_at = 0.0
        self._anchor_ms = 0.0

    def position(self, now: float) -> float:
        """Milliseconds heard at `now`."""
        if not self.paced or self.started_at is None:
            return self.received_ms
        return min(self.received_ms, self._anchor_ms + (now - self._anchor_at) * 1000.0)

    def add(self, now: float, ms: float) -> None:
        """`ms` more audio arrived at `now`: it plays once what came before it has."""
        if self.started_at is None:
            self.started_at = now
        self._anchor_ms = self.position(now)
        self._anchor_at = now
        self.received_ms += ms

    def time_at(self, position_ms: float) -> float | None:
        """When the playhead reaches (or reached) `position_ms`, if no underrun comes between it and the last
        arrival; None when that audio has not been received."""
        if self.started_at is None or position_ms > self.received_ms:
            return None
        if not self.paced:
            return self._anchor_at
        return self._anchor_at + (position_ms - self._anchor_ms) / 1000.0

    def ends_at(self) -> float | None:
        """When what was received has been heard to its end."""
        return self.time_at(self.received_ms)


class SpokenWords:
    """The answer's transcript placed on its audio: each delta at the audio position it arrived at."""

    def __init__(self) -> None:
        self._pieces: list[tuple[float, str]] = []

    def add(self, position_ms: float, text: str) -> None:
        self._pieces.append((position_ms, text))

    @property
    def text(self) -> str:
        return "".join(text for _, text in self._pieces)

    def heard(self, position_ms: float) -> str:
        """The words whose audio had started before `position_ms` (a word cut in the middle was heard)."""
        words: list[str] = []
        for start, text in self._pieces:
            if start >= position_ms:
                break
            words.append(text)
        return "".join(words).rstrip()

    def word_starts(self) -> list[float]:
        """The audio position of each word's start, in order."""
        starts: list[float] = []
        for start, text in self._pieces:
            starts.extend(start for word in text.split() if word)
        return starts
