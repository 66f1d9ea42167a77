"""One catalog connection per thread.

A sqlite3 connection holds one transaction at a time: when two threads share it, one thread's
commit also commits whatever the other has half written, and a rollback undoes both. So every
thread that asks gets its own connection (WAL lets them read while one writes), and the owner
closes them all together.

Connections are kept by thread ident, not in a threading.local: Qt's pool threads lose a
threading.local's values between two jobs, which would open a connection per job. An ident is
reused only after its thread has ended, and the new thread then takes over an idle connection.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from clapdesk.core.store.catalog import Catalog


class CatalogPerThread:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._by_thread: dict[int, Catalog] = {}
        self._lock = threading.Lock()
        self._closed = False

    def get(self) -> Catalog:
        """The calling thread's connection, opened (and the catalog migrated) on first use."""
        thread = threading.get_ident()
        catalog = self._by_thread.get(thread)
        if catalog is None:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
            catalog = Catalog(self.path)
            with self._lock:
                self._by_thread[thread] = catalog
        return catalog

    def close(self) -> None:
        """Close every thread's connection. Call it once no thread uses the catalog any more."""
        with self._lock:
            self._closed = True
            catalogs, self._by_thread = list(self._by_thread.values()), {}
        for catalog in catalogs:
            catalog.close()
