"""A dated table of list prices, to put a dollar figure on each turn.

Prices are US dollars per million tokens, read on the date below from OpenAI's model pages
(`developers.openai.com/api/docs/models/MODEL`) and checked against pydantic's genai-prices table
(`prices/providers/openai.yml`, prices checked 2026-07-22), which agrees on every row both have. A model missing
from the table gets no cost (None) rather than a guess. Dated snapshots (`gpt-4o-realtime-preview-2024-12-17`)
fall back to their family's row.

Cached input is priced at the cached text rate. The realtime models list cached audio apart (0.40 for the
gpt-realtime line, 0.30 for the minis); `Usage` does not split cached tokens by modality, so a cached audio token
is priced as cached text: exact for the gpt-realtime line, where both are 0.40, and low for the minis.

GPT-Live (`openai:live`) is billed per second of session at a per-minute rate, not per token: `_PER_MINUTE`
holds the active rate of each model page (WebSocket sessions are always active; the standby rate applies only to
paused WebRTC sessions). A provider's config may name its own (`price_per_minute_usd`), which wins.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TypeVar

from rtflow.messages import Usage

__all__ = ["PRICES_AS_OF", "MinutePrice", "Price", "cost_of", "cost_of_seconds", "minute_price", "price_for"]

PRICES_AS_OF = "2026-12-06"


@dataclass(frozen=True)
class Price:
    """Dollars per million tokens."""

    text_input: float
    cached_input: float
    text_output: float
    audio_input: float = 0.0
    audio_output: float = 0.0


_PRICES: dict[str, Price] = {
    "gpt-realtime-2.1": Price(4.00, 0.40, 24.00, 32.00, 64.00),
    "gpt-realtime-2.1-mini": Price(0.60, 0.06, 2.40, 10.00, 20.00),
    "gpt-realtime-2": Price(4.00, 0.40, 24.00, 32.00, 64.00),
    "gpt-realtime-1.5": Price(4.00, 0.40, 16.00, 32.00, 64.00),
    "gpt-realtime": Price(4.00, 0.40, 16.00, 32.00, 64.00),
    "gpt-realtime-mini": Price(0.60, 0.06, 2.40, 10.00, 20.00),
    "gpt-4o-realtime-preview": Price(5.00, 2.50, 20.00, 40.00, 80.00),
    "gpt-4o-mini-realtime-preview": Price(0.60, 0.30, 2.40, 10.00, 20.00),
    "gpt-4.1": Price(2.00, 0.50, 8.00),
    "gpt-4.1-mini": Price(0.40, 0.10, 1.60),
    "gpt-4.1-nano": Price(0.10, 0.025, 0.40),
    "gpt-4o": Price(2.50, 1.25, 10.00),
    "gpt-4o-mini": Price(0.15, 0.075, 0.60),
}

_PER_MINUTE: dict[str, float] = {
    "gpt-live-1.1": 0.05,
    "gpt-live-1": 0.05,
}
"""Dollars per minute of an active GPT-Live session, by model, as read on `PRICES_AS_OF`."""

_SNAPSHOT = re.compile(r"-\d{4}-\d{2}-\d{2}$")
"""The date that ends a snapshot's name (`gpt-4o-realtime-preview-2024-12-17`)."""

_Row = TypeVar("_Row")


def _row(table: dict[str, _Row], model: str) -> _Row | None:
    """The model's row of `table`; a dated snapshot without its own row falls back to its family's."""
    if model in table:
        return table[model]
    return table.get(_SNAPSHOT.sub("", model))


@dataclass(frozen=True)
class MinutePrice:
    """A per-minute price and where it came from."""

    usd_per_minute: float
    source: str
    """`config price_per_minute_usd`, or `price table of <date>`."""

    def describe(self) -> str:
        """`$0.20/min (config price_per_minute_usd)`, for a turn's record."""
        return f"${self.usd_per_minute:g}/min ({self.source})"


def minute_price(model: str, configured: float | None) -> MinutePrice | None:
    """The per-minute price of a Live model: the config's when it names one, else the table's, else None."""
    if configured is not None:
        return MinutePrice(configured, "config price_per_minute_usd")
    listed = _row(_PER_MINUTE, model)
    return MinutePrice(listed, f"price table of {PRICES_AS_OF}") if listed is not None else None


def cost_of_seconds(seconds: float, price: MinutePrice) -> float:
    """Dollars for `seconds` of billed session time."""
    return seconds / 60 * price.usd_per_minute


def price_for(model: str) -> Price | None:
    """The model's price row, or None when the table does not know it."""
    return _row(_PRICES, model)


def cost_of(model: str, usage: Usage) -> float | None:
    """The turn's cost in dollars, or None for a model without a price."""
    price = price_for(model)
    if price is None:
        return None
    cached = min(usage.cached_tokens, usage.input_tokens)
    audio_in = min(usage.input_audio_tokens, usage.input_tokens - cached)
    text_in = max(usage.input_tokens - cached - audio_in, 0)
    audio_out = min(usage.output_audio_tokens, usage.output_tokens)
    text_out = usage.output_tokens - audio_out
    dollars = (
        text_in * price.text_input
        + cached * price.cached_input
        + audio_in * price.audio_input
        + text_out * price.text_output
        + audio_out * price.audio_output
    )
    return dollars / 1_000_000
