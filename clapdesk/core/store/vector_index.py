"""The hnswlib index: a cache of the catalog's vectors for one model.

It is never the source of truth. A sidecar JSON records which model it holds and the highest
catalog vector row it has seen; on open, rows written since are added, files gone from the
catalog are marked deleted, and an index that is missing, stale or unreadable is rebuilt from
the catalog with nothing more than a log line.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import threading
import zlib
from pathlib import Path

import hnswlib
import numpy as np

from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.model_key import ModelKey

log = logging.getLogger(__name__)

# Measured on 512-d clustered vectors (benchmarks/bench_search.py, 2-core CPU): with M=32 and
# ef_construction 200, ef 256 gives recall@10 0.997 at 100k vectors (0.992 with ef 128) and
# 0.98 at 300k, at a p95 of about 2 ms per query: cheap next to encoding the query text.
HNSW_M = 32
EF_CONSTRUCTION = 200
EF_SEARCH = 256


def model_slug(model_key: str) -> str:
    safe = "".join(c if c.isalnum() else "-" for c in model_key)[:40]
    return f"{safe}-{hashlib.blake2b(model_key.encode(), digest_size=6).hexdigest()}"


class VectorIndex:
    """ANN search over one model's vectors; thread-safe for one writer and many readers."""

    def __init__(self, path: Path, model_key: str) -> None:
        self.path = path
        self.meta_path = path.with_suffix(".json")
        self.model_key = ModelKey(model_key)
        self.index: hnswlib.Index | None = None
        self.dim = 0
        self.seen_row = 0  # highest catalog vector row reflected in the index
        self.live: set[int] = set()
        self.deleted: set[int] = set()  # labels marked deleted inside the hnswlib file
        self.dirty = False
        self.lock = threading.RLock()

    # -- opening ------------------------------------------------------------------------------
    def open(self, catalog: Catalog) -> None:
        """Load the saved index and bring it up to date with the catalog, or rebuild it."""
        with self.lock:
            if not self._load():
                self.rebuild(catalog)
                return
            try:
                self.sync(catalog)
            except RuntimeError as exc:  # hnswlib refusing an index that disagrees with its sidecar
                log.info("index %s out of step with the catalog (%s): rebuilding", self.path, exc)
                self.rebuild(catalog)

    def _load(self) -> bool:
        try:
            meta = json.loads(self.meta_path.read_text())
        except FileNotFoundError:
            return False
        except (OSError, ValueError) as exc:
            log.info("index metadata %s unreadable (%s): rebuilding", self.meta_path, exc)
            return False
        if meta.get("model_key") != self.model_key or not self.path.exists():
            log.info("index %s is for another model or missing: rebuilding", self.path)
            return False
        stat = self.path.stat()
        if stat.st_size != meta.get("bytes") or stat.st_mtime_ns != meta.get("mtime_ns", stat.st_mtime_ns):
            # A crash between replacing the index and its sidecar leaves a pair that disagree.
            log.info("index %s does not match its metadata: rebuilding", self.path)
            return False
        if "crc32" in meta and _crc32(self.path) != meta["crc32"]:
            # Damaged in place (the disk, not clapdesk): hnswlib could crash on it, not refuse it.
            log.info("index %s fails its checksum: rebuilding", self.path)
            return False
        try:
            index = hnswlib.Index(space="cosine", dim=int(meta["dim"]))
            index.load_index(str(self.path), max_elements=int(meta["capacity"]))
        except Exception as exc:  # hnswlib raises RuntimeError on damaged files
            log.info("index %s unreadable (%s): rebuilding", self.path, exc)
            return False
        self.index, self.dim = index, int(meta["dim"])
        self.seen_row = int(meta["seen_row"])
        self.live = set(int(i) for i in meta.get("live", []))
        self.deleted = set(int(i) for i in meta.get("deleted", []))
        index.set_ef(EF_SEARCH)
        return True

    def rebuild(self, catalog: Catalog) -> None:
        with self.lock:
            ids, matrix = catalog.vectors(self.model_key)
            self.seen_row = catalog.max_vector_row(self.model_key)
            self.index, self.live, self.deleted, self.dim = None, set(), set(), 0
            if len(ids):
                self.add(ids, matrix)
            self.dirty = True
            log.info("index for %s rebuilt from the catalog (%d vectors)", self.model_key, len(ids))

    def sync(self, catalog: Catalog) -> None:
        """Add vectors written since the last save and drop files the catalog lost."""
        with self.lock:
            ids, matrix = catalog.vectors(self.model_key, after=self.seen_row)
            if len(ids):
                self.add(ids, matrix)
            self.seen_row = max(self.seen_row, catalog.max_vector_row(self.model_key))
            gone = self.live - catalog.vector_file_ids(self.model_key)
            self.remove(gone)

    # -- changing -----------------------------------------------------------------------------
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        with self.lock:
            if len(ids) == 0:
                return
            if self.index is None:
                self.dim = int(vectors.shape[1])
                self.index = hnswlib.Index(space="cosine", dim=self.dim)
                self.index.init_index(max_elements=max(1024, 2 * len(ids)), M=HNSW_M,
                                      ef_construction=EF_CONSTRUCTION, allow_replace_deleted=False)
                self.index.set_ef(EF_SEARCH)
            needed = self.index.get_current_count() + len(ids)
            if needed > self.index.get_max_elements():
                self.index.resize_index(max(needed, 2 * self.index.get_max_elements()))
            labels = np.asarray(ids, dtype=np.int64)
            vectors = np.asarray(vectors, np.float32)
            finite = np.isfinite(vectors).all(axis=1)
            if not finite.all():
                # One NaN vector in the graph breaks the distances of every walk through it
                # (recall fell from 1.0 to 0.8): it is never added (the indexer refuses to
                # store one; an older catalog may hold some).
                labels, vectors = labels[finite], vectors[finite]
                if len(labels) == 0:
                    return
            for label in self.deleted.intersection(int(i) for i in labels):
                # A file that comes back (re-added to the library) reuses its label.
                self.index.unmark_deleted(label)
                self.deleted.discard(label)
            # A batch from the indexer is added on one thread (the model needs the cores); a
            # rebuild of thousands of vectors uses them all, which halves it on two cores.
            threads = 1 if len(labels) < 5000 else (os.cpu_count() or 1)
            self.index.add_items(np.asarray(vectors, np.float32), labels, num_threads=threads)
            self.live.update(int(i) for i in labels)
            self.dirty = True

    def remove(self, ids: set[int] | list[int]) -> None:
        with self.lock:
            for label in ids:
                if label in self.live and self.index is not None:
                    self.index.mark_deleted(int(label))
                    self.live.discard(int(label))
                    self.deleted.add(int(label))
                    self.dirty = True

    # -- querying -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self.live)

    def query(self, vector: np.ndarray, k: int) -> list[tuple[int, float]]:
        """(file id, cosine similarity) best first."""
        with self.lock:
            if self.index is None or not self.live:
                return []
            k = min(k, len(self.live))
            self.index.set_ef(max(EF_SEARCH, k))
            labels, distances = self.index.knn_query(
                np.asarray(vector, np.float32).reshape(1, -1), k=k)
        return [(int(lab), float(1.0 - dist)) for lab, dist in zip(labels[0], distances[0])]

    # -- saving ---------------------------------------------------------------------------------
    def save(self) -> None:
        """Write the index then its sidecar, each atomically; the old pair survives a failure."""
        with self.lock:
            if self.index is None or not self.dirty:
                return
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            meta_tmp = self.meta_path.with_name(self.meta_path.name + ".tmp")
            try:
                self.index.save_index(str(tmp))
                written = tmp.stat()
                if written.st_size != self.index.index_file_size():
                    # hnswlib does not report a failed write (a full disk): check the size.
                    raise OSError(errno.ENOSPC, "the index file could not be written in full",
                                  str(tmp))
                meta = {"model_key": self.model_key, "dim": self.dim, "seen_row": self.seen_row,
                        "capacity": self.index.get_max_elements(), "bytes": written.st_size,
                        "mtime_ns": written.st_mtime_ns, "crc32": _crc32(tmp),
                        "live": sorted(self.live), "deleted": sorted(self.deleted)}
                meta_tmp.write_text(json.dumps(meta))
                _fsync(tmp)
                _fsync(meta_tmp)
                # Sidecar first would point at an index not yet in place, so: index, then sidecar.
                # A crash between the two leaves sizes that disagree, which triggers a rebuild.
                os.replace(tmp, self.path)
                os.replace(meta_tmp, self.meta_path)
            except OSError:
                for leftover in (tmp, meta_tmp):
                    leftover.unlink(missing_ok=True)
                raise
            self.dirty = False


def _crc32(path: Path) -> int:
    """A checksum of the index file: about 0.15 s for 100k vectors, mostly from the page cache."""
    crc = 0
    with open(path, "rb") as handle:
        while block := handle.read(1 << 24):
            crc = zlib.crc32(block, crc)
    return crc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
