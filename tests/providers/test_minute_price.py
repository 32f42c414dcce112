"""GPT-Live's per-minute price: the config's when it names one, else the price table's; the table has no GPT-Live
row, so without the config key there is no price (and no cost) rather than a guess."""

from __future__ import annotations

import pytest

from rtflow.providers.pricing import cost_of_seconds, minute_price


def test_the_configured_price_is_used_and_named() -> None:
    price = minute_price("gpt-live", 0.3)
    assert price is not None and price.describe() == "$0.3/min (config price_per_minute_usd)"
    assert cost_of_seconds(90, price) == pytest.approx(0.45)


def test_no_configured_price_and_no_table_row_means_no_price() -> None:
    assert minute_price("gpt-live", None) is None
    assert minute_price("gpt-live-2026-05-01", None) is None
