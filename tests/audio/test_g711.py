"""G.711 u-law and A-law agree with the reference codec (stdlib audioop) on every input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from rtflow.audio.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from rtflow.sim.audio import decode_to_pcm16

with warnings.catch_warnings():
    # audioop is deprecated (and gone in 3.13); here it is only the oracle, so its warning is expected.
    warnings.simplefilter("ignore", DeprecationWarning)
    audioop = pytest.importorskip("audioop")

EVERY_SAMPLE = np.arange(-32768, 32768, dtype=np.int16)
EVERY_CODE = bytes(range(256))


def test_ulaw_encode_matches_reference_on_every_sample() -> None:
    """Each of the 65,536 16-bit samples gets the byte audioop.lin2ulaw gives it."""
    assert ulaw_encode(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE.astype("<i2").tobytes(), 2)


def test_alaw_encode_matches_reference_on_every_sample() -> None:
    """Each of the 65,536 16-bit samples gets the byte audioop.lin2alaw gives it."""
    assert alaw_encode(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE.astype("<i2").tobytes(), 2)


@pytest.mark.parametrize(("decode", "reference"), [(ulaw_decode, "ulaw2lin"), (alaw_decode, "alaw2lin")])
def test_decoders_match_reference_on_every_code(decode: object, reference: str) -> None:
    """Each of the 256 codes decodes to the sample the reference decoder gives."""
    decoded = decode(EVERY_CODE)  # type: ignore[operator]
    assert decoded.astype("<i2").tobytes() == getattr(audioop, reference)(EVERY_CODE, 2)


@pytest.mark.parametrize(("encode", "audio_format"), [(ulaw_encode, "g711_ulaw"), (alaw_encode, "g711_alaw")])
def test_simulator_hears_what_the_provider_encodes(encode: object, audio_format: str) -> None:
    """The simulator's decoder turns the provider's G.711 back into the reference's decoded samples."""
    tone = (np.sin(np.arange(800) * 2 * np.pi * 440 / 8000) * 20000).astype(np.int16)
    encoded = encode(tone)  # type: ignore[operator]
    reference = "ulaw2lin" if audio_format == "g711_ulaw" else "alaw2lin"
    expected = np.frombuffer(getattr(audioop, reference)(encoded, 2), dtype="<i2")
    assert np.array_equal(decode_to_pcm16(encoded, audio_format), expected)
