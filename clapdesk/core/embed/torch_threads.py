"""Torch's CPU thread count, fixed per thread instead of changed around calls.

A search query is a few words: its matrices are too small to share between cores, and on a CPU
that is busy with anything else (a DAW, indexing) two threads wait on each other. Measured on a
2-core CPU under load: 53 ms on one thread against 230-370 ms on two. So queries run on one
thread, the query lane, whose count is set to one once when it starts; every other thread keeps
the count torch chose.

Setting the count around each query on whatever thread asked would not do: torch.set_num_threads
also stores the count that threads which have not run torch yet start with, so an indexing or
fine-tuning thread that started during a query stayed on one thread for good.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_lane: ThreadPoolExecutor | None = None
_lane_lock = threading.Lock()


def on_one_thread(fn: Callable[[], T]) -> T:
    """Run `fn` on the query lane (torch on one CPU thread) and return what it returns.
    Callers wait for it; torch's inference and grad modes are per thread, so `fn` sets its own."""
    return _query_lane().submit(fn).result()


def _query_lane() -> ThreadPoolExecutor:
    global _lane
    with _lane_lock:
        if _lane is None:  # created on first use: nothing starts at import
            _lane = ThreadPoolExecutor(1, thread_name_prefix="clapdesk-query", initializer=_pin_to_one)
        return _lane


def _pin_to_one() -> None:
    import torch

    start = torch.get_num_threads()  # torch's first call on this thread: the count it chose
    torch.set_num_threads(1)
    # That also made one the count of threads that start torch from now on: a short-lived thread
    # puts the count it chose back, so one thread stays this lane's alone. (Threads that start
    # torch in the microseconds between the two calls, once per process, would still get one.)
    restore = threading.Thread(target=torch.set_num_threads, args=(start,), name="clapdesk-threads")
    restore.start()
    restore.join()


def shutdown() -> None:
    """Join the lane (the app calls this on quit; an exiting interpreter joins it anyway)."""
    global _lane
    with _lane_lock:
        lane, _lane = _lane, None
    if lane is not None:
        lane.shutdown(wait=True)
