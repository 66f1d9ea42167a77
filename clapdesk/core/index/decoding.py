"""Decoding for indexing: hash, decode, resample and analyse files in worker processes.

Why processes and not threads: the model runs in the indexing thread on every core, and its
Python code needs the interpreter lock between layers. Decoding threads in the same process
hold that lock whenever they run Python, and run at the model's priority, so they slowed the
model by 10-20 % (measured against the model alone on the same windows). Decoder processes
share no lock with it, run at idle priority (decode_worker.lower_priority), and a file that
crashes a decoding library takes down one decoder process, not the app: the indexer records
it as failed and goes on with a fresh process.

The pool is shared by every library in the process and kept between indexing runs (a watched
folder's one-file run should not pay half a second of start-up); it lets its processes go
after a few idle minutes and starts them again on the next run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any, TypeVar

from clapdesk.core.index import decode_worker
from clapdesk.core.ingest import audio
from clapdesk.core.ingest.scan import content_hash

log = logging.getLogger(__name__)

T = TypeVar("T")

IDLE_SECONDS = 180.0
CRASHED = "the decoder crashed on this file (it is probably damaged)"
# Longest a file may take to decode (hash, read, resample, analyse) before its decoder is
# ended. Normal files take well under a second; an hour-long MP3 seeks for a few seconds. A
# file past it is listed as failed and tried again on the next run (a slow share passes).
DECODE_SECONDS = 120.0


def decode_seconds() -> float:
    """The per-file time limit: DECODE_SECONDS, or $CLAPDESK_DECODE_SECONDS."""
    return audio.positive_setting("CLAPDESK_DECODE_SECONDS", DECODE_SECONDS)


def too_slow(limit: float) -> str:
    return f"took longer than {limit:g} s to decode"


class DecodeClock:
    """Seconds the decoders have spent on the file first in line, without the time they only
    waited for a core.

    They run at idle priority, so a busy machine (a DAW, a build) can starve them for minutes,
    which is not the file's fault. While any decoder is runnable, only the processor time it
    got counts; while none is (all blocked in a read, stopped or waiting), the time itself
    counts: that is how a hung share or a wedged library looks. Without /proc (or with
    decoding threads) the time itself counts.
    """

    def __init__(self, pool: DecodePool) -> None:
        self.pool = pool
        self.reset()

    def reset(self) -> None:
        self.spent = 0.0
        self._last = time.monotonic()
        self._cpu = _cpu_seconds(self.pool.pids())

    def advance(self) -> float:
        now = time.monotonic()
        wall, self._last = now - self._last, now
        cpu = _cpu_seconds(self.pool.pids())
        runnable = [pid for pid, (state, _) in cpu.items() if state == "R"]
        if runnable:
            got = max(seconds - self._cpu.get(pid, ("", seconds))[1]
                      for pid, (_, seconds) in cpu.items())
            self.spent += min(wall, max(0.0, got))
        else:
            self.spent += wall
        self._cpu = cpu
        return self.spent


def _cpu_seconds(pids: list[int]) -> dict[int, tuple[str, float]]:
    """pid -> (scheduler state, user + system seconds) from /proc; empty where there is none."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out: dict[int, tuple[str, float]] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
            out[pid] = (fields[0].decode(), (int(fields[11]) + int(fields[12])) / ticks)
        except (OSError, IndexError, ValueError):
            continue
    return out

__all__ = ["BrokenProcessPool", "CRASHED", "DecodePool", "DecodeRequest", "DecodeResult",
           "decode_file", "shared_pool"]


@dataclass(frozen=True)
class DecodeRequest:
    path: str
    size: int
    mtime_ns: int
    model_rate: int
    # Content hashes of files that vanished this run: a file with one of them was renamed and
    # keeps its vector, so it is hashed but not decoded.
    skip_hashes: frozenset[str] = frozenset()
    # The per-file memory ceiling, read where the run starts (decoder processes outlive runs).
    memory_mb: float = audio.DECODE_MEMORY_MB
    # The model is running: the decoder takes idle priority (decode_worker.become_idle). While
    # it loads, decoders run a little below normal priority instead.
    idle: bool = True


