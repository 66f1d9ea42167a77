"""Decoded audio in memory, least recently used dropped first, bounded in bytes: the player's
decoded files and the renders of the project tempo and key both keep theirs in one of these."""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

CACHE_BYTES = 256 * 1024 * 1024


class AudioCache:
    """Decoded files, least recently used dropped first, bounded in bytes. Thread-safe."""

    def __init__(self, max_bytes: int = CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: str) -> tuple[np.ndarray, int] | None:
        with self._lock:
            item = self._items.get(path)
            if item is not None:
                self._items.move_to_end(path)
            return item

    def put(self, path: str, data: np.ndarray, rate: int) -> None:
        if data.nbytes > self.max_bytes // 2:
            return  # one long recording must not evict everything else
        with self._lock:
            old = self._items.pop(path, None)
            if old is not None:
                self._bytes -= old[0].nbytes
            self._items[path] = (data, rate)
            self._bytes += data.nbytes
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (dropped, _) = self._items.popitem(last=False)
                self._bytes -= dropped.nbytes

    def __contains__(self, path: str) -> bool:
        with self._lock:
            return path in self._items
