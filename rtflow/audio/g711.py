"""G.711 u-law and A-law (ITU-T G.711), vectorised with numpy.

Why not a library: the stdlib `audioop` is deprecated (its DeprecationWarning is an error under the project's
pytest settings) and removed in Python 3.13; `audioop-lts` exists only for 3.13 and later; the `g711` package on
PyPI has had no release since 2021. The codec is a few table-free integer operations, so it lives here and is
checked against stdlib `audioop` over every 16-bit input in the tests (tests/audio/test_g711.py).

Encoding follows G.711's segment tables: u-law works on 14-bit values, adds the bias (0x84 >> 2), clips at 8159
and inverts the code; A-law works on 13-bit magnitudes and toggles the even bits (0x55). Both take and give
signed 16-bit samples. The Realtime provider encodes input audio with it and the simulator decodes that audio
and encodes its replies with it, so both sides of a G.711 session share one codec.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["alaw_decode", "alaw_encode", "ulaw_decode", "ulaw_encode"]

Samples = npt.NDArray[np.int16]

_ULAW_BIAS = 0x84
_ULAW_CLIP_14BIT = 8159


def _segment(magnitude: npt.NDArray[np.int32], floor_bits: int) -> npt.NDArray[np.int32]:
    """The G.711 segment (0-7): the position of the highest set bit above `floor_bits`."""
    # bit_length - 1 of each value, computed without floats so that exact powers of two land on the right side.
    highest = np.zeros_like(magnitude)
    for bit in range(1, 16):
        highest = np.where(magnitude >> bit != 0, bit, highest)
    return np.clip(highest - floor_bits, 0, 7)


def ulaw_encode(samples: Samples) -> bytes:
    """Signed 16-bit samples as u-law bytes."""
    pcm = samples.astype(np.int32) >> 2  # u-law codes 14-bit samples (an arithmetic shift, as G.711's reference)
    sign = np.where(pcm < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP_14BIT) + (_ULAW_BIAS >> 2)
    exponent = _segment(magnitude, 5)
    # The clipped top (8159 + bias) overflows the last segment: G.711 gives it the largest code there.
    mantissa = np.where(magnitude >= 0x2000, 0x0F, (magnitude >> (exponent + 1)) & 0x0F)
    return bytes((~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8).tobytes())


def ulaw_decode(data: bytes) -> Samples:
    """u-law bytes as signed 16-bit samples."""
    codes = ~np.frombuffer(data, dtype=np.uint8).astype(np.int32) & 0xFF
    exponent = (codes >> 4) & 0x07
    magnitude = ((((codes & 0x0F) << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(codes & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_encode(samples: Samples) -> bytes:
    """Signed 16-bit samples as A-law bytes."""
    pcm = samples.astype(np.int32) >> 3  # A-law codes 13-bit samples
    sign = np.where(pcm >= 0, 0x80, 0)
    magnitude = np.minimum(np.where(pcm < 0, -pcm - 1, pcm), 0xFFF)
    exponent = _segment(magnitude, 4)
    exponent = np.where(magnitude < 32, 0, exponent)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    return bytes(((sign | (exponent << 4) | mantissa) ^ 0x55).astype(np.uint8).tobytes())


def alaw_decode(data: bytes) -> Samples:
    """A-law bytes as signed 16-bit samples."""
    codes = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(codes & 0x80, magnitude, -magnitude).astype(np.int16)