@dataclass
class DecodeResult:
    path: str
    size: int  # as read now: a file rewritten since the scan is stored with the new stamp
    mtime_ns: int
    ctime_ns: int = 0
    digest: str | None = None
    decoded: audio.DecodedAudio | None = None
    analysis: dict[str, object] = field(default_factory=dict)
    error: str | None = None
    transient: bool = False  # the error passes (a dropped share): the file is tried every run
    # Log records made in the worker, (level, message), re-emitted by the indexer: a decoder
    # process has no log handlers of its own.
    notes: list[tuple[int, str]] = field(default_factory=list)
    # When the decoder finished (monotonic seconds, one clock for every process on Linux and
    # macOS): the indexer's timeline shows decoding overlapping the model's load.
    finished_at: float = 0.0


def decode_file(request: DecodeRequest) -> DecodeResult:
    """Hash, then decode and analyse unless the file merely moved. Never raises."""
    if request.idle:
        decode_worker.become_idle()
    result = _decode_file(request)
    said = decode_worker.drain_stderr()  # a decoding library's notes, kept for --verbose
    if said:
        result.notes.append((logging.DEBUG, f"decoding libraries said, on "
                                            f"{request.path!r}:\n{said.rstrip()}"))
    result.finished_at = time.monotonic()
    return result


def _decode_file(request: DecodeRequest) -> DecodeResult:
    from clapdesk.core.analysis.tags import analyse_file
    from clapdesk.core.store.catalog import display_path

    path = request.path
    result = DecodeResult(path, request.size, request.mtime_ns)
    try:
        # Stat again before reading: a file rewritten since the scan is stored with the stamp
        # of what is read now, and one rewritten while being read is re-read by the next scan.
        st = os.stat(path)
        result.size, result.mtime_ns, result.ctime_ns = st.st_size, st.st_mtime_ns, st.st_ctime_ns
        result.digest = content_hash(path)
    except (OSError, audio.DecodeError) as exc:
        result.error = audio.explain_error(exc, path)
        result.transient = audio.is_transient(exc)
        return result
    if result.digest in request.skip_hashes:
        return result  # a renamed file keeps its vector: no decoding
    try:
        result.decoded = audio.decode_for_index(path, request.model_rate,
                                                memory_mb=request.memory_mb)
    except audio.DecodeError as exc:
        result.error = str(exc)
        result.transient = exc.transient or audio.is_transient(exc.__cause__ or exc, path)
        return result
    except Exception as exc:  # one odd file must never stop a run
        # The reason goes to the failures list; the traceback only to a --verbose log.
        result.notes.append((logging.DEBUG, f"unexpected failure decoding {display_path(path)}\n"
                                            f"{traceback.format_exc()}"))
        result.error = audio.explain_error(exc, path)
        result.transient = audio.is_transient(exc, path)
        return result
    try:
        result.analysis = analyse_file(result.decoded, path)
    except Exception as exc:  # tempo and key are extras: a sound that confuses them is still indexed
        result.notes.append((logging.INFO, f"analysis failed for {display_path(path)} ({exc}); "
                                           "indexed without tempo and key"))
        result.notes.append((logging.DEBUG, f"analysis traceback\n{traceback.format_exc()}"))
    # The analysis copy (up to 30 s) has served its purpose: not sent back to the indexer.
    result.decoded.analysis = result.decoded.analysis[:0]
    return result


