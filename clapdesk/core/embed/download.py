"""Fetching one large model file so that a producer can trust it.

The bytes land in a `.part` file named after the file's hash in clapdesk's cache, so a download
cut short by a dropped connection, a crash or kill -9 continues where it stopped on the next
start (an HTTP Range request) instead of starting from byte 0. (huggingface_hub 2.x writes each
attempt to a fresh, uniquely named temporary file and deletes it on failure, so it cannot
resume across starts.) Free space is checked before the first byte, the finished file is
checked against the hash the hub publishes for it, and each way of failing has its own message.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import shutil
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from clapdesk.core.embed.hub import (
    DiskFull,
    DownloadCancelled,
    ModelError,
    NoConnection,
    ServerFailed,
)

log = logging.getLogger(__name__)

# Pauses between attempts after a server error or a dropped connection: four attempts in all,
# about 3.5 s, short enough for a person watching and long enough for a hub restart blip.
BACKOFF_S = (0.5, 1.0, 2.0)
CHUNK = 1 << 20
PROGRESS_EVERY_S = 0.1
# Room left over after a download, so a finished model does not leave the disk at zero bytes.
SPACE_MARGIN = 64 * 1000 * 1000
MB = 1e6

try:  # one downloader per file: a second clapdesk waits instead of appending to the same part
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


@dataclass(frozen=True)
class DownloadStatus:
    """What a progress display needs: the same figures for the window and the command line."""

    label: str
    done: int
    total: int
    rate: float  # bytes per second over the last few seconds (0: not known yet)
    seconds_left: float | None

    def line(self) -> str:
        digits = 0 if self.total >= 10 * MB else 1
        parts = [f"{self.done / MB:,.{digits}f} of {self.total / MB:,.{digits}f} MB"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        if self.rate > 0:
            parts.append(f"{self.rate / MB:.1f} MB/s")
        if self.seconds_left is not None:
            parts.append(f"about {format_duration(self.seconds_left)} left")
        return f"downloading {self.label}: " + ", ".join(parts)


Progress = Callable[[DownloadStatus], None]


def format_duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class RateMeter:
    """Speed over a sliding window of a few seconds, and the time left at that speed."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.window_s = window_s
        self.clock = clock
        self.samples: deque[tuple[float, int]] = deque()

    def status(self, label: str, done: int, total: int) -> DownloadStatus:
        now = self.clock()
        self.samples.append((now, done))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        first_t, first_done = self.samples[0]
        rate = (done - first_done) / (now - first_t) if now - first_t >= 0.2 else 0.0
        left = (total - done) / rate if rate > 0 and total >= done else None
        return DownloadStatus(label, done, total, max(rate, 0.0), left)


