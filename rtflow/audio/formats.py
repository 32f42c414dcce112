"""The Realtime API's audio formats: their sample and byte rates, and 16-bit samples encoded in each.

`pcm16` is signed 16-bit little-endian at 24 kHz mono; `g711_ulaw` and `g711_alaw` are one byte per sample at
8 kHz. The providers (which send files) and the simulator (which speaks and listens) both read these rules here,
so a session's two ends cannot disagree on how long a buffer plays.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # numpy loads when audio is read or written: text-only runs never pay for it
    import numpy as np
    import numpy.typing as npt

__all__ = ["API_SAMPLE_RATE", "BYTES_PER_SECOND", "SAMPLE_RATES", "audio_seconds", "encode_pcm16"]

API_SAMPLE_RATE = 24_000
SAMPLE_RATES = {"pcm16": API_SAMPLE_RATE, "g711_ulaw": 8_000, "g711_alaw": 8_000}
BYTES_PER_SECOND = {"pcm16": 2 * API_SAMPLE_RATE, "g711_ulaw": 8_000, "g711_alaw": 8_000}


def audio_seconds(byte_count: int, audio_format: str) -> float:
    """How long `byte_count` bytes of `audio_format` play."""
    return byte_count / BYTES_PER_SECOND[audio_format]


def encode_pcm16(samples: npt.NDArray[np.int16], audio_format: str) -> bytes:
    """16-bit samples (already at the format's rate) as the bytes of `audio_format`."""
    from rtflow.audio.g711 import alaw_encode, ulaw_encode  # numpy, with the codec: only when audio is encoded

    if audio_format == "g711_ulaw":
        return ulaw_encode(samples)
    if audio_format == "g711_alaw":
        return alaw_encode(samples)
    return samples.astype("<i2").tobytes()
