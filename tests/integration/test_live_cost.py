"""GPT-Live turns are priced per minute of billed session time: with `price_per_minute_usd` in the provider's
config each turn's cost is the seconds the server billed during it at that price, and the turn's usage mark says
which price was used; without it, a model the price table does not list (the simulator's `gpt-live`) has no cost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from audio_support import tone_wav

import rtflow
from rtflow.sim import SimConfig

pytestmark = pytest.mark.slow  # two GPT-Live calls stream their audio in real time: about seven seconds


def test_each_turn_costs_its_billed_seconds_at_the_configured_price(tmp_path: Path) -> None:
    """Two Live providers over the same two-line call: one with a price, one without."""
    lines = [tone_wav(tmp_path / f"line{n}.wav", 0.6) for n in (1, 2)]
    base = {"turn_silence_ms": 500}
    document = {
        "providers": [
            {"id": "openai:live:gpt-live", "label": "priced", "config": {**base, "price_per_minute_usd": 0.6}},
            {"id": "openai:live:gpt-live", "label": "free", "config": base},
        ],
        "prompts": ["{{ q }}"],
        "threads": {
            "call": [{"q": "first line", "audio": str(lines[0])}, {"q": "second line", "audio": str(lines[1])}]
        },
    }
    flow = tmp_path / "flow.yaml"
    flow.write_text(yaml.safe_dump(document, sort_keys=False))
    result = rtflow.run(flow, sim=SimConfig(), store=False)
    assert [turn.status for turn in result.turns] == ["passed"] * 4, [turn.error for turn in result.turns]
    priced = sorted((turn for turn in result.turns if turn.provider == "priced"), key=lambda turn: turn.turn_index)
    free = [turn for turn in result.turns if turn.provider == "free"]
    billed_so_far = 0.0
    for turn in priced:  # one cent a second
        assert turn.output is not None
        detail = [mark.detail for mark in turn.output.events if mark.type == "session.usage.updated"][-1]
        assert detail is not None and "at $0.6/min (config price_per_minute_usd)" in detail
        found = re.match(r"([\d.]+) s billed so far; this turn ([\d.]+) s", detail)
        assert found is not None, detail
        total, this_turn = float(found[1]), float(found[2])
        assert this_turn == total - billed_so_far and this_turn >= 1
        assert turn.output.cost == pytest.approx(this_turn * 0.01)
        billed_so_far = total
    assert len(free) == 2 and all(turn.output is not None and turn.output.cost is None for turn in free)