class StderrProgress:
    """The command line's download progress: a bar redrawn in place at a terminal, otherwise
    one plain line every few seconds (a log file or a CI console gets no control codes)."""

    def __init__(self, stream: IO[str] | None = None, every_s: float = 5.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.every_s = every_s if not self.tty else 0.2
        self.last = float("-inf")

    def __call__(self, status: DownloadStatus) -> None:
        now = time.monotonic()
        finished = status.total and status.done >= status.total
        if now - self.last < self.every_s and not finished:
            return
        self.last = now
        if self.tty:
            end = "\n" if finished else ""
            self.stream.write(f"\r\x1b[Kclapdesk: {status.line()}{end}")
        else:
            self.stream.write(f"clapdesk: {status.line()}\n")
        self.stream.flush()


@dataclass(frozen=True)
class RemoteFile:
    """A file as the hub lists it: where to get it and how to check it."""

    name: str
    url: str
    size: int
    sha256: str | None  # the LFS object id the hub publishes (None for small, non-LFS files)
    blob_id: str | None  # the git blob id, which checks non-LFS files the same way

    @property
    def key(self) -> str:
        return self.sha256 or self.blob_id or hashlib.sha256(self.url.encode()).hexdigest()


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse before downloading when the folder's disk cannot hold `needed` more bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(folder).free
    if free < needed + SPACE_MARGIN:
        raise DiskFull(
            f"not enough free disk space for {what}: it needs {needed / MB:,.0f} MB in "
            f"'{folder}' and {free / MB:,.0f} MB are free. Free some space and start again "
            "(whatever was downloaded is kept)")


def partial_path(folder: Path, remote: RemoteFile) -> Path:
    return folder / f"{remote.key}.part"


def download_file(remote: RemoteFile, target: Path, partial_dir: Path, *,
                  headers: dict[str, str] | None = None, progress: Progress | None = None,
                  cancel: threading.Event | None = None, extra_space: int = 0) -> Path:
    """Fetch `remote` to `target`, resuming any earlier partial download; the hash is checked
    before the file is renamed into place, so `target` is only ever a whole, checked file."""
    partial_dir.mkdir(parents=True, exist_ok=True)
    part = partial_path(partial_dir, remote)
    with _exclusive(part.with_suffix(".lock")):
        if target.is_file() and target.stat().st_size == remote.size:
            return target  # another clapdesk finished it while this one waited
        for attempt in range(2):
            _fetch_to_part(remote, part, partial_dir, headers or {}, progress, cancel,
                           extra_space)
            if _matches(part, remote):
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(part, target)
                return target
            log.warning("%s did not match the hub's checksum (attempt %d)", remote.name, attempt + 1)
            part.unlink(missing_ok=True)  # a damaged part is worthless: start again, once
    raise ServerFailed(
        f"'{remote.name}' arrived damaged twice (it does not match the hub's checksum) and was "
        "deleted; try again later")


def _fetch_to_part(remote: RemoteFile, part: Path, partial_dir: Path, headers: dict[str, str],
                   progress: Progress | None, cancel: threading.Event | None,
                   extra_space: int) -> None:
    import httpx2
    from huggingface_hub.errors import OfflineModeIsEnabled
    from huggingface_hub.utils import get_session

    have = part.stat().st_size if part.exists() else 0
    if have > remote.size:  # not this file after all
        part.unlink()
        have = 0
    check_free_space(partial_dir, remote.size - have + extra_space, f"'{remote.name}'")
    meter = RateMeter()
    shown = float("-inf")  # progress is reported a few times a second, not once per piece
    failures, last_problem = 0, ""
    session = get_session()
    while have < remote.size:
        _check_cancel(cancel, have, remote)
        request_headers = dict(headers)
        request_headers["Accept-Encoding"] = "identity"
        if have:
            request_headers["Range"] = f"bytes={have}-"
        received = 0
        try:
            timeout = httpx2.Timeout(30.0, connect=10.0)
            with session.stream("GET", remote.url, headers=request_headers, timeout=timeout,
                                follow_redirects=True) as response:
                status = response.status_code
                if status == 416 and have:  # the part is longer than the file now is
                    part.unlink()
                    have = 0
                    continue
                if status >= 500 or status == 429:
                    raise _ServerStatus(status, response.reason_phrase)
                if status >= 400:
                    raise ServerFailed(f"the Hugging Face hub refused '{remote.name}' "
                                       f"(HTTP {status} {response.reason_phrase})")
                if have and status != 206:
                    have = 0  # the server ignored the Range: start the file again
                mode = "ab" if have else "wb"
                with open(part, mode) as handle:
                    # Pieces as they arrive, not gathered into chunks: a connection that drops
                    # mid-chunk would otherwise lose the bytes already received.
                    for chunk in response.iter_bytes():
                        _check_cancel(cancel, have, remote)
                        _write(handle, chunk, partial_dir)
                        have += len(chunk)
                        received += len(chunk)
                        now = time.monotonic()
                        if progress is not None and (now - shown >= PROGRESS_EVERY_S
                                                     or have >= remote.size):
                            shown = now
                            progress(meter.status(remote.name, have, remote.size))
                    handle.flush()
                    os.fsync(handle.fileno())
            if have < remote.size and received == 0:
                raise _ServerStatus(0, "an empty answer")
        except OfflineModeIsEnabled:
            raise NoConnection("clapdesk is set to work offline (HF_HUB_OFFLINE), so "
                               f"'{remote.name}' cannot be downloaded") from None
        except _ServerStatus as exc:
            failures = 0 if received else failures + 1
            last_problem = f"server:{exc}"
        except (httpx2.TransportError, httpx2.StreamError) as exc:
            failures = 0 if received else failures + 1
            last_problem = f"connection:{type(exc).__name__}: {exc}"
        else:
            continue
        log.info("download of %s: %s (%d bytes kept)", remote.name, last_problem, have)
        if failures > len(BACKOFF_S):
            raise _give_up(last_problem, remote, have)
        if failures:
            _sleep(BACKOFF_S[failures - 1], cancel, have, remote)


class _ServerStatus(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}" if status else reason)


def _give_up(problem: str, remote: RemoteFile, have: int) -> ModelError:
    kind, _, detail = problem.partition(":")
    kept = f"the {have / MB:,.0f} MB fetched are kept and the download continues from there"
    if kind == "server":
        return ServerFailed(
            f"the Hugging Face hub answered '{detail}' {len(BACKOFF_S) + 1} times in a row "
            f"while sending '{remote.name}'; try again later ({kept})")
    return NoConnection(
        f"the connection to the Hugging Face hub failed {len(BACKOFF_S) + 1} times in a row "
        f"while downloading '{remote.name}' ({detail}); check the internet connection and "
        f"start again ({kept})")


def _write(handle: IO[bytes], chunk: bytes, folder: Path) -> None:
    try:
        handle.write(chunk)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DiskFull(f"the disk holding '{folder}' filled up during the download; free "
                           "some space and start again (what was fetched is kept)") from exc
        raise


def _check_cancel(cancel: threading.Event | None, have: int, remote: RemoteFile) -> None:
    if cancel is not None and cancel.is_set():
        raise DownloadCancelled(
            f"the download of '{remote.name}' was stopped; the {have / MB:,.0f} MB fetched "
            "are kept and it continues from there next time")


def _sleep(seconds: float, cancel: threading.Event | None, have: int, remote: RemoteFile) -> None:
    if cancel is None:
        time.sleep(seconds)
    elif cancel.wait(seconds):
        _check_cancel(cancel, have, remote)


def _matches(path: Path, remote: RemoteFile) -> bool:
    """The finished file against the hub's own hash: SHA-256 for LFS files, else git's blob id."""
    if path.stat().st_size != remote.size:
        return False
    if remote.sha256:
        digest = hashlib.sha256()
        expected = remote.sha256
    elif remote.blob_id:
        digest = hashlib.sha1(f"blob {remote.size}\0".encode())  # noqa: S324 - git's own id
        expected = remote.blob_id
    else:
        return True  # the hub published no hash; the size matched
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK * 4):
            digest.update(chunk)
    return digest.hexdigest() == expected.lower()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    if fcntl is None:
        yield
        return
    handle = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield
    finally:
        os.close(handle)  # closing releases the lock
