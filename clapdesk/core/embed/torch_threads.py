"""Torch's CPU thread count, fixed per thread instead of changed around calls.

A search query is a few words: its matrices are too small to share between cores, and on a CPU
that is busy with anything else (a DAW, indexing) two threads wait on each other. Measured on a
2-core CPU under load: 53 ms on one thread against 230-370 ms on two. So queries run on one
thread, the query lane, whose count is set to one once when it starts; every other thread keeps
the count torch chose. Fine-tuning's small heads do the same on a lane of their own.

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

# One lane per kind of small work, so a fine-tuning run never makes a search wait behind it.
QUERY, TRAINING = "query", "training"
_lanes: dict[str, ThreadPoolExecutor] = {}
_lane_lock = threading.Lock()


def on_one_thread(fn: Callable[[], T], lane: str = QUERY) -> T:
    """Run `fn` on a one-thread lane (torch on one CPU thread) and return what it returns.
    Callers wait for it; torch's inference and grad modes are per thread, so `fn` sets its own."""
    return _one_thread_lane(lane).submit(fn).result()


def _one_thread_lane(lane: str) -> ThreadPoolExecutor:
    with _lane_lock:
        if lane not in _lanes:  # created on first use: nothing starts at import
            _lanes[lane] = ThreadPoolExecutor(1, thread_name_prefix=f"clapdesk-{lane}",
                                              initializer=_pin_to_one)
        return _lanes[lane]


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
    """Join the lanes (the app calls this on quit; an exiting interpreter joins them anyway)."""
    with _lane_lock:
        lanes = list(_lanes.values())
        _lanes.clear()
    for lane in lanes:
        lane.shutdown(wait=True)
