"""Deciding, request by request, which configured fault fires.

One `FaultPlan` per server: it owns the seeded generator and the per-fault fire counts, so `times` and
`probability` hold across every connection. The server runs on one event loop, so no lock is needed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable

from rtflow.sim.config import Fault, FaultKind

__all__ = ["FaultPlan"]

HANDSHAKE_KINDS: frozenset[FaultKind] = frozenset({"status", "session_expired"})
"""Kinds decided when a Realtime connection opens; every other kind is decided per response."""


class FaultPlan:
    """Which fault (if any) hits a given request."""

    def __init__(self, faults: Iterable[Fault], seed: int) -> None:
        self._faults = list(faults)
        self._model_patterns = [re.compile(f.model) if f.model else None for f in self._faults]
        self._match_patterns = [re.compile(f.match) if f.match else None for f in self._faults]
        self._fired = [0] * len(self._faults)
        self._random = random.Random(seed)

    def pick(
        self,
        endpoint: str,
        model: str,
        user_text: str | None,
        kinds: frozenset[FaultKind] | None = None,
    ) -> Fault | None:
        """The first fault that fires for this request (counting it), or None.

        `kinds` limits the candidates (the handshake only considers handshake kinds). `user_text` None means no
        text exists yet, and a fault with `match` then cannot fire.
        """
        if not self._faults:
            return None
        for index, fault in enumerate(self._faults):
            if kinds is not None and fault.kind not in kinds:
                continue
            if fault.endpoint != "any" and fault.endpoint != endpoint:
                continue
            if fault.times is not None and self._fired[index] >= fault.times:
                continue
            model_pattern = self._model_patterns[index]
            if model_pattern is not None and not model_pattern.search(model):
                continue
            match_pattern = self._match_patterns[index]
            if match_pattern is not None and (user_text is None or not match_pattern.search(user_text)):
                continue
            if fault.probability < 1.0 and self._random.random() >= fault.probability:
                continue
            self._fired[index] += 1
            return fault
        return None

    def pick_handshake(self, model: str) -> Fault | None:
        """The handshake-time fault for a new Realtime connection."""
        return self.pick("realtime", model, None, HANDSHAKE_KINDS)

    def pick_response(self, endpoint: str, model: str, user_text: str) -> Fault | None:
        """The fault for one response (Realtime) or request (Chat, speech)."""
        kinds = _RESPONSE_KINDS if endpoint == "realtime" else _HTTP_KINDS
        return self.pick(endpoint, model, user_text, kinds)


_RESPONSE_KINDS: frozenset[FaultKind] = frozenset({"close", "server_error", "rate_limited", "stall", "malformed"})
_HTTP_KINDS: frozenset[FaultKind] = _RESPONSE_KINDS | {"status"}
"""An HTTP request has no handshake of its own: a `status` fault answers the request itself."""
