"""GPT-Live's per-minute price: the config's when it names one, else the price table's active rate for the model
(dated snapshots fall back to their family); a model the table does not know has no price rather than a guess."""

from __future__ import annotations

import pytest

from rtflow.providers.pricing import PRICES_AS_OF, cost_of_seconds, minute_price


def test_the_configured_price_is_used_and_named() -> None:
    price = minute_price("gpt-live-1", 0.3)
    assert price is not None and price.describe() == "$0.3/min (config price_per_minute_usd)"
    assert cost_of_seconds(90, price) == pytest.approx(0.45)


@pytest.mark.parametrize("model", ["gpt-live-1", "gpt-live-1.1", "gpt-live-1.1-2026-11-01"])
def test_a_listed_live_model_gets_the_tables_dated_active_rate(model: str) -> None:
    price = minute_price(model, None)
    assert price is not None
    assert price.describe() == f"$0.05/min (price table of {PRICES_AS_OF})"
    assert cost_of_seconds(30, price) == pytest.approx(0.025)


def test_an_unlisted_model_without_a_configured_price_has_no_price() -> None:
    assert minute_price("gpt-live", None) is None
    assert minute_price("my-live-clone-2026-05-01", None) is None
