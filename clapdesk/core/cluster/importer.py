"""`clapdesk import`: shards from a cluster run merged into a library, in one pass.

Every shard's metadata is checked before any row is read: one shard of another model commit
or preprocessing version and nothing is merged, with the shard and both versions named. Rows
are then read, remapped (--map), reduced to the newest row per path, and merged by the store in
one transaction (store/shard_merge.py); the vector index takes the new vectors incrementally.
The model itself is never loaded: the vectors and automatic tags come in the shards.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clapdesk.core.cluster import shards
from clapdesk.core.cluster.shards import PREPROCESSING_VERSION, Manifest, PathMap, ShardError
from clapdesk.core.library import Library
from clapdesk.core.store.shard_merge import ShardRows, merge

log = logging.getLogger(__name__)


@dataclass
class ImportReport:
    shards: int = 0
    rows: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    older: int = 0
    copied: int = 0
    failed: int = 0
    indexed_vectors: int = 0  # added to the vector index now
    reproject: int = 0  # waiting for the active fine-tuned version's head (next `index`)
    timings: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"shards": self.shards, "rows": self.rows, "added": self.added,
                "updated": self.updated, "unchanged": self.unchanged, "older_kept": self.older,
                "copied": self.copied, "failed": self.failed,
                "indexed_vectors": self.indexed_vectors, "reproject": self.reproject,
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "seconds": round(self.seconds, 3)}


def shard_files(sources: list[str]) -> list[tuple[Any, str]]:
    """(file system, path) of every shard named: shard files, or folders/URLs holding them."""
    found: list[tuple[Any, str]] = []
    for source in sources:
        fs, path = shards.open_folder(source)
        if path.endswith(".parquet"):
            if not fs.exists(path):
                raise ShardError(f"{source}: no such shard")
            found.append((fs, path))
            continue
        if not fs.isdir(path):
            raise ShardError(f"{source}: neither a shard nor a folder of shards")
        names = sorted(shards.shard_names(fs, path))
        if not names:
            raise ShardError(f"{source} holds no shards (shard-*.parquet)")
        found.extend((fs, f"{path}/{name}") for name in names)
    return found


def check_shards(files: list[tuple[Any, str]], model_key: str, model_commit: str) -> None:
    """Refuse, before anything is merged, any shard of another model or preprocessing."""
    pq = shards.need("pyarrow.parquet")
    for fs, path in files:
        with fs.open(path, "rb") as handle:
            try:
                metadata = pq.ParquetFile(handle).schema_arrow.metadata
            except Exception as exc:  # pyarrow's errors for a damaged or foreign file
                raise ShardError(f"{path} cannot be read as a shard: {exc}") from None
        made: Manifest = shards.shard_manifest(metadata, path)
        if made.model_commit != model_commit:
            raise ShardError(
                f"{path} was made with the model {made.model_key} (commit {made.model_commit}); "
                f"this library uses {model_key} (commit {model_commit}). Nothing was imported: "
                "import it into a library of that model (--model), or index those files again")
        if made.preprocessing != PREPROCESSING_VERSION:
            raise ShardError(
                f"{path} was made with other preprocessing ({made.preprocessing}); this "
                f"clapdesk uses {PREPROCESSING_VERSION}. Nothing was imported: index those "
                "files again with this clapdesk version")


def read_rows(files: list[tuple[Any, str]], path_map: PathMap) -> ShardRows:
    """All rows of all shards, paths remapped, one row per path: the newest (by mtime)."""
    pa = shards.need("pyarrow")
    pq = shards.need("pyarrow.parquet")
    tables = []
    for fs, path in files:
        with fs.open(path, "rb") as handle:
            table = pq.read_table(handle)
        tables.append(table.replace_schema_metadata(None))
    table = pa.concat_tables(tables) if len(tables) > 1 else tables[0]
    paths = table.column("path").to_pylist()
    roots = table.column("root").to_pylist()
    if path_map:
        paths = [os.fsencode(path_map.apply(os.fsdecode(p))) for p in paths]
        roots = [os.fsencode(path_map.apply(os.fsdecode(r))) for r in roots]
    mtimes = table.column("mtime_ns").to_numpy()
    # The newest row of a path wins (a file rewritten between two runs is in two shards).
    first: dict[bytes, int] = {}
    for i, path in enumerate(paths):
        if path not in first or mtimes[i] > mtimes[first[path]]:
            first[path] = i
    keep = np.array(sorted(first.values()), np.int64)

    def matrix(name: str) -> np.ndarray:
        column = table.column(name).combine_chunks()
        dim = column.type.list_size
        values = column.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
        return np.ascontiguousarray(values[keep], np.float32)

    def pick(name: str) -> list[Any]:
        values = table.column(name).to_pylist()
        return [values[i] for i in keep]

    return ShardRows(
        paths=[paths[i] for i in keep], roots=[roots[i] for i in keep],
        sizes=[int(v) for v in pick("size")], mtimes=[int(v) for v in pick("mtime_ns")],
        hashes=pick("content_hash"), status=pick("status"), errors=pick("error"),
        analysis=pick("analysis"), auto_tags=pick("auto_tags"),
        features=matrix("feature"), vectors=matrix("vector"))


def import_shards(library: Library, sources: list[str], path_map: PathMap | None = None
                  ) -> ImportReport:
    started = time.monotonic()
    report = ImportReport()
    identity = library.identity
    files = shard_files(sources)
    check_shards(files, identity.encoder_key, identity.revision)
    report.shards = len(files)
    clock = time.monotonic()
    rows = read_rows(files, path_map or PathMap())
    report.rows = len(rows.paths)
    report.timings["read"] = time.monotonic() - clock
    library.acquire_writer()
    try:
        catalog = library.catalog
        # The index is brought up to date before the merge, so what it takes in after it is
        # exactly what the merge wrote.
        clock = time.monotonic()
        same_heads = library.model_key == identity.encoder_key
        index = library.vector_index() if same_heads else None
        report.timings["open_index"] = time.monotonic() - clock
        clock = time.monotonic()
        result = merge(catalog, rows, identity.encoder_key)
        report.timings["merge"] = time.monotonic() - clock
        for meta, value in (("model", library.model_ref),
                            (f"revision:{identity.encoder_key}", identity.revision)):
            if catalog.get_meta(meta) is None:
                catalog.set_meta(meta, value)
        clock = time.monotonic()
        written = result.ids.size + result.copied
        if index is not None:
            index.sync(catalog)  # the rows the merge wrote, read back once
            index.save()
            report.indexed_vectors = written
        else:
            # A fine-tuned version is active: its head projects these features at the next
            # `clapdesk index`, without decoding anything.
            report.reproject = written
        report.timings["index"] = time.monotonic() - clock
    finally:
        library.release_writer()
    report.added, report.updated, report.unchanged = result.added, result.updated, result.unchanged
    report.older, report.copied, report.failed = result.older, result.copied, result.failed
    report.seconds = time.monotonic() - started
    return report
