"""The per-run lock: one process at a time runs (or resumes) a given run.

A claim is an exclusive advisory lock (`flock`; `msvcrt.locking` on Windows) on a small file beside the run
store, `<db>.locks/<run_id>.lock`, which also holds the claimer's pid, host and start time for the message a
second claimer gets. The operating system drops the lock when its process ends, however it ends (SIGKILL, an
out-of-memory kill, a container stopped), so a crashed run never stays locked and no pid has to be guessed
alive or dead: a pid that the system has since given to another process cannot hold a run.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import time
from contextlib import suppress
from hashlib import sha1
from pathlib import Path
from types import TracebackType

from rtflow.errors import StoreError

__all__ = ["RunClaim", "lock_path_for"]

_SAFE_RUN_ID = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,100}")
_WINDOWS_LOCK_OFFSET = 1 << 20
"""On Windows the lock covers one byte far past the holder's details, so they stay readable while it is held."""


def lock_path_for(db_path: Path, run_id: str) -> Path:
    """The lock file of run `run_id` of the store at `db_path`; ids that are not plain file names are hashed."""
    name = run_id if _SAFE_RUN_ID.fullmatch(run_id) else "run-" + sha1(run_id.encode()).hexdigest()
    return db_path.with_name(db_path.name + ".locks") / f"{name}.lock"


def _try_lock(descriptor: int) -> bool:
    """Take the exclusive lock without waiting; False when another open file holds it."""
    if sys.platform == "win32":
        import msvcrt

        os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(descriptor, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(descriptor: int) -> str:
    """Who holds the lock, from what it wrote in the file: `pid 123 on host, since 12:00:01`."""
    os.lseek(descriptor, 0, os.SEEK_SET)
    try:
        details = json.loads(os.read(descriptor, 4096) or b"{}")
        pid, host, since = details.get("pid"), details.get("host"), details.get("since")
    except (ValueError, AttributeError):
        pid = host = since = None
    if pid is None:  # it has the lock but has not written its details yet
        return "another process"
    where = f" on {host}" if host and host != socket.gethostname() else ""
    when = f", since {time.strftime('%H:%M:%S', time.localtime(since))}" if isinstance(since, int | float) else ""
    return f"another process (pid {pid}{where}{when})"


class RunClaim:
    """An exclusive claim on one run, held from `__enter__` to `__exit__` (or `acquire` to `release`).

    `acquire` raises `StoreError` naming the run and the holder's pid when another process (or another claim
    in this one) holds it."""

    def __init__(self, lock_path: Path, run_id: str) -> None:
        self.lock_path = lock_path
        self.run_id = run_id
        self._descriptor: int | None = None

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> None:
        if self._descriptor is not None:
            raise StoreError(f"run {self.run_id} is already claimed by this claim")
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            self._descriptor = self._lock()
        except OSError as exc:
            raise StoreError(f"{self.lock_path}: cannot claim run {self.run_id}: {exc}") from exc

    def _lock(self) -> int:
        while True:
            descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
            try:
                if not _try_lock(descriptor):
                    raise StoreError(
                        f"run {self.run_id} is being run by {_holder(descriptor)}; wait for it to end (or stop it)"
                        " before running or resuming it again"
                    )
                # A holder unlinks the file as it lets go; if it did so between our open and our lock, the lock
                # we hold is on a file nobody else will open: start again on the file now at the path.
                if sys.platform != "win32" and not _is_at(descriptor, self.lock_path):
                    os.close(descriptor)
                    continue
                details = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
                os.ftruncate(descriptor, 0)
                os.lseek(descriptor, 0, os.SEEK_SET)
                os.write(descriptor, json.dumps(details).encode())
            except BaseException:
                os.close(descriptor)
                raise
            return descriptor

    def release(self) -> None:
        """Let the run go. Safe to call twice."""
        descriptor, self._descriptor = self._descriptor, None
        if descriptor is None:
            return
        if sys.platform == "win32":  # Windows cannot remove an open file (the next claimer reuses it), and
            import msvcrt  # drops a lock left at close only in its own time

            os.lseek(descriptor, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
            with suppress(OSError):
                msvcrt.locking(descriptor, msvcrt.LK_UNLCK, 1)
        else:
            with suppress(OSError):  # a leftover lock file is harmless: the lock, not the file, is the claim
                self.lock_path.unlink()
        os.close(descriptor)  # closing drops the lock

    def __enter__(self) -> RunClaim:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()


def _is_at(descriptor: int, path: Path) -> bool:
    try:
        on_disk = path.stat()
    except FileNotFoundError:
        return False
    mine = os.fstat(descriptor)
    return (mine.st_dev, mine.st_ino) == (on_disk.st_dev, on_disk.st_ino)
