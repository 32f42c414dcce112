"""A flow whose prompts hold images, run against the simulator: JSON prompt files in either API's spelling name a
PNG beside the flow, and both the Realtime and the Chat provider send it; the model says it got the image and the
input tokens count it."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path
from typing import Any

import yaml

import rtflow

QUESTION = "what is in this picture"
IMAGE_TOKENS = {"auto": 765, "low": 85}
"""The simulator's image tokens per image, by detail."""


def tiny_png() -> bytes:
    """A valid 1x1 red PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)  # width, height, 8-bit depth, RGB
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # one scanline: filter byte, then the pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def prompt_file(folder: Path, name: str, *image_parts: dict[str, Any]) -> str:
    """A promptfoo-style JSON prompt file: a system message, then the question with the image parts."""
    messages = [
        {"role": "system", "content": "Describe what the caller shows you."},
        {"role": "user", "content": [{"type": "input_text", "text": "{{ question }}"}, *image_parts]},
    ]
    (folder / name).write_text(json.dumps(messages, indent=2))
    return f"file://{name}"


def write_flow(folder: Path) -> Path:
    (folder / "pics").mkdir()
    (folder / "pics" / "red.png").write_bytes(tiny_png())
    prompts = [
        {
            "id": prompt_file(
                folder, "realtime_style.json", {"type": "input_image", "image_url": "file://pics/red.png"}
            ),
            "label": "realtime-style",
        },
        {
            "id": prompt_file(
                folder,
                "chat_style.json",
                {"type": "image_url", "image_url": {"url": "file://pics/red.png", "detail": "low"}},
            ),
            "label": "chat-style",
        },
        {"id": prompt_file(folder, "text_only.json"), "label": "text-only"},
    ]
    document = {
        "providers": [
            {"id": "openai:realtime:gpt-realtime", "label": "realtime"},
            {"id": "openai:chat:gpt-4.1-mini", "label": "chat"},
        ],
        "prompts": prompts,
        "tests": [{"vars": {"question": QUESTION}}],
    }
    path = folder / "flow.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_both_providers_send_the_image_and_count_it(tmp_path: Path) -> None:
    """Every image prompt's answer says one image was sent; its input tokens exceed the text-only prompt's by the
    image's tokens at its detail; the turn record keeps the file path, not the picture's data."""
    result = rtflow.run(write_flow(tmp_path), sim=True, store=False)
    assert result.passed, [(turn.node_id, turn.error) for turn in result.failures]
    turns = {(turn.provider, turn.prompt): turn for turn in result.turns}
    assert len(turns) == 6
    for provider in ("realtime", "chat"):
        text_only = turns[provider, "text-only"].output
        assert text_only is not None and "image" not in text_only.text
        for prompt, detail in (("realtime-style", "auto"), ("chat-style", "low")):
            turn = turns[provider, prompt]
            assert turn.output is not None
            assert turn.output.text.startswith(f'You said: "{QUESTION}"'), turn.output.text
            assert turn.output.text.endswith("and sent 1 image"), turn.output.text
            extra = turn.output.usage.input_tokens - text_only.usage.input_tokens
            assert extra == IMAGE_TOKENS[detail], (provider, prompt)
            (image,) = turn.request_messages[-1].images
            assert (image.image_url, image.detail) == ("file://pics/red.png", None if detail == "auto" else detail)
