"""WAV files for tests that need a clip on disk: silence, or a sine tone loud enough to count as speech.

Imported as `audio_support` (pytest puts `tests/` on the path for `tests/conftest.py`), like the other support
modules."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import soundfile

RATE = 24_000


def silent_wav(path: Path, seconds: float = 0.05) -> Path:
    """A silent pcm16 24 kHz mono WAV file, its folder made if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(struct.pack("<h", 0) * int(RATE * seconds))
    return path


def tone_wav(path: Path, seconds: float, hz: float = 330) -> Path:
    """A sine tone at half of full scale, pcm16 24 kHz mono."""
    t = np.arange(int(RATE * seconds)) / RATE
    soundfile.write(path, (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32), RATE, subtype="PCM_16")
    return path
