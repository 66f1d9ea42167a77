"""Walking library folders and deciding, without decoding, what needs work."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import stat
from dataclasses import dataclass, field

from clapdesk.core.ingest.audio import is_audio_path, open_regular

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FoundFile:
    path: str
    size: int
    mtime_ns: int
    ctime_ns: int = 0  # a failed file is tried again when only this moved (mode, owner, copy)


@dataclass
class ScanResult:
    found: list[FoundFile] = field(default_factory=list)
    unreadable_folders: list[tuple[str, str]] = field(default_factory=list)
    # Entries named like audio that are not readable files (link loops, dangling links, pipes),
    # with the reason: they are listed as failures, never opened (reading a pipe would hang).
    not_files: list[tuple[str, str]] = field(default_factory=list)


def walk_audio(root: str) -> ScanResult:
    """Every audio file under `root`, following folder links once (a link loop ends there)."""
    result = ScanResult()
    seen_dirs: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            info = os.stat(folder)
        except OSError as exc:
            result.unreadable_folders.append((folder, exc.strerror or str(exc)))
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen_dirs:
            continue  # a symlink loop or a folder linked twice
        seen_dirs.add(key)
        try:
            with os.scandir(folder) as entries:
                items = list(entries)
        except OSError as exc:
            result.unreadable_folders.append((folder, exc.strerror or str(exc)))
            continue
        for entry in sorted(items, key=lambda e: e.name):
            if entry.name.startswith("."):
                continue  # hidden files: macOS resource forks ("._kick.wav") are not audio
            try:
                if entry.is_dir(follow_symlinks=True):
                    stack.append(entry.path)
                    continue
                if not is_audio_path(entry.name):
                    continue
                st = entry.stat(follow_symlinks=True)
            except OSError as exc:
                reason = _link_problem(entry.path, exc)
                if reason:
                    result.not_files.append((entry.path, reason))
                continue  # otherwise the file vanished mid-scan: nothing to index
            if stat.S_ISREG(st.st_mode):
                result.found.append(FoundFile(entry.path, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
            else:
                result.not_files.append((entry.path, "not a regular file (a pipe or a device)"))
    return result


def _link_problem(path: str, exc: OSError) -> str | None:
    if exc.errno == errno.ELOOP:
        return "the link loops back on itself"
    if os.path.islink(path):
        return "the link points to a file that does not exist"
    return None


def content_hash(path: str) -> str:
    """blake2b of the whole file: identical content means identical sound.

    Only a regular file is read (a pipe or a device swapped in after the scan would never
    end), and never past the size it had when opened: /proc files say 0 and read for ever.
    """
    digest = hashlib.blake2b(digest_size=20)
    fd, st = open_regular(path)
    with os.fdopen(fd, "rb", buffering=0) as handle:
        left = st.st_size
        while left > 0 and (chunk := handle.read(min(1 << 20, left))):
            digest.update(chunk)
            left -= len(chunk)
    return digest.hexdigest()


def under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)
