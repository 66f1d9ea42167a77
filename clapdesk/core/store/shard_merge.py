"""The store's side of cluster indexing: what a target catalog already has, and merging shard
rows into a catalog in one transaction.

The merge is set-based (executemany over all rows of all shards) rather than the indexer's row
by row, because an import brings hundreds of thousands of rows at once: 100k rows merge in a
few seconds (benchmarks/bench_cluster.py). A row replaces the catalog's only when it is newer
(a later mtime), or the catalog's row has no features of this model or failed; a file's id
stays, so its user tags, hidden tags and favourite stay with it.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

import numpy as np

from clapdesk.core.analysis.tags import name_tags
from clapdesk.core.ingest.text import readable
from clapdesk.core.store import missing
from clapdesk.core.store.catalog import Catalog, decode_path

# The analysis columns a shard row carries (the rest of a file row is stamps and errors).
ANALYSIS_COLUMNS = ("duration", "sample_rate", "channels", "format", "subtype", "bpm",
                    "bpm_source", "musical_key", "key_source", "kind", "peak_db", "loudness_db",
                    "brightness", "onset_rate")
INDEXING_SOURCES = ("auto", "folder", "filename")  # replaced on re-index; 'user' never is


def known_files(catalog_path: str, encoder_key: str) -> tuple[dict[str, tuple[int, int]],
                                                              frozenset[str]]:
    """path -> (size, mtime_ns) of a catalog's files that have this encoder's features, and
    the content hashes among them (read-only: the catalog may be a copy on the cluster)."""
    catalog = Catalog(catalog_path, readonly=True)
    try:
        rows = catalog.db.execute(
            "SELECT f.path, f.size, f.mtime_ns, f.content_hash FROM files f JOIN features x "
            "ON x.file_id = f.id AND x.encoder_key = ? WHERE f.error IS NULL", (encoder_key,))
        stamps: dict[str, tuple[int, int]] = {}
        hashes: set[str] = set()
        for path, size, mtime_ns, digest in rows:
            stamps[decode_path(path)] = (int(size), int(mtime_ns))
            if digest:
                hashes.add(digest)
    finally:
        catalog.close()
    return stamps, frozenset(hashes)


@dataclass
class ShardRows:
    """Rows of one or more shards, paths already as they are at home (os.fsencode bytes)."""

    paths: list[bytes]
    roots: list[bytes]
    sizes: list[int]
    mtimes: list[int]
    hashes: list[str | None]
    status: list[str]
    errors: list[str | None]
    analysis: list[str]  # JSON
    auto_tags: list[str]  # JSON
    features: np.ndarray  # (n, d) float32; rows that were not embedded are zeros
    vectors: np.ndarray


@dataclass
class MergeResult:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    older: int = 0  # the catalog's row was newer: kept
    copied: int = 0  # known content: the twin's feature and vector
    failed: int = 0
    ids: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # files written


def merge(catalog: Catalog, rows: ShardRows, encoder_key: str) -> MergeResult:
    """Merge the rows (each path once) into the catalog in one transaction."""
    result = MergeResult()
    db = catalog.db
    root_ids = {raw: catalog.add_root(os.fsdecode(raw)) for raw in set(rows.roots)}
    existing = {bytes(p): (int(i), int(s), int(m), bool(e)) for p, i, s, m, e in db.execute(
        "SELECT path, id, size, mtime_ns, error IS NOT NULL FROM files")}
    with_features = {int(r[0]) for r in db.execute(
        "SELECT file_id FROM features WHERE encoder_key = ?", (encoder_key,))}
    write, fail, copy = [], [], []
    for i, path in enumerate(rows.paths):
        old = existing.get(path)
        if old is not None:
            file_id, size, mtime_ns, failed = old
            good = not failed and file_id in with_features
            if good and mtime_ns > rows.mtimes[i]:
                result.older += 1
                continue
            if good and (size, mtime_ns) == (rows.sizes[i], rows.mtimes[i]):
                result.unchanged += 1
                continue
            if good and rows.status[i] == "failed":
                result.older += 1  # a good row is never replaced by a failure
                continue
        {"embedded": write, "failed": fail, "known-content": copy}[rows.status[i]].append(i)
    now = time.time()
    columns = ("path", "root_id", "size", "mtime_ns", "content_hash", "indexed_at", "error",
               "error_transient", "ctime_ns", *ANALYSIS_COLUMNS)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
    upsert = (f"INSERT INTO files({', '.join(columns)}) VALUES ({','.join('?' * len(columns))}) "
              f"ON CONFLICT(path) DO UPDATE SET {updates}")

    def file_row(i: int, error: str | None, analysis: dict[str, object]) -> tuple[object, ...]:
        return (rows.paths[i], root_ids[rows.roots[i]], rows.sizes[i], rows.mtimes[i],
                rows.hashes[i], now, error, 0, None, *(analysis.get(c) for c in ANALYSIS_COLUMNS))

    with db:
        db.executemany(upsert, (file_row(i, None, json.loads(rows.analysis[i])) for i in write))
        db.executemany(upsert, (file_row(i, rows.errors[i], {}) for i in fail))
        ids = {bytes(p): int(i) for p, i in db.execute("SELECT path, id FROM files")}
        written = np.array([ids[rows.paths[i]] for i in write], np.int64)
        db.executemany("INSERT OR REPLACE INTO features(file_id, encoder_key, feature) "
                       "VALUES (?, ?, ?)", ((int(f), encoder_key, rows.features[i].tobytes())
                                            for f, i in zip(written, write)))
        db.executemany("INSERT OR REPLACE INTO vectors(file_id, model_key, vector) "
                       "VALUES (?, ?, ?)", ((int(f), encoder_key, rows.vectors[i].tobytes())
                                            for f, i in zip(written, write)))
        marks = ",".join("?" * len(INDEXING_SOURCES))
        db.executemany(f"DELETE FROM tags WHERE file_id = ? AND hidden = 0 AND source IN ({marks})",
                       ((int(f), *INDEXING_SOURCES) for f, i in zip(written, write)
                        if rows.paths[i] in existing))  # a new file has none to replace
        # A tag the producer hid stays hidden (its row is kept, so this insert leaves it).
        db.executemany("INSERT OR IGNORE INTO tags(file_id, tag, source, score, hidden) "
                       "VALUES (?, ?, ?, ?, 0)", _tag_rows(rows, write, written))
        copied = _copy_twins(catalog, rows, copy, ids, root_ids, encoder_key)
        if missing.count(catalog):
            for f, i in zip(written, write):
                if rows.paths[i] not in existing:  # a vanished file come back: its tags too
                    missing.restore(catalog, int(f), os.fsdecode(rows.paths[i]), rows.hashes[i])
    result.added = sum(rows.paths[i] not in existing for i in write)
    result.updated = len(write) - result.added
    result.failed, result.copied = len(fail), copied
    result.ids = written
    return result


def _tag_rows(rows: ShardRows, write: list[int], written: np.ndarray):  # type: ignore[no-untyped-def]
    """(file id, tag, source, score) of each written file: its automatic tags and the tags read
    from its folders and name (relative to its library folder at home)."""
    for file_id, i in zip(written, write):
        for tag, score in json.loads(rows.auto_tags[i]):
            yield int(file_id), readable(tag), "auto", float(score)
        path, root = os.fsdecode(rows.paths[i]), os.fsdecode(rows.roots[i])
        for source, tags in name_tags(path, root).items():
            for tag in tags:
                yield int(file_id), readable(tag), source, 1.0


def _copy_twins(catalog: Catalog, rows: ShardRows, copy: list[int], ids: dict[bytes, int],
                root_ids: dict[bytes, int], encoder_key: str) -> int:
    """Known content (a copy or a renamed file on the archive): the twin's row, feature and
    vector under the new path, as local indexing does for a duplicate."""
    db = catalog.db
    done = 0
    for i in copy:
        twin = db.execute(
            "SELECT f.id FROM files f JOIN features x ON x.file_id = f.id AND x.encoder_key = ? "
            "JOIN vectors v ON v.file_id = f.id AND v.model_key = ? "
            "WHERE f.content_hash = ? AND f.error IS NULL LIMIT 1",
            (encoder_key, encoder_key, rows.hashes[i])).fetchone()
        if twin is None:
            continue  # its twin is not in this catalog (another one was given): index it here
        columns = ", ".join(ANALYSIS_COLUMNS)
        values = db.execute(f"SELECT {columns} FROM files WHERE id = ?", (twin[0],)).fetchone()
        file_id = catalog.upsert_file(os.fsdecode(rows.paths[i]), root_ids[rows.roots[i]], rows.sizes[i],
                                      rows.mtimes[i], rows.hashes[i], error=None,
                                      error_transient=0, **dict(zip(ANALYSIS_COLUMNS, values)))
        db.execute("INSERT OR REPLACE INTO features(file_id, encoder_key, feature) "
                   "SELECT ?, encoder_key, feature FROM features WHERE file_id = ? AND "
                   "encoder_key = ?", (file_id, twin[0], encoder_key))
        db.execute("INSERT OR REPLACE INTO vectors(file_id, model_key, vector) "
                   "SELECT ?, model_key, vector FROM vectors WHERE file_id = ? AND model_key = ?",
                   (file_id, twin[0], encoder_key))
        ids[rows.paths[i]] = file_id
        done += 1
    return done
