"""Where each sound sits on the map, per model: the catalog's map_layouts and map_points.

A layout belongs to the vectors of one model key; its PCA basis is kept with it, so files
indexed later are placed in the same space without laying the whole library out again.
Rows of deleted files go with them (ON DELETE CASCADE).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from clapdesk.core.store.catalog import Catalog, decode_path

LAID_OUT, PLACED = 0, 1  # how a point got its position: the full layout, or by its neighbours


@dataclass
class StoredLayout:
    model_key: str
    created_at: float
    mean: np.ndarray
    components: np.ndarray


@dataclass
class MapRows:
    """Every positioned live file of one layout, as parallel arrays (cheap at 100k files)."""

    file_ids: np.ndarray  # int64 (n,)
    positions: np.ndarray  # float32 (n, 2)
    placed: np.ndarray  # bool (n,): placed by neighbours since the layout was made
    paths: list[str]
    kinds: list[str | None]
    keys: list[str | None]

    def __len__(self) -> int:
        return len(self.file_ids)

    def folders(self) -> list[str]:
        return [os.path.dirname(p) for p in self.paths]


def save_layout(catalog: Catalog, model_key: str, mean: np.ndarray, components: np.ndarray,
                file_ids: Sequence[int], positions: np.ndarray) -> None:
    """Replace the model's layout and all its points in one transaction."""
    components = np.ascontiguousarray(components, np.float32)
    with catalog.db:
        catalog.db.execute("DELETE FROM map_points WHERE model_key = ?", (model_key,))
        catalog.db.execute(
            "INSERT OR REPLACE INTO map_layouts(model_key, created_at, dims, mean, components) "
            "VALUES (?, ?, ?, ?, ?)",
            (model_key, time.time(), components.shape[1],
             np.ascontiguousarray(mean, np.float32).tobytes(), components.tobytes()))
        _insert_points(catalog, model_key, file_ids, positions, LAID_OUT)


def add_points(catalog: Catalog, model_key: str, file_ids: Sequence[int], positions: np.ndarray
               ) -> None:
    """Points placed by their neighbours into the existing layout."""
    with catalog.db:
        _insert_points(catalog, model_key, file_ids, positions, PLACED)


def _insert_points(catalog: Catalog, model_key: str, file_ids: Sequence[int],
                   positions: np.ndarray, how: int) -> None:
    catalog.db.executemany(
        "INSERT OR REPLACE INTO map_points(file_id, model_key, x, y, placed) VALUES (?, ?, ?, ?, ?)",
        [(int(i), model_key, float(x), float(y), how)
         for i, (x, y) in zip(file_ids, np.asarray(positions, np.float64))])


def load_layout(catalog: Catalog, model_key: str) -> StoredLayout | None:
    row = catalog.db.execute(
        "SELECT created_at, dims, mean, components FROM map_layouts WHERE model_key = ?",
        (model_key,)).fetchone()
    if row is None:
        return None
    created, dims, mean, components = row
    mean_v = np.frombuffer(mean, np.float32).copy()
    return StoredLayout(model_key, float(created), mean_v,
                        np.frombuffer(components, np.float32).reshape(len(mean_v), int(dims)).copy())


def load_points(catalog: Catalog, model_key: str) -> MapRows:
    rows = catalog.db.execute(
        "SELECT m.file_id, m.x, m.y, m.placed, f.path, f.kind, COALESCE(u.user_key, f.musical_key) "
        "FROM map_points m JOIN files f ON f.id = m.file_id "
        "LEFT JOIN user_tempo_key u ON u.file_id = f.id WHERE m.model_key = ? AND f.error IS NULL "
        "ORDER BY m.file_id", (model_key,)).fetchall()
    n = len(rows)
    return MapRows(
        file_ids=np.fromiter((r[0] for r in rows), np.int64, n),
        positions=np.array([(r[1], r[2]) for r in rows], np.float32).reshape(n, 2),
        placed=np.fromiter((bool(r[3]) for r in rows), bool, n),
        paths=[decode_path(r[4]) for r in rows],
        kinds=[r[5] for r in rows],
        keys=[r[6] for r in rows])


def unplaced_file_ids(catalog: Catalog, model_key: str) -> list[int]:
    """Live files with a vector of this model but no point on its map yet."""
    rows = catalog.db.execute(
        "SELECT v.file_id FROM vectors v JOIN files f ON f.id = v.file_id "
        "WHERE v.model_key = ? AND f.error IS NULL AND NOT EXISTS "
        "(SELECT 1 FROM map_points m WHERE m.file_id = v.file_id AND m.model_key = v.model_key) "
        "ORDER BY v.file_id", (model_key,))
    return [int(r[0]) for r in rows]


def first_tags(catalog: Catalog, file_ids: Sequence[int]) -> dict[int, str]:
    """Each file's leading visible tag (the user's first), for colouring the map by tag."""
    return {fid: tags[0][0] for fid, tags in catalog.tags_of(list(file_ids)).items() if tags}
