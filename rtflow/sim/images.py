"""Image input: `input_image` content parts of user messages (Realtime GA) and `image_url` parts (Chat).

The Realtime GA API takes an image as a user message part `{type: "input_image", image_url: "data:image/png;base64,
...", detail?: "auto" | "low" | "high"}`; only PNG and JPEG data URIs are accepted, and the beta shape has no image
part at all. Chat Completions takes `{type: "image_url", image_url: {url, detail?}}`, which reaches the model as the
same `input_image` part. The simulator does not look at the picture: it checks the part's shape, bills it in image
tokens (a fixed count per detail level, as a low-detail image costs a fixed 85 tokens on OpenAI's models) and tells
the model how many images the caller sent, so that the reply can say it saw them.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Mapping
from typing import Any

from rtflow.sim.session_state import SettingsError, unknown_keys

__all__ = ["chat_image_part", "check_image_part", "image_tokens"]

_DATA_URI = re.compile(r"data:image/(png|jpeg);base64,(.+)", re.DOTALL)
_IMAGE_PART_KEYS = frozenset({"type", "image_url", "detail"})
_TOKENS_BY_DETAIL = {"low": 85, "auto": 765, "high": 765}
"""Image tokens per image: 85 at low detail; a 1024x1024 picture's 765 otherwise (the simulator does not measure)."""


def check_image_part(part: Mapping[str, Any], param: str) -> dict[str, Any]:
    """An `input_image` part as the session keeps it, or SettingsError naming what is wrong with it."""
    unknown_keys(param, part, _IMAGE_PART_KEYS)
    url = part.get("image_url")
    if not isinstance(url, str):
        raise SettingsError(
            "missing_required_parameter", f"Missing required parameter: '{param}.image_url'.", f"{param}.image_url"
        )
    found = _DATA_URI.fullmatch(url)
    if found is None:
        raise SettingsError(
            "invalid_value",
            "Invalid 'image_url': expected a base64 data URI of a PNG or JPEG image (data:image/png;base64,...).",
            f"{param}.image_url",
        )
    try:
        base64.b64decode(found.group(2), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SettingsError(
            "invalid_value", "Invalid 'image_url': the data is not base64.", f"{param}.image_url"
        ) from exc
    detail = part.get("detail")
    if detail is not None and detail not in _TOKENS_BY_DETAIL:
        raise SettingsError(
            "invalid_value", "Invalid value for 'detail': expected 'auto', 'low' or 'high'.", f"{param}.detail"
        )
    checked: dict[str, Any] = {"type": "input_image", "image_url": url}
    if detail is not None:
        checked["detail"] = detail
    return checked


def chat_image_part(part: Mapping[str, Any]) -> dict[str, Any] | None:
    """A Chat `image_url` part as the model's `input_image` part (None: not an image part)."""
    if part.get("type") != "image_url":
        return None
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, Mapping) else image
    converted: dict[str, Any] = {"type": "input_image", "image_url": url}
    if isinstance(image, Mapping) and image.get("detail") is not None:
        converted["detail"] = image["detail"]
    return converted


def image_tokens(parts: Iterable[Mapping[str, Any]]) -> tuple[int, int]:
    """How many images `parts` hold, and their image tokens."""
    count = tokens = 0
    for part in parts:
        if part.get("type") == "input_image":
            count += 1
            tokens += _TOKENS_BY_DETAIL.get(str(part.get("detail") or "auto"), _TOKENS_BY_DETAIL["auto"])
    return count, tokens
