"""Rendered audition audio: the plan applied to a file, kept in memory and as WAVs on disk.

    cache = RenderCache()                       # memory (LRU, bytes-bounded) + cache_dir()/rendered
    renderer = Renderer(cache)                  # stretching runs in two helper processes
    key = render_key(path, plan)                # per file, its size and mtime, and the plan
    renderer.section(data, rate, plan, a, b)   # Future: output frames [a, b), to start playing
    renderer.full(key, data, rate, plan)        # Future: all of it, cached when done
    render_file(path, plan) -> (data, rate)     # decode + stretch here (the CLI), cached
    export_rendered(path, plan, data, rate, folder) -> Path   # the drag-out WAV

Why processes: python-stretch keeps the GIL for the whole render (a second for an 8-bar loop),
which would freeze the window and starve the audio callback. Why two: heads (tens of ms) never
queue behind a full render of the row the producer just left.
"""

from __future__ import annotations

import filecmp
import hashlib
import multiprocessing
import os
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

from clapdesk.core.audition.audio_cache import AudioCache
from clapdesk.core.audition.plan import RenderPlan, rendered_name
from clapdesk.core.audition.stretch import (
    ENGINE_VERSION,
    prefix_frames,
    stretch,
    stretch_section,
)
from clapdesk.core.index.decode_worker import exit_with_parent
from clapdesk.core.ingest.audio import native_path, read_for_playback
from clapdesk.core.store.paths import cache_dir

MEMORY_BYTES = 256 * 1024 * 1024
DISK_BYTES = 2 * 1024 * 1024 * 1024  # rendered WAVs kept on disk, oldest used dropped first
Audio = tuple[np.ndarray, int]


def render_key(path: str, plan: RenderPlan) -> str:
    """Names one render: the file (path, size, mtime: an edited file renders anew) and plan."""
    info = os.stat(native_path(path))
    text = f"{os.fsencode(path)!r}|{info.st_size}|{info.st_mtime_ns}|{plan.cache_token()}|" \
           f"v{ENGINE_VERSION}"
    return hashlib.sha1(text.encode()).hexdigest()


class RenderCache:
    """Rendered audio by key: memory first, then the WAV on disk. Thread-safe."""

    def __init__(self, folder: Path | None = None, max_bytes: int = MEMORY_BYTES,
                 disk_bytes: int = DISK_BYTES) -> None:
        self.folder = folder if folder is not None else cache_dir() / "rendered"
        self.max_bytes, self.disk_bytes = max_bytes, disk_bytes
        self._memory = AudioCache(max_bytes)

    def file_for(self, key: str) -> Path:
        return self.folder / f"{key}.wav"

    def memory(self, key: str) -> Audio | None:
        return self._memory.get(key)

    def get(self, key: str) -> Audio | None:
        """From memory, else from disk (a few ms for a loop), else None."""
        item = self.memory(key)
        if item is not None:
            return item
        target = self.file_for(key)
        try:
            data, rate = sf.read(os.fspath(target), dtype="float32", always_2d=True)
        except (OSError, RuntimeError, sf.LibsndfileError):
            return None
        os.utime(target)  # recently used: pruned last
        self._remember(key, data, int(rate))
        return data, int(rate)

    def put(self, key: str, data: np.ndarray, rate: int) -> None:
        self._remember(key, data, rate)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            partial = self.folder / f"{key}.partial.wav"
            sf.write(os.fspath(partial), data, rate, subtype="FLOAT")  # lossless: a cache
            os.replace(partial, self.file_for(key))
            self._prune_disk()
        except OSError:
            pass  # a full or read-only cache disk costs a re-render later, nothing more

    def _remember(self, key: str, data: np.ndarray, rate: int) -> None:
        self._memory.put(key, data, rate)

    def _prune_disk(self) -> None:
        files = sorted(self.folder.glob("*.wav"), key=lambda p: p.stat().st_mtime)
        total = sum(p.stat().st_size for p in files)
        for old in files:
            if total <= self.disk_bytes:
                break
            total -= old.stat().st_size
            old.unlink(missing_ok=True)


