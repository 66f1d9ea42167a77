"""One way to run anything off the GUI thread: a QRunnable whose signals live on a QObject.

The app owns one TaskRunner, and the runner owns every thread the window starts. Pools: a general
one (indexing, browsing the catalog), a one-thread model pool (loading the model, embedding a
query, similar-sound searches) so that a search never queues behind an indexing run, and a
one-thread pool for fine-tuning. Lanes are one-thread executors for jobs whose callers wait on or
cancel a Future: audition decoding (what was clicked, and guesses ahead), the waveform and the
row thumbnails, each its own so fifty thumbnails never delay the selected file. `shutdown()`
joins them all on quit. Every failure of a pool job goes to `TaskRunner.failed`, the one place
the window turns exceptions into plain messages; nothing in a worker ever shows a traceback.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

log = logging.getLogger(__name__)

GENERAL_THREADS = 2  # indexing decodes in its own processes; two jobs at once is plenty on 2 cores
POOL_THREADS = {"general": GENERAL_THREADS, "model": 1, "finetune": 1}


class WorkerSignals(QObject):
    """Lives on the GUI thread; a worker emits, connected slots run queued on the GUI thread."""

    started = Signal()
    progress = Signal(object)
    result = Signal(object)
    error = Signal(object)  # the exception
    finished = Signal()


class Worker(QRunnable):
    """Runs `fn(*args, **kwargs)`; passes `progress=` and `cancel=` when the function wants them."""

    def __init__(self, fn: Callable[..., Any], *args: Any, name: str = "",
                 wants_progress: bool = False, wants_cancel: bool = False, **kwargs: Any) -> None:
        super().__init__()
        self.setAutoDelete(False)  # the runner keeps the Python object until `finished`
        self.fn, self.args, self.kwargs = fn, args, kwargs
        self.name = name or getattr(fn, "__name__", "task")
        self.signals = WorkerSignals()
        self.cancel = threading.Event()
        if wants_progress:
            self.kwargs["progress"] = self.signals.progress.emit
        if wants_cancel:
            self.kwargs["cancel"] = self.cancel

    @Slot()
    def run(self) -> None:
        self.signals.started.emit()
        try:
            value = self.fn(*self.args, **self.kwargs)
        except BaseException as exc:  # noqa: BLE001 - every failure is routed, none is lost
            self.signals.error.emit(exc)
        else:
            self.signals.result.emit(value)
        finally:
            self.signals.finished.emit()


class TaskRunner(QObject):
    """Owns the pools and the live workers; `failed(name, exception)` is where errors go."""

    failed = Signal(str, object)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._pools: dict[str, QThreadPool] = {}
        for name, threads in POOL_THREADS.items():
            self._pools[name] = pool = QThreadPool(self)
            pool.setMaxThreadCount(threads)
            # Threads stay for the app's life: each thread that reads the catalog keeps its own
            # connection (Library.catalog), and threads replaced after every idle spell would
            # each leave one open until quit.
            pool.setExpiryTimeout(-1)
        self.general, self.model = self._pools["general"], self._pools["model"]
        self._live: set[Worker] = set()
        self._lanes: dict[str, ThreadPoolExecutor] = {}
        self._lanes_lock = threading.Lock()

    def submit(self, fn: Callable[..., Any], *args: Any, pool: str = "general", name: str = "",
               on_result: Callable[[Any], None] | None = None,
               on_progress: Callable[[Any], None] | None = None,
               on_error: Callable[[BaseException], None] | None = None,
               on_finished: Callable[[], None] | None = None,
               wants_progress: bool = False, wants_cancel: bool = False,
               priority: int = 0, **kwargs: Any) -> Worker:
        worker = Worker(fn, *args, name=name, wants_progress=wants_progress or on_progress is not None,
                        wants_cancel=wants_cancel, **kwargs)
        signals = worker.signals
        if on_result is not None:
            signals.result.connect(on_result)
        if on_progress is not None:
            signals.progress.connect(on_progress)
        if on_error is not None:
            signals.error.connect(on_error)
        else:
            signals.error.connect(lambda exc, n=worker.name: self._route(n, exc))
        if on_finished is not None:
            signals.finished.connect(on_finished)
        signals.finished.connect(lambda w=worker: self._live.discard(w))
        self._live.add(worker)
        self._pools[pool].start(worker, priority)
        return worker

    def wait(self, pool: str, timeout_ms: int = 30000) -> bool:
        """Wait for one pool's jobs; True when it is idle."""
        return self._pools[pool].waitForDone(timeout_ms)

    def lane(self, name: str) -> ThreadPoolExecutor:
        """The one-thread executor of that name, started on first use."""
        with self._lanes_lock:
            lane = self._lanes.get(name)
            if lane is None:
                lane = self._lanes[name] = ThreadPoolExecutor(1, thread_name_prefix=f"clapdesk-{name}")
            return lane

    def close_lane(self, name: str) -> None:
        """Drop what is queued on a lane and join its thread (its user is closing)."""
        with self._lanes_lock:
            lane = self._lanes.pop(name, None)
        if lane is not None:
            lane.shutdown(wait=True, cancel_futures=True)

    def _route(self, name: str, exc: BaseException) -> None:
        log.error("%s failed", name, exc_info=(type(exc), exc, exc.__traceback__))
        self.failed.emit(name, exc)

    def report(self, name: str, exc: BaseException) -> None:
        """For `on_error` handlers that only want to add something before the common path."""
        self._route(name, exc)

    @property
    def busy(self) -> bool:
        return bool(self._live)

    def cancel_all(self) -> None:
        for worker in list(self._live):
            worker.cancel.set()

    def shutdown(self, timeout_ms: int = 30000) -> bool:
        """Cancel what can be cancelled and wait; True when every pool is idle. Lanes drop what
        is queued and are joined."""
        self.cancel_all()
        for pool in self._pools.values():
            pool.clear()
        done = all([pool.waitForDone(timeout_ms) for pool in self._pools.values()])
        for name in list(self._lanes):
            self.close_lane(name)
        return done
