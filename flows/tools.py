"""Tool handlers for the example flows.

`get_weather` is named per tool (`function_handlers: {get_weather: file://tools.py:get_weather}`) and receives
the parsed JSON arguments. `handle` is promptfoo's single dispatcher form (`functionCallHandler:
file://tools.py:handle`), called with the tool's name and its arguments as a JSON string.

The weather is made up but deterministic, so that runs can be compared and assertions can check it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

_CONDITIONS = ["sunny", "partly cloudy", "cloudy", "light rain", "windy"]


def get_weather(args: dict[str, Any]) -> dict[str, Any]:
    """Made-up current weather for `args["location"]` (same place, same weather)."""
    location = str(args.get("location") or "").strip()
    if not location:
        raise ValueError("get_weather needs a location")
    unit = str(args.get("unit") or "celsius")
    seed = int(hashlib.sha256(location.lower().encode("utf-8")).hexdigest()[:8], 16)
    celsius = 5 + seed % 25
    temperature = celsius if unit == "celsius" else round(celsius * 9 / 5 + 32)
    return {
        "location": location,
        "temperature": temperature,
        "unit": unit,
        "conditions": _CONDITIONS[seed % len(_CONDITIONS)],
    }


def handle(name: str, arguments: str) -> str:
    """promptfoo-style dispatcher: the tool's name and its JSON arguments in, a JSON string out."""
    handlers = {"get_weather": get_weather}
    if name not in handlers:
        raise ValueError(f"no handler for tool {name!r}")
    return json.dumps(handlers[name](json.loads(arguments or "{}")))
