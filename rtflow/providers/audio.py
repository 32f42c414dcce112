"""WAV files in and out of the Realtime API's audio format (pcm16, 24 kHz, mono, little-endian).

Input files of another rate or channel count are mixed down and resampled with soxr; output deltas are written
back as a WAV file. G.711 output (8 kHz u-law / A-law) is written raw, as the API sends it.
"""

from __future__ import annotations

import wave
from pathlib import Path

from rtflow.messages import AudioOutput

__all__ = ["API_SAMPLE_RATE", "chunk", "read_wav_as_pcm16", "write_output_audio"]

API_SAMPLE_RATE = 24_000
_CHUNK_BYTES = 48_000  # one second of pcm16 at 24 kHz per append event keeps frames small


def read_wav_as_pcm16(path: Path) -> bytes:
    """The WAV file's audio as pcm16 24 kHz mono bytes. Raises OSError or wave.Error for unreadable files."""
    with wave.open(str(path), "rb") as reader:
        channels = reader.getnchannels()
        width = reader.getsampwidth()
        rate = reader.getframerate()
        frames = reader.readframes(reader.getnframes())
    if width != 2:
        raise wave.Error(f"{path.name}: {8 * width}-bit samples; only 16-bit PCM WAV files are supported")
    if channels == 1 and rate == API_SAMPLE_RATE:
        return frames
    import numpy as np  # imported here: text-only runs should not pay numpy's start-up time

    samples = np.frombuffer(frames, dtype="<i2").reshape(-1, channels).astype(np.float32)
    mono = samples.mean(axis=1)
    if rate != API_SAMPLE_RATE:
        import soxr  # type: ignore[import-untyped]  # imported here: only needed for files that are not already 24 kHz

        mono = soxr.resample(mono, rate, API_SAMPLE_RATE)
    return bytes(np.clip(np.round(mono), -32768, 32767).astype("<i2").tobytes())


def chunk(pcm: bytes, size: int = _CHUNK_BYTES) -> list[bytes]:
    """`pcm` cut into append-sized pieces."""
    return [pcm[start : start + size] for start in range(0, len(pcm), size)]


def write_output_audio(pcm: bytes, folder: Path, stem: str, output_format: str) -> AudioOutput:
    """Write a turn's output audio and describe it. `output_format` is pcm16, g711_ulaw or g711_alaw."""
    folder.mkdir(parents=True, exist_ok=True)
    if output_format == "pcm16":
        path = folder / f"{stem}.wav"
        with wave.open(str(path), "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(API_SAMPLE_RATE)
            writer.writeframes(pcm)
        return AudioOutput(
            file=str(path), format="wav", duration_s=len(pcm) / (2 * API_SAMPLE_RATE), sample_rate=API_SAMPLE_RATE
        )
    kind = "pcmu" if output_format == "g711_ulaw" else "pcma"
    path = folder / f"{stem}.{kind}"
    path.write_bytes(pcm)
    return AudioOutput(file=str(path), format=kind, duration_s=len(pcm) / 8000, sample_rate=8000)
