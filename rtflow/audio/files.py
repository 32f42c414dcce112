"""Audio files in and out of the Realtime API's formats.

Input: any WAV file libsndfile reads (8/16/24/32-bit integer or float samples, any rate, any channel count,
WAVE_FORMAT_EXTENSIBLE included) is read with `soundfile`, mixed down to mono, resampled with `soxr` (VHQ) and
encoded as the session expects: pcm16 (signed 16-bit little-endian, 24 kHz) or G.711 u-law / A-law (8 kHz).

Output: a turn's audio deltas are written as a pcm16 24 kHz mono WAV file, or, for G.711 sessions, as the raw
bytes the API sent (`.pcmu` / `.pcma`) plus the same bytes in a WAV container (format tag 7 / 6) that players
and browsers play.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rtflow.audio.formats import API_SAMPLE_RATE, BYTES_PER_SECOND, SAMPLE_RATES, audio_seconds, encode_pcm16
from rtflow.messages import AudioOutput

if TYPE_CHECKING:  # numpy loads when audio is read or written: text-only runs never pay for it
    import numpy as np
    import numpy.typing as npt

# The format rules are defined in rtflow.audio.formats (shared with the simulator); the providers import them from
# here, so they stay part of this module's API.
__all__ = [
    "API_SAMPLE_RATE",
    "BYTES_PER_SECOND",
    "SAMPLE_RATES",
    "AudioFileError",
    "audio_seconds",
    "chunk",
    "clip_seconds",
    "encode_for_session",
    "read_wav_as_pcm16",
    "silence",
    "vars_audio_path",
    "write_output_audio",
]

_WAV_FORMAT_TAGS = {"pcm16": 1, "g711_alaw": 6, "g711_ulaw": 7}
_RAW_SUFFIXES = {"g711_ulaw": "pcmu", "g711_alaw": "pcma"}
_SILENCE_BYTE = {"pcm16": b"\x00", "g711_ulaw": b"\xff", "g711_alaw": b"\xd5"}  # each format's code for zero


class AudioFileError(ValueError):
    """An input audio file cannot be read or is empty; the message names the file."""


def vars_audio_path(variables: Mapping[str, Any], base_dir: Path) -> Path | None:
    """The audio file named by a turn's `vars.audio` (resolved against the flow's folder), if any."""
    value = variables.get("audio")
    if not isinstance(value, str) or not value.strip():
        return None
    path = Path(value.removeprefix("file://")).expanduser()
    return path if path.is_absolute() else base_dir / path


def clip_seconds(path: Path) -> float:
    """How long a sound file plays, from its header (the samples are not read)."""
    import soundfile  # type: ignore[import-untyped]

    try:
        return float(soundfile.info(str(path)).duration)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"cannot read input audio {path}: {exc}") from None


def _read_mono(path: Path) -> tuple[npt.NDArray[np.float32], int]:
    """The file's samples mixed down to mono floats in [-1, 1], and its sample rate."""
    import numpy as np
    import soundfile  # imported here: text-only runs should not load libsndfile

    try:
        samples, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    except (OSError, RuntimeError, soundfile.LibsndfileError) as exc:
        raise AudioFileError(f"cannot read input audio {path}: {exc}") from None
    if samples.shape[0] == 0:
        raise AudioFileError(f"input audio {path} holds no samples")
    return np.asarray(samples.mean(axis=1), dtype=np.float32), int(rate)


def _to_int16(samples: npt.NDArray[np.float32]) -> npt.NDArray[np.int16]:
    import numpy as np

    return np.clip(np.round(samples * 32767.0), -32768, 32767).astype(np.int16)


def encode_for_session(path: Path, audio_format: str = "pcm16") -> bytes:
    """The file's audio in the session's input format (`pcm16`, `g711_ulaw` or `g711_alaw`)."""
    import numpy as np

    samples, rate = _read_mono(path)
    target = SAMPLE_RATES[audio_format]
    if rate != target:
        import soxr  # type: ignore[import-untyped]  # imported here, like soundfile

        samples = np.asarray(soxr.resample(samples, rate, target, quality="VHQ"), dtype=np.float32)
    return encode_pcm16(_to_int16(samples), audio_format)


def read_wav_as_pcm16(path: Path) -> bytes:
    """The file's audio as pcm16 24 kHz mono bytes (the API's default input format)."""
    return encode_for_session(path, "pcm16")


def silence(seconds: float, audio_format: str) -> bytes:
    """`seconds` of digital silence in `audio_format` (what an open microphone sends after speech)."""
    frames = int(seconds * SAMPLE_RATES[audio_format])
    width = 2 if audio_format == "pcm16" else 1
    return _SILENCE_BYTE[audio_format] * (frames * width)


def chunk(data: bytes, size: int) -> list[bytes]:
    """`data` cut into append-sized pieces of `size` bytes (the last may be shorter)."""
    return [data[start : start + size] for start in range(0, len(data), size)]


def _wav_bytes(data: bytes, audio_format: str) -> bytes:
    """`data` in a mono WAV container. Non-PCM formats carry the `fact` chunk RIFF asks of them."""
    rate = SAMPLE_RATES[audio_format]
    width = 2 if audio_format == "pcm16" else 1
    tag = _WAV_FORMAT_TAGS[audio_format]
    if tag == 1:
        fmt = struct.pack("<HHIIHH", tag, 1, rate, rate * width, width, 8 * width)
        extra = b""
    else:
        fmt = struct.pack("<HHIIHHH", tag, 1, rate, rate * width, width, 8 * width, 0)
        extra = b"fact" + struct.pack("<II", 4, len(data) // width)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra + b"data" + struct.pack("<I", len(data))
    padding = b"\x00" if len(data) % 2 else b""  # RIFF chunks are word aligned
    return b"RIFF" + struct.pack("<I", len(body) + len(data) + len(padding)) + body + data + padding


def write_output_audio(data: bytes, folder: Path, stem: str, output_format: str) -> AudioOutput:
    """Write a turn's output audio and describe it. `output_format` is pcm16, g711_ulaw or g711_alaw."""
    folder = folder.absolute()
    folder.mkdir(parents=True, exist_ok=True)
    if output_format == "pcm16":
        data = data[: len(data) - len(data) % 2]  # a torn last sample cannot be played
    wav_path = folder / f"{stem}.wav"
    wav_path.write_bytes(_wav_bytes(data, output_format))
    rate = SAMPLE_RATES[output_format]
    duration = audio_seconds(len(data), output_format)
    if output_format == "pcm16":
        return AudioOutput(
            file=str(wav_path), format="wav", duration_s=duration, sample_rate=rate, byte_count=len(data)
        )
    kind = _RAW_SUFFIXES[output_format]
    raw_path = folder / f"{stem}.{kind}"
    raw_path.write_bytes(data)
    return AudioOutput(
        file=str(raw_path),
        format=kind,
        duration_s=duration,
        sample_rate=rate,
        byte_count=len(data),
        wav_file=str(wav_path),
    )
