"""Ids and `obfuscation` strings shaped like the live service's, random but reproducible per connection.

Live ids are a prefix and 21 base-62 characters (`event_CI7v0ZqyQ6bA1zZkYxVbW`; `call_` ids have 16). Each
connection draws them from a generator seeded with the simulator's seed and the connection's id, so a run with the
same seed and the same connection order sends the same ids. An event id is made for every event, deltas included,
so the draw must be cheap: `randbytes(n).translate(table)` costs ~0.3 µs where `choices` costs ~3 µs. Mapping a
byte onto 62 characters favours the first 8 slightly; nothing relies on the ids being uniform.
"""

from __future__ import annotations

import random
import string

__all__ = ["IdSource"]

_BASE62 = (string.ascii_letters + string.digits).encode("ascii")
_TABLE = bytes(_BASE62[byte % 62] for byte in range(256))
_ID_CHARS = 21
_CALL_ID_CHARS = 16
_OBFUSCATION_BUCKET = 16
"""The live service pads deltas so their length says little about their content: delta + obfuscation lands on a
multiple of about this many characters (at least one character of padding)."""


class IdSource:
    """The id and obfuscation generator of one connection."""

    def __init__(self, seed: int, conn_id: str) -> None:
        self._draw = random.Random(f"{seed}/{conn_id}").randbytes

    def chars(self, count: int) -> str:
        """`count` random base-62 characters."""
        return self._draw(count).translate(_TABLE).decode("ascii")

    def make(self, prefix: str) -> str:
        """A fresh id: the prefix, `_`, then 21 characters (16 for `call`)."""
        return f"{prefix}_{self.chars(_CALL_ID_CHARS if prefix == 'call' else _ID_CHARS)}"

    def obfuscation(self, delta: str) -> str:
        """The `obfuscation` padding of one delta: random characters up to the next bucket of length."""
        return self.chars(_OBFUSCATION_BUCKET - len(delta) % _OBFUSCATION_BUCKET)
