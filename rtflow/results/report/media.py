"""Audio for the report, embedded as data URLs so the one file plays its audio wherever it is copied.

Each file is embedded once: its first player holds the data URL and gets an element id; every later player of
the same file names that element (`data-same-as`) and the report's script copies the source over, so a clip
that every provider column was sent costs its bytes once. A file that cannot be embedded (gone from disk, or
larger than the limits allow) is linked by its path relative to the report instead, as older reports did, and
listed as `not_embedded` so the report can say so rather than claim to be self-contained.

Only what the run stored is embedded, as it is: no re-encoding.
"""

from __future__ import annotations

import base64
import os
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["AUDIO_SUFFIXES", "AudioEmbedder", "AudioSource", "NotEmbedded"]

AUDIO_SUFFIXES = (".wav", ".mp3", ".ogg", ".flac", ".m4a", ".webm", ".pcm")
"""What a variable's value must end with to be taken for an audio file."""

_MIME_TYPES = {
    ".wav": "audio/wav",
    ".mp3": "audio/mpeg",
    ".ogg": "audio/ogg",
    ".flac": "audio/flac",
    ".m4a": "audio/mp4",
    ".webm": "audio/webm",
}

FILE_LIMIT_BYTES = 20_000_000
"""The largest file embedded: a longer recording makes the report slow to open, so it is linked instead."""
TOTAL_LIMIT_BYTES = 200_000_000
"""The most audio one report embeds, in file bytes (the data URLs are a third larger)."""


@dataclass(frozen=True)
class AudioSource:
    """What one `<audio>` element plays: a source of its own, or the source of the element it names."""

    src: str | None
    """A `data:` URL, or a path relative to the report for a file that could not be embedded; None when
    `same_as` names the element that holds it."""
    element_id: str | None = None
    """The id of this element, when later players of the same file copy its source."""
    same_as: str | None = None
    """The id of the element whose source this one plays."""


@dataclass(frozen=True)
class NotEmbedded:
    """A file the report links instead of embedding, and why."""

    path: str
    """The file, relative to the report."""
    reason: str


@dataclass
class AudioEmbedder:
    """Hands out `AudioSource`s for the audio files of one report, embedding each file once."""

    report_dir: Path
    """The absolute folder the report is written to: links of files not embedded are relative to it."""
    embed: bool = True
    """False: link every file by its relative path (a report kept beside its run's folder)."""
    file_limit: int = FILE_LIMIT_BYTES
    total_limit: int = TOTAL_LIMIT_BYTES
    embedded_bytes: int = 0
    """File bytes embedded so far."""
    not_embedded: list[NotEmbedded] = field(default_factory=list)
    _holders: dict[Path, str] = field(default_factory=dict)
    _linked: dict[Path, str] = field(default_factory=dict)

    def source(self, file: str, base_dir: Path) -> AudioSource:
        """The source of a player for `file` (a path, or `file://` URL, relative to the absolute `base_dir`)."""
        path = (base_dir / Path(file.removeprefix("file://")).expanduser()).resolve()
        holder = self._holders.get(path)
        if holder is not None:
            return AudioSource(src=None, same_as=holder)
        linked = self._linked.get(path)
        if linked is not None:
            return AudioSource(src=linked)
        data_url = self._data_url(path) if self.embed else None
        if data_url is None:
            self._linked[path] = self._relative(path)
            return AudioSource(src=self._linked[path])
        element_id = f"audio-{len(self._holders) + 1}"
        self._holders[path] = element_id
        return AudioSource(src=data_url, element_id=element_id)

    @property
    def embedded_files(self) -> int:
        """How many distinct files are embedded."""
        return len(self._holders)

    def _relative(self, path: Path) -> str:
        return urllib.parse.quote(Path(os.path.relpath(path, self.report_dir)).as_posix())

    def _data_url(self, path: Path) -> str | None:
        """The file as a data URL; None (and a note why) when it cannot or should not be embedded."""
        try:
            size = path.stat().st_size
        except OSError:
            self._skip(path, "not found")
            return None
        if size > self.file_limit:
            self._skip(path, f"{size / 1e6:.1f} MB, over the {self.file_limit / 1e6:.0f} MB a file may embed")
            return None
        if self.embedded_bytes + size > self.total_limit:
            self._skip(path, f"the report already embeds {self.embedded_bytes / 1e6:.0f} MB of audio")
            return None
        try:
            data = path.read_bytes()
        except OSError as exc:
            self._skip(path, f"cannot be read ({exc.strerror or exc})")
            return None
        self.embedded_bytes += len(data)
        mime = _MIME_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"

    def _skip(self, path: Path, reason: str) -> None:
        self.not_embedded.append(NotEmbedded(self._relative(path), reason))
