"""Image parts on their way to the wire: a `file://` image becomes the data URL both APIs take.

A prompt names an image as `image_url: file://pics/cat.png` (resolved against the flow file's folder, as audio
files are) or carries it inline as a `data:image/...;base64,` URL. The message keeps the path, so the run's records
stay small and a replayed history compares by path; the file is read only when a provider sends the message. The
file's first bytes decide whether it is a PNG or a JPEG, the two kinds the Realtime API takes; anything else, a
missing file or one too large is an InvalidRequestError naming the file and the provider.

The Realtime API takes images in the GA shape only, and only as data URLs (it fetches no web address); Chat takes
web addresses as well.
"""

from __future__ import annotations

import base64
import stat
from pathlib import Path

from rtflow.errors import InvalidRequestError
from rtflow.messages import ContentPart, Message

__all__ = ["MAX_IMAGE_BYTES", "image_data_url", "inline_images", "realtime_images"]

MAX_IMAGE_BYTES = 20 * 2**20
"""The largest image file read: OpenAI's per-image limit for vision input."""

_SIGNATURES = {b"\x89PNG\r\n\x1a\n": "image/png", b"\xff\xd8\xff": "image/jpeg"}
"""Magic bytes at the start of a file, and the media type they mean."""


def inline_images(message: Message, base_dir: Path, label: str) -> Message:
    """`message` with each `file://` image read into a data URL (the message itself when it names no file)."""
    if isinstance(message.content, str) or not any(_names_a_file(part) for part in message.content):
        return message
    parts = [_inlined(part, base_dir, label) for part in message.content]
    return message.model_copy(update={"content": parts})


def realtime_images(message: Message, dialect: str, base_dir: Path, label: str) -> Message:
    """`message` with its images as the data URLs a Realtime session takes; an error for what it cannot take."""
    if dialect == "beta":
        raise InvalidRequestError(
            f"provider {label!r} cannot send images: the beta Realtime shape has no image part (use dialect: ga)",
            provider=label,
            code="image_not_supported",
        )
    inlined = inline_images(message, base_dir, label)
    for image in inlined.images:
        if image.image_url is not None and not image.image_url.startswith("data:"):
            raise InvalidRequestError(
                f"provider {label!r} cannot send the image {image.image_url[:80]!r}: the Realtime API takes images"
                " as data URLs only (give a file:// path to a PNG or JPEG, or a data: URL)",
                provider=label,
                code="image_not_supported",
            )
    return inlined


def _names_a_file(part: ContentPart) -> bool:
    return part.image_url is not None and part.image_url.startswith("file://")


def _inlined(part: ContentPart, base_dir: Path, label: str) -> ContentPart:
    if not _names_a_file(part):
        return part
    assert part.image_url is not None
    return part.model_copy(update={"image_url": image_data_url(part.image_url, base_dir, label)})


def image_data_url(file_url: str, base_dir: Path, label: str) -> str:
    """The data URL of the PNG or JPEG file a `file://` URL names, relative paths against `base_dir`."""
    path = Path(file_url.removeprefix("file://"))
    if not path.is_absolute():
        path = base_dir / path
    data = _read_image_file(path, label)
    media_type = next((kind for magic, kind in _SIGNATURES.items() if data.startswith(magic)), None)
    if media_type is None:
        raise InvalidRequestError(
            f"the image file {path} is not a PNG or JPEG image (the formats the API takes)", provider=label
        )
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def _read_image_file(path: Path, label: str) -> bytes:
    """The file's bytes; a missing file, a folder, a device or an oversized file is an error naming it."""
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise InvalidRequestError(f"the image file {path} is not a regular file", provider=label)
        if info.st_size > MAX_IMAGE_BYTES:
            raise InvalidRequestError(
                f"the image file {path} holds {info.st_size:,} bytes; the limit is {MAX_IMAGE_BYTES:,}", provider=label
            )
        return path.read_bytes()
    except FileNotFoundError:
        raise InvalidRequestError(f"no such image file: {path}", provider=label) from None
    except OSError as exc:
        raise InvalidRequestError(f"cannot read the image file {path}: {exc.strerror or exc}", provider=label) from None
