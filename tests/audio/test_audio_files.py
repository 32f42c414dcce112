"""Input files of any WAV shape become the session's format; output audio is written as playable files."""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile  # type: ignore[import-untyped]

from rtflow.audio.files import (
    AudioFileError,
    encode_for_session,
    read_wav_as_pcm16,
    silence,
    write_output_audio,
)
from rtflow.audio.g711 import ulaw_decode
from rtflow.sim.audio import decode_to_pcm16

CLIPS = Path(__file__).resolve().parents[2] / "flows" / "clips"


def _tone_file(path: Path, rate: int, channels: int, subtype: str, seconds: float = 0.5) -> None:
    time = np.arange(int(rate * seconds)) / rate
    tone = 0.5 * np.sin(2 * np.pi * 300 * time)
    soundfile.write(str(path), np.repeat(tone[:, None], channels, axis=1), rate, subtype=subtype, format="WAV")


@pytest.mark.parametrize(
    ("rate", "channels", "subtype"),
    [
        (8_000, 1, "PCM_U8"),
        (16_000, 1, "PCM_16"),
        (22_050, 2, "PCM_24"),
        (44_100, 2, "PCM_32"),
        (48_000, 6, "FLOAT"),
        (24_000, 1, "PCM_16"),
    ],
)
def test_any_wav_becomes_24k_mono_pcm16(tmp_path: Path, rate: int, channels: int, subtype: str) -> None:
    """8/16/24/32-bit and float WAVs of any rate and channel count come out as 0.5 s of 24 kHz pcm16 at level."""
    path = tmp_path / "in.wav"
    _tone_file(path, rate, channels, subtype)
    samples = np.frombuffer(read_wav_as_pcm16(path), dtype="<i2")
    assert abs(len(samples) - 12_000) <= 1
    middle = samples[2_000:10_000].astype(np.float64)
    assert np.sqrt((middle**2).mean()) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.02)


@pytest.mark.parametrize("audio_format", ["g711_ulaw", "g711_alaw"])
def test_g711_sessions_get_8k_codes(tmp_path: Path, audio_format: str) -> None:
    """For a G.711 session a 16 kHz file becomes one byte per 8 kHz sample, which decodes to the tone's level."""
    path = tmp_path / "in.wav"
    _tone_file(path, 16_000, 1, "PCM_16", seconds=1.0)
    encoded = encode_for_session(path, audio_format)
    assert len(encoded) == 8_000
    decoded = decode_to_pcm16(encoded, audio_format)[1_000:7_000].astype(np.float64)
    assert np.sqrt((decoded**2).mean()) == pytest.approx(0.5 * 32767 / np.sqrt(2), rel=0.03)


def test_committed_clips_read_as_their_durations() -> None:
    """The flow's clips (16-bit mono, 24-bit stereo, 8-bit) convert to the durations the flow asserts on."""
    seconds = {name: len(read_wav_as_pcm16(CLIPS / name)) / 48_000 for name in ("q1.wav", "q2.wav", "q3.wav")}
    assert {name: round(value, 2) for name, value in seconds.items()} == {"q1.wav": 1.5, "q2.wav": 1.25, "q3.wav": 1.0}


def test_unreadable_and_empty_files_are_named(tmp_path: Path) -> None:
    """A file that is not audio, a missing file and a file without samples each raise AudioFileError naming it."""
    (tmp_path / "text.wav").write_text("not audio")
    soundfile.write(str(tmp_path / "empty.wav"), np.zeros((0, 1)), 24_000, subtype="PCM_16")
    for name in ("text.wav", "missing.wav", "empty.wav"):
        with pytest.raises(AudioFileError, match=name):
            read_wav_as_pcm16(tmp_path / name)


def test_pcm16_output_is_a_24k_wav(tmp_path: Path) -> None:
    """pcm16 deltas are written as a 24 kHz mono 16-bit WAV holding exactly those bytes."""
    pcm = (np.arange(4_800, dtype=np.int16) * 3).astype("<i2").tobytes()
    audio = write_output_audio(pcm, tmp_path, "turn1", "pcm16")
    with wave.open(audio.file, "rb") as reader:
        assert (reader.getframerate(), reader.getnchannels(), reader.getsampwidth()) == (24_000, 1, 2)
        assert reader.readframes(reader.getnframes()) == pcm
    assert (audio.format, audio.duration_s, audio.byte_count, audio.wav_file) == ("wav", 0.2, 9_600, None)
    assert audio.playable_file == audio.file


@pytest.mark.parametrize(
    ("audio_format", "suffix", "subtype"), [("g711_ulaw", "pcmu", "ULAW"), ("g711_alaw", "pcma", "ALAW")]
)
def test_g711_output_is_raw_plus_a_playable_wav(tmp_path: Path, audio_format: str, suffix: str, subtype: str) -> None:
    """G.711 deltas are kept raw, and wrapped in a WAV that libsndfile reads as 8 kHz G.711 of the same length."""
    codes = bytes(range(256)) * 31 + b"\x7f"  # an odd length exercises the RIFF padding byte
    audio = write_output_audio(codes, tmp_path, "turn1", audio_format)
    assert Path(audio.file).suffix == f".{suffix}" and Path(audio.file).read_bytes() == codes
    assert audio.wav_file is not None and audio.playable_file == audio.wav_file
    info = soundfile.info(audio.wav_file)
    assert (info.samplerate, info.channels, info.subtype, info.frames) == (8_000, 1, subtype, len(codes))
    header = Path(audio.wav_file).read_bytes()[:12]
    assert header[:4] == b"RIFF" and struct.unpack("<I", header[4:8])[0] == Path(audio.wav_file).stat().st_size - 8
    if audio_format == "g711_ulaw":
        decoded, _ = soundfile.read(audio.wav_file, dtype="int16")
        assert np.array_equal(decoded, ulaw_decode(codes))


@pytest.mark.parametrize(("audio_format", "zero_code"), [("pcm16", 0), ("g711_ulaw", 0xFF), ("g711_alaw", 0xD5)])
def test_silence_is_each_formats_zero(audio_format: str, zero_code: int) -> None:
    """Half a second of silence is the format's code for zero, at the format's byte rate."""
    quiet = silence(0.5, audio_format)
    assert len(quiet) == (24_000 if audio_format == "pcm16" else 4_000) and set(quiet) == {zero_code}
