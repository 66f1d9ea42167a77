"""The library's writer lock: one clapdesk at a time writes vectors, any number search.

An advisory file lock (flock) beside the catalog. SQLite already serialises single writes;
this lock guards what spans many transactions and the index cache file, such as an indexing run
or a fine-tuning, so a second clapdesk on the same library fails at once with a plain message
instead of interleaving with the first.
"""

from __future__ import annotations

import os
from pathlib import Path

try:  # advisory locks; Windows has none through fcntl and relies on SQLite's own locking
    import fcntl
except ImportError:  # pragma: no cover - not on Linux or macOS
    fcntl = None  # type: ignore[assignment]


class LibraryBusy(Exception):
    """Another clapdesk is writing to this library."""


class WriterLock:
    def __init__(self, path: Path, library_root: Path) -> None:
        self.path = path
        self.library_root = library_root
        self._handle: int | None = None

    @property
    def held(self) -> bool:
        """True while this process holds the lock (taken by acquire, not yet released)."""
        return self._handle is not None

    def acquire(self) -> None:
        """Take the lock, or raise LibraryBusy naming the process that has it. Re-entrant for
        the holder: a second acquire is a no-op, and one release frees it."""
        if fcntl is None or self._handle is not None:
            return
        handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            other = os.pread(handle, 32, 0).decode(errors="replace").strip()
            os.close(handle)
            raise LibraryBusy(
                f"the library {self.library_root} is being updated by another clapdesk"
                + (f" (process {other})" if other else "")
                + "; searching still works, indexing must wait until it finishes"
            ) from None
        self._handle = handle
        try:  # the pid only helps the message above; a full disk must not leak the lock
            os.ftruncate(handle, 0)
            os.pwrite(handle, str(os.getpid()).encode(), 0)
        except OSError:
            pass

    def release(self) -> None:
        if self._handle is not None:
            os.close(self._handle)  # closing releases the flock
            self._handle = None
