"""A spoken answer laid out in time: leading silence, then each word's tone and gap, and the deltas that carry it.

The word timeline (where each word starts and ends, in milliseconds of the answer's audio, leading silence
included) is what ties the transcript to the audio: a word's transcript delta goes out just before the first
audio delta that holds the word's start, and `conversation.item.truncate` keeps the words whose audio started
before the cut. Unpaced, the answer goes out as today: the silence as one delta, then one delta per word. Paced
(`VoiceConfig.realtime_audio`), the whole audio is cut into equal chunks that the response sends at the rate they
play.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass

from rtflow.audio.formats import BYTES_PER_SECOND
from rtflow.sim.audio import silence, synthesize_word, word_audio

__all__ = ["AudioStep", "SpokenAnswer", "SpokenTimeline", "WordSpan"]


@dataclass(frozen=True)
class WordSpan:
    """One word of a spoken answer: its transcript delta and where its audio lies."""

    text: str
    """The transcript delta: the word and the space after it (none after the last word)."""
    start_ms: float
    """Where its tone starts, in milliseconds of the answer's audio."""
    end_ms: float
    """Where its audio (tone and the gap after it) ends."""


@dataclass
class SpokenTimeline:
    """The words of one assistant audio item, and how much of its audio the item holds.

    `audio_ms` grows as the response sends audio; a truncation cuts it back and fixes it (`cut_ms`), so a
    response still streaming (a cancel takes `cancel_delay_ms` to land) no longer adds to the item.
    """

    words: list[WordSpan]
    audio_ms: float = 0.0
    cut_ms: float | None = None

    def transcript_before(self, end_ms: float) -> str:
        """The transcript of the words whose audio started before `end_ms`."""
        return "".join(word.text for word in self.words if word.start_ms < end_ms).rstrip(" ")

    def cut(self, end_ms: float) -> str:
        """Keep only the audio before `end_ms`; returns the transcript that is left."""
        self.audio_ms = min(self.audio_ms, end_ms)
        self.cut_ms = end_ms
        return self.transcript_before(end_ms)


@dataclass(frozen=True)
class AudioStep:
    """One audio delta and the transcript deltas that go just before it."""

    transcript: tuple[str, ...]
    audio: str
    """Base64 audio."""
    size: int
    """Bytes of audio."""


class SpokenAnswer:
    """The audio of one answer's words, with its timeline and the two ways of cutting it into deltas."""

    def __init__(self, words: list[str], audio_format: str, leading_silence_ms: float) -> None:
        self.audio_format = audio_format
        self.bytes_per_ms = BYTES_PER_SECOND[audio_format] / 1000
        self._silence = silence(leading_silence_ms, audio_format) if leading_silence_ms > 0 else b""
        self._word_bytes = [word_audio(word, audio_format) for word in words]
        self._word_base64 = [synthesize_word(word, audio_format) for word in words]  # as an unpaced delta sends it
        last = len(words) - 1
        self._texts = [word if position == last else word + " " for position, word in enumerate(words)]
        self._starts: list[int] = []
        offset = len(self._silence)
        spans = []
        for text, audio in zip(self._texts, self._word_bytes, strict=True):
            size = len(audio)
            self._starts.append(offset)
            spans.append(WordSpan(text, self.ms(offset), self.ms(offset + size)))
            offset += size
        self.size = offset
        self.timeline = SpokenTimeline(spans)

    def ms(self, byte_count: int) -> float:
        """How long `byte_count` bytes of this answer play."""
        return byte_count / self.bytes_per_ms

    def word_steps(self) -> Iterator[AudioStep]:
        """Unpaced: the leading silence as a delta of its own, then one delta per word with its transcript."""
        if self._silence:
            yield AudioStep((), base64.b64encode(self._silence).decode("ascii"), len(self._silence))
        for text, encoded, raw in zip(self._texts, self._word_base64, self._word_bytes, strict=True):
            yield AudioStep((text,), encoded, len(raw))

    def paced_steps(self, chunk_ms: int) -> Iterator[AudioStep]:
        """Paced: `chunk_ms` deltas of the whole audio; each word's transcript before the chunk its start is in."""
        audio = self._silence + b"".join(self._word_bytes)
        chunk = round(chunk_ms * self.bytes_per_ms)
        next_word = 0
        for start in range(0, len(audio), chunk):
            end = start + chunk
            first = next_word
            while next_word < len(self._starts) and self._starts[next_word] < end:
                next_word += 1
            piece = audio[start:end]
            yield AudioStep(tuple(self._texts[first:next_word]), base64.b64encode(piece).decode("ascii"), len(piece))
