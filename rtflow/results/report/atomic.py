"""Exports are written whole or not at all: into a temporary file beside the target, then renamed over it.

A rename within one folder replaces the target in one step (`os.replace`, on POSIX and Windows), so a reader,
or a kill at any moment, finds the old file or the new one, never an empty or half-written one. A kill leaves
the temporary file behind (`.<name>.<random>.tmp`, hidden), never a broken target.

The streamed JSONL (`JsonlWriter`) is the exception on purpose: it is read while the run goes.
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

__all__ = ["atomic_text_file"]

_BINARY = getattr(os, "O_BINARY", 0)
"""Windows: no newline translation below Python's own."""


def _create_beside(target: Path) -> tuple[Path, int]:
    """A new, empty temporary file in `target`'s folder, created as `open()` would (mode 0666 less the umask)."""
    while True:
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            return candidate, os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _BINARY, 0o666)
        except FileExistsError:
            continue


@contextmanager
def atomic_text_file(path: Path, *, newline: str | None = None) -> Iterator[IO[str]]:
    """A UTF-8 text file to write; on leaving the block it is synced and renamed to `path`. If the block
    raises, `path` is left as it was and the temporary file removed.

    A target that is a symbolic link keeps its link: the file it points to is replaced. An existing target's
    permissions are kept."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    temporary, descriptor = _create_beside(target)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline=newline) as handle:
            with suppress(FileNotFoundError):
                os.chmod(temporary, stat.S_IMODE(target.stat().st_mode))
            yield handle
            handle.flush()
            os.fsync(handle.fileno())  # the data is on disk before the name points at it
        os.replace(temporary, target)
    except BaseException:
        with suppress(OSError):
            temporary.unlink()
        raise
