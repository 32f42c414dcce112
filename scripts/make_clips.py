"""Make the voice clips of flows/audio.yaml (flows/clips/*.wav), the same bytes on every run.

    python scripts/make_clips.py            # writes flows/clips/
    python scripts/make_clips.py --check    # exits 1 when a committed clip differs from what this makes

With espeak-ng on the PATH (and `--espeak`) the clips are spoken by it; otherwise each is a synthesised voice-like
waveform: a 140 Hz glottal pulse train through three vowel formants, shaped into syllables. The committed clips
are the synthesised ones, so the tests never need espeak-ng. The clips deliberately differ in rate, sample width
and channel count, because reading any WAV is part of what the flow shows.
"""

from __future__ import annotations

import argparse
import hashlib
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile  # type: ignore[import-untyped]
import soxr  # type: ignore[import-untyped]

CLIPS = Path(__file__).resolve().parents[1] / "flows" / "clips"
_VOICE_HZ = 140.0
_FORMANTS = ((730.0, 90.0), (1090.0, 110.0), (2440.0, 170.0))  # an open "a" vowel: (centre, bandwidth)


@dataclass(frozen=True)
class Clip:
    """One clip: what it says, how long it lasts, and how it is stored."""

    name: str
    text: str
    seconds: float
    rate: int
    channels: int
    subtype: str
    """libsndfile's sample format: PCM_U8, PCM_16, PCM_24, PCM_32 or FLOAT."""


CLIP_SET = (
    Clip("q1.wav", "What is the capital of France?", 1.5, 16_000, 1, "PCM_16"),
    Clip("q2.wav", "And how many people live there?", 1.25, 22_050, 2, "PCM_24"),
    Clip("q3.wav", "Please read me my account balance.", 1.0, 8_000, 1, "PCM_U8"),
)


def _resonate(signal: npt.NDArray[np.float64], rate: int, centre: float, bandwidth: float) -> npt.NDArray[np.float64]:
    """A two-pole resonator (the classic formant filter), run sample by sample: clips are short."""
    radius = np.exp(-np.pi * bandwidth / rate)
    a1, a2 = 2 * radius * np.cos(2 * np.pi * centre / rate), -(radius**2)
    gain = 1 - radius
    out = np.zeros_like(signal)
    previous, before = 0.0, 0.0
    for index, value in enumerate(signal):
        current = gain * value + a1 * previous + a2 * before
        out[index] = current
        before, previous = previous, current
    return out


def synthesise(clip: Clip) -> npt.NDArray[np.float64]:
    """A voice-like waveform: syllables (one per word) of a formant-filtered pulse train, at `clip.rate`."""
    rate = clip.rate
    frames = round(clip.seconds * rate)
    time = np.arange(frames) / rate
    # The pitch glides a little, as speech does; the text picks the glide so each clip sounds different.
    glide = (int(hashlib.sha256(clip.text.encode()).hexdigest()[:4], 16) % 40) - 20
    pitch = _VOICE_HZ + glide * time / clip.seconds
    phase = np.cumsum(pitch / rate)
    pulses = (np.diff(np.floor(phase), prepend=0.0) > 0).astype(np.float64)
    voiced = sum(_resonate(pulses, rate, centre, width) for centre, width in _FORMANTS if centre < rate / 2)
    words = max(1, len(clip.text.split()))
    syllables = np.clip(np.sin(np.pi * words * time / clip.seconds), 0.0, None) ** 0.6
    envelope = syllables * np.minimum(1.0, np.minimum(time, clip.seconds - time) / 0.02)
    shaped = voiced * envelope
    return np.asarray(0.6 * shaped / np.max(np.abs(shaped)), dtype=np.float64)


def espeak(clip: Clip, folder: Path) -> npt.NDArray[np.float64]:
    """The clip spoken by espeak-ng, resampled to `clip.rate` and fitted to `clip.seconds`."""
    wav = folder / clip.name
    subprocess.run(["espeak-ng", "-w", str(wav), clip.text], check=True, capture_output=True)
    spoken, rate = soundfile.read(str(wav), dtype="float64")
    spoken = soxr.resample(spoken, rate, clip.rate)
    frames = round(clip.seconds * clip.rate)
    return np.asarray(np.pad(spoken, (0, max(0, frames - len(spoken))))[:frames], dtype=np.float64)


def render(clip: Clip, use_espeak: bool, scratch: Path) -> bytes:
    """The clip's WAV file bytes."""
    mono = espeak(clip, scratch) if use_espeak else synthesise(clip)
    samples = np.repeat(mono[:, None], clip.channels, axis=1)
    if clip.channels == 2:
        samples[:, 1] *= 0.8  # not quite the same in both ears, so the mix-down is really exercised
    target = scratch / f"out-{clip.name}"
    soundfile.write(str(target), samples, clip.rate, subtype=clip.subtype, format="WAV")
    return target.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the committed clips, write nothing")
    parser.add_argument("--espeak", action="store_true", help="speak the clips with espeak-ng when it is installed")
    parser.add_argument("--out", type=Path, default=CLIPS, help="folder to write the clips to")
    options = parser.parse_args()
    use_espeak = options.espeak and shutil.which("espeak-ng") is not None
    if options.espeak and not use_espeak:
        print("espeak-ng is not installed: synthesising the clips instead", file=sys.stderr)
    differing = []
    with tempfile.TemporaryDirectory() as scratch:
        for clip in CLIP_SET:
            data = render(clip, use_espeak, Path(scratch))
            path = options.out / clip.name
            if options.check:
                if not path.is_file() or path.read_bytes() != data:
                    differing.append(clip.name)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            print(f"{path}  {clip.seconds:g} s  {clip.rate} Hz  {clip.channels} ch  {clip.subtype}  {len(data)} bytes")
    if differing:
        print("differ from what the script makes: " + ", ".join(differing), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