class DecodePool:
    """Worker processes at idle priority (threads where processes cannot start)."""

    def __init__(self, workers: int, processes: bool = True,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        if workers < 1:
            raise ValueError("a decode pool needs at least one worker")
        self.workers = workers
        self.processes = processes
        self.idle_seconds = idle_seconds
        self._executor: Executor | None = None
        self._lock = threading.Lock()
        self._outstanding = 0
        self._last_use = time.monotonic()
        self._timer: threading.Timer | None = None

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            executor = self._executor or self._start()
            self._outstanding += 1
            self._last_use = time.monotonic()
        try:
            future = executor.submit(fn, *args)
        except BrokenProcessPool:
            with self._lock:
                self._outstanding -= 1
            raise
        future.add_done_callback(self._done)
        return future

    def warm(self) -> None:
        """Start every worker now, ahead of the first file (start-up takes about 0.5 s)."""
        if self._executor is None:
            for _ in range(self.workers):
                self.submit(os.getpid)

    def restart(self) -> None:
        """A fresh set of workers, after one crashed (a broken pool refuses all work)."""
        with self._lock:
            old, self._executor = self._executor, None
        if old is not None:
            old.shutdown(wait=False, cancel_futures=True)

    def kill(self) -> None:
        """End every worker now, one stuck mid-decode included; fresh ones start on demand.

        A decoding thread cannot be ended: in thread mode the stuck thread is left behind
        and a new set of threads takes over."""
        with self._lock:
            old, self._executor = self._executor, None
        if old is None:
            return
        for process in list((getattr(old, "_processes", None) or {}).values()):
            try:
                process.kill()
            except (OSError, ValueError):
                pass  # already gone
        old.shutdown(wait=False, cancel_futures=True)

    def pids(self) -> list[int]:
        """Process ids of the running decoders (none in thread mode, or before the first use)."""
        with self._lock:
            processes = getattr(self._executor, "_processes", None) or {}
            return [p.pid for p in list(processes.values()) if p.pid is not None]

    def close(self) -> None:
        with self._lock:
            old, self._executor = self._executor, None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        if old is not None:
            old.shutdown(wait=True, cancel_futures=True)

    @property
    def running(self) -> bool:
        return self._executor is not None

    def _start(self) -> Executor:
        """The executor, started now. Called with the lock held."""
        if self.processes and not _main_module_importable():
            log.info("this program's main module cannot be imported by a child process; "
                     "decoding in threads")
            self.processes = False
        if self.processes:
            try:
                # spawn, never fork: this process runs torch's and Qt's threads, which a forked
                # child would inherit in whatever state they were in.
                self._executor = ProcessPoolExecutor(
                    self.workers, mp_context=multiprocessing.get_context("spawn"),
                    initializer=decode_worker.start)
                return self._executor
            except (OSError, NotImplementedError, ValueError) as exc:
                log.warning("decoder processes cannot start here (%s); decoding in threads", exc)
                self.processes = False
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="clapdesk-decode")
        return self._executor

    def _done(self, _future: Future[Any]) -> None:
        with self._lock:
            self._outstanding -= 1
            if self._outstanding or self._executor is None:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.idle_seconds, self._release_if_idle)
            self._timer.daemon = True
            self._timer.start()

    def _release_if_idle(self) -> None:
        with self._lock:
            idle_for = time.monotonic() - self._last_use
            if self._outstanding or idle_for < self.idle_seconds * 0.99:
                return
            old, self._executor, self._timer = self._executor, None, None
        if old is not None:
            log.debug("decoder processes idle for %.0f s: released", idle_for)
            old.shutdown(wait=False)


def _main_module_importable() -> bool:
    """Whether a spawned process can start: it imports the main module again by its path.

    A program read from standard input or typed into a console has no file to import.
    """
    import __main__

    path = getattr(__main__, "__file__", None)
    return path is None or os.path.isfile(path)


_shared: DecodePool | None = None
_shared_lock = threading.Lock()


def shared_pool(workers: int | None = None) -> DecodePool:
    """The process-wide pool, resized when a different number of workers is asked for."""
    global _shared
    wanted = workers or default_workers()
    with _shared_lock:
        if _shared is not None and _shared.workers != wanted:
            # Not closed: a run may still be waiting on it. It lets its processes go once idle.
            _shared = None
        if _shared is None:
            _shared = DecodePool(wanted)
        return _shared


def default_workers() -> int:
    """One decoder per core, at most four: decoding is a small share of the model's cost."""
    return max(1, min(4, os.cpu_count() or 1))