def _render_section(data: np.ndarray, rate: int, plan: RenderPlan, start: int,
                    end: int) -> np.ndarray:
    return stretch_section(data, rate, plan, start, end)


def _render_full(data: np.ndarray, rate: int, plan: RenderPlan) -> np.ndarray:
    return stretch(data, rate, plan)


def _ready() -> bool:
    import python_stretch  # noqa: F401 - loaded once, before the first click needs it

    return True


class Renderer:
    """Stretching off this process: one helper for heads, one for full renders."""

    def __init__(self, cache: RenderCache | None = None) -> None:
        self.cache = cache if cache is not None else RenderCache()
        self._pools: dict[str, ProcessPoolExecutor] = {}
        self._lock = threading.Lock()

    def _pool(self, name: str) -> ProcessPoolExecutor:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                # spawn: forking a process that runs Qt and audio threads is not safe.
                # Each helper ends with the app: one that quits with the model still loading
                # leaves through os._exit, and a pool's own clean-up never runs then.
                pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                           initializer=exit_with_parent)
                self._pools[name] = pool
            return pool

    def warm(self) -> None:
        """Start both helpers now (about a second), so the first stretched click is quick."""
        for name in ("head", "full"):
            self._pool(name).submit(_ready)

    def section(self, data: np.ndarray, rate: int, plan: RenderPlan, start: int,
                end: int) -> Future[np.ndarray]:
        """Output frames [start, end): the head that starts playing, then the pieces after it
        until the full render is there. Only the input they read is sent over."""
        last = prefix_frames(rate, plan, end)
        return self._pool("head").submit(_render_section, data[:last], rate, plan, start, end)

    def full(self, key: str, data: np.ndarray, rate: int, plan: RenderPlan) -> Future[np.ndarray]:
        future = self._pool("full").submit(_render_full, data, rate, plan)

        def keep(done: Future[np.ndarray]) -> None:
            if not done.cancelled() and done.exception() is None:
                self.cache.put(key, done.result(), rate)

        future.add_done_callback(keep)
        return future

    def render(self, key: str, data: np.ndarray, rate: int, plan: RenderPlan) -> Audio:
        """The whole render, waiting for it (drag-out): from the cache when it is there."""
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        return self.full(key, data, rate, plan).result(), rate

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)


def render_file(path: str, plan: RenderPlan, cache: RenderCache | None = None) -> Audio:
    """Decode and render `path` in this process (the CLI), using and filling the cache."""
    key = render_key(path, plan)
    if cache is not None:
        cached = cache.get(key)
        if cached is not None:
            return cached
    data, rate = read_for_playback(path)
    out = stretch(data, rate, plan)
    if cache is not None and not plan.is_identity:
        cache.put(key, out, rate)
    return out, rate


def export_rendered(path: str, plan: RenderPlan, data: np.ndarray, rate: int,
                    folder: Path) -> Path:
    """Write the render as a 32-bit float WAV (a stretch can peak above full scale, which an
    integer WAV would clip; every DAW reads float) named with its tempo and key in `folder`
    (kept: a DAW project links to it). The same render dragged twice is one file; a different sound with
    the same name gets " (2)", " (3)"... rather than overwriting what a project may use."""
    folder.mkdir(parents=True, exist_ok=True)
    name = rendered_name(Path(path).stem, plan)
    partial = folder / f".{name}.partial"
    sf.write(os.fspath(partial), data, rate, subtype="FLOAT", format="WAV")
    stem, number = name[:-4], 1
    while True:
        target = folder / (name if number == 1 else f"{stem} ({number}).wav")
        if not target.exists():
            os.replace(partial, target)
            return target
        if filecmp.cmp(partial, target, shallow=False):
            partial.unlink()
            return target
        number += 1
