"""A turn's protocol warnings: what a server sent that rtflow could not use, and skipped.

A frame that is not JSON, an event type rtflow does not know, a field of the wrong type, an event of another
response, a wait the server asked for that was capped: none of these fails a turn by itself (a turn fails only
when its answer cannot be read), but each is worth seeing, because people also use rtflow to test servers of
their own. `ProtocolNotes` collects them for one turn, redacted (a server may echo the key anywhere) and bounded
(a hostile server may send a million bad frames), and logs each as `<provider>.protocol_warning`.
"""

from __future__ import annotations

from rtflow.log import get_logger
from rtflow.providers.endpoints import SecretKey, server_text

__all__ = ["ProtocolNotes"]

_KEPT = 50
"""The most warnings one turn keeps and logs; the rest are only counted."""


class ProtocolNotes:
    """The protocol warnings of one turn, in the order they arose."""

    def __init__(self, provider_label: str, *, log_event: str, key: SecretKey | None = None) -> None:
        self.provider_label = provider_label
        self.key = key
        self.warnings: list[str] = []
        """What was skipped and why, redacted, at most `_KEPT` entries."""
        self.dropped = 0
        """Warnings beyond `_KEPT`, counted but not kept."""
        self._log_event = log_event

    def __call__(self, text: str) -> None:
        """Record one warning (and log it)."""
        if len(self.warnings) >= _KEPT:
            self.dropped += 1
            return
        warning = server_text(text, self.key, limit=400)
        self.warnings.append(warning)
        get_logger().warning(self._log_event, provider=self.provider_label, warning=warning)

    def __len__(self) -> int:
        return len(self.warnings) + self.dropped

    def kept(self) -> list[str]:
        """The warnings for the turn's record: those kept, and a last line counting the rest."""
        more = [f"... and {self.dropped} more protocol warning(s), not kept"] if self.dropped else []
        return [*self.warnings, *more]

    def summary(self, limit: int = 3) -> str:
        """The first warnings in one line, for an error message (empty when there are none)."""
        if not len(self):
            return ""
        shown = "; ".join(self.warnings[:limit])
        rest = len(self) - min(limit, len(self.warnings))
        more = f"; and {rest} more" if rest > 0 else ""
        return f" (protocol warnings: {shown}{more})"
