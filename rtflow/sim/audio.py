"""Deterministic audio: a waveform per word for output, a duration transcript and energy VAD for input.

Output: each word becomes a short tone whose pitch comes from the word's letters (200-800 Hz, 80 ms plus 20 ms
per letter, amplitude 0.3) followed by 40 ms of silence, so the same text always gives the same bytes. Text to
speech's `speed` divides both durations. It is encoded in the session's output format: pcm16 (signed 16-bit
little-endian, 24 kHz mono) or G.711 u-law / A-law (8 kHz). An answer may start with silence (`silence`);
`rtflow.sim.voice` lays the words out in time.

Input: the simulator does not understand speech. The transcript of input audio is its duration:
`audio of 1.50 seconds` (two decimals). VAD is energy based: 20 ms frames whose RMS exceeds
`threshold * 3000` (pcm16 units; threshold defaults to 0.5) count as speech.
"""

from __future__ import annotations

import base64
import zlib

import numpy as np
import numpy.typing as npt

from rtflow.audio.formats import SAMPLE_RATES, encode_pcm16
from rtflow.audio.g711 import alaw_decode, ulaw_decode

__all__ = ["EnergyVad", "decode_to_pcm16", "input_transcript", "silence", "synthesize_word", "word_audio"]

_FRAME_S = 0.02

Samples = npt.NDArray[np.int16]


def input_transcript(seconds: float) -> str:
    """The simulator's 'transcription' of input audio: its duration."""
    return f"audio of {seconds:.2f} seconds"


def decode_to_pcm16(data: bytes, audio_format: str) -> Samples:
    """Input audio as 16-bit samples (at the format's own rate)."""
    if audio_format == "g711_ulaw":
        return ulaw_decode(data)
    if audio_format == "g711_alaw":
        return alaw_decode(data)
    return np.frombuffer(data[: len(data) - len(data) % 2], dtype="<i2").astype(np.int16)


_WORD_CACHE: dict[tuple[str, str, float], tuple[bytes, str]] = {}


def word_audio(word: str, audio_format: str, speed: float = 1.0) -> bytes:
    """The audio of one word in `audio_format`'s own bytes: a tone then a gap, the same bytes every time (cached).

    `speed` divides both durations (text to speech's `speed`), keeping the pitch: a faster voice says the same
    word in less time, it does not sing higher. At 1.0 the bytes are those the Realtime answers have always had.
    """
    return _word(word, audio_format, speed)[0]


def synthesize_word(word: str, audio_format: str, speed: float = 1.0) -> str:
    """`word_audio` in base64, as an audio delta carries it (cached too)."""
    return _word(word, audio_format, speed)[1]


def _word(word: str, audio_format: str, speed: float) -> tuple[bytes, str]:
    # Both forms kept: a paced answer joins the bytes, a per-word one sends the base64, and decoding it again
    # for each answer cost 100 simultaneous answers ~0.1 s of one stalled loop.
    key = (word, audio_format, speed)
    cached = _WORD_CACHE.get(key)
    if cached is not None:
        return cached
    rate = SAMPLE_RATES[audio_format]
    letters = sum(ch.isalnum() for ch in word)
    frequency = 200 + zlib.crc32(word.lower().encode()) % 600
    tone_s = 0.08 + 0.02 * letters
    t = np.arange(int(rate * tone_s / speed)) / rate
    tone = 0.3 * 32767 * np.sin(2 * np.pi * frequency * t)
    gap = np.zeros(int(rate * 0.04 / speed))
    samples = np.concatenate([tone, gap]).astype(np.int16)
    raw = encode_pcm16(samples, audio_format)
    audio = (raw, base64.b64encode(raw).decode("ascii"))
    if len(_WORD_CACHE) < 50_000:
        _WORD_CACHE[key] = audio
    return audio


def silence(ms: float, audio_format: str) -> bytes:
    """`ms` milliseconds of silence (whole samples), in `audio_format`'s own bytes (G.711 silence is not zero)."""
    samples = np.zeros(round(ms * SAMPLE_RATES[audio_format] / 1000), dtype=np.int16)
    return encode_pcm16(samples, audio_format)


class EnergyVad:
    """Server VAD: finds where speech starts and where enough silence after it ends the turn."""

    def __init__(self, audio_format: str, threshold: float = 0.5, silence_ms: int = 500) -> None:
        self.audio_format = audio_format
        self.rate = SAMPLE_RATES[audio_format]
        self.frame = int(self.rate * _FRAME_S)
        self.level = max(threshold, 0.01) * 3000.0
        self.silence_frames_needed = max(1, round(silence_ms / (_FRAME_S * 1000)))
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_seen = 0
        self.in_speech = False
        self._silent_run = 0
        self.speech_start_ms = 0

    def reset(self) -> None:
        """Forget everything (after a commit or a clear)."""
        self._pending = np.zeros(0, dtype=np.int16)
        self._frames_seen = 0
        self.in_speech = False
        self._silent_run = 0

    def feed(self, data: bytes) -> list[tuple[str, int]]:
        """Feed appended audio; returns `("started", ms)` / `("stopped", ms)` transitions in order."""
        samples = np.concatenate([self._pending, decode_to_pcm16(data, self.audio_format)])
        whole = len(samples) // self.frame * self.frame
        self._pending = samples[whole:]
        transitions: list[tuple[str, int]] = []
        if whole == 0:
            return transitions
        frames = samples[:whole].astype(np.float64).reshape(-1, self.frame)
        loud = np.sqrt((frames**2).mean(axis=1)) > self.level
        for is_loud in loud:
            self._frames_seen += 1
            now_ms = int(self._frames_seen * _FRAME_S * 1000)
            if is_loud:
                self._silent_run = 0
                if not self.in_speech:
                    self.in_speech = True
                    self.speech_start_ms = now_ms - int(_FRAME_S * 1000)
                    transitions.append(("started", self.speech_start_ms))
            elif self.in_speech:
                self._silent_run += 1
                if self._silent_run >= self.silence_frames_needed:
                    self.in_speech = False
                    self._silent_run = 0
                    transitions.append(("stopped", now_ms))
        return transitions
