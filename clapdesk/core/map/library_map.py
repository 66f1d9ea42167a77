"""The library's map: laid out in full on request, kept up to date for new files by neighbours.

Qt-free: the GUI runs these through its worker pool, the CLI calls them directly. Each call
takes the catalog it should use, so a worker thread can pass its own connection.
"""

from __future__ import annotations

import threading

import numpy as np

from clapdesk.core.map.layout import (
    Progress,
    Projection,
    fit_projection,
    lay_out,
    place_by_neighbours,
)
from clapdesk.core.store import map_positions
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.map_positions import MapRows

LAYOUT_SHARE = 0.95  # of a full layout's progress; loading and storing take the rest


def relayout(catalog: Catalog, model_key: str, progress: Progress | None = None,
             cancel: threading.Event | None = None, seed: int = 0) -> int:
    """Lay every vector of the model out anew and store it; returns how many points.

    A cancelled layout raises LayoutCancelled and leaves the stored map as it was."""
    file_ids, vectors = catalog.vectors(model_key)
    if len(file_ids) == 0:
        return 0
    if progress:
        progress(0.0)
    projection = fit_projection(vectors)
    reduced = projection.apply(vectors)
    positions = lay_out(reduced, lambda f: progress(f * LAYOUT_SHARE) if progress else None,
                        cancel, seed)
    map_positions.save_layout(catalog, model_key, projection.mean, projection.components,
                              file_ids.tolist(), positions)
    if progress:
        progress(1.0)
    return len(file_ids)


def place_new_files(catalog: Catalog, model_key: str) -> int:
    """Place files indexed since the layout by their nearest neighbours; returns how many.

    Without a stored layout nothing is placed (a full layout is needed first)."""
    stored = map_positions.load_layout(catalog, model_key)
    if stored is None:
        return 0
    new_ids = map_positions.unplaced_file_ids(catalog, model_key)
    if not new_ids:
        return 0
    rows = map_positions.load_points(catalog, model_key)
    # One read of every vector (cheaper than asking for 100k ids in chunks), split by id.
    all_ids, vectors = catalog.vectors(model_key)
    is_known = np.isin(all_ids, rows.file_ids)
    is_new = np.isin(all_ids, np.asarray(new_ids, np.int64))
    known_positions = rows.positions[np.searchsorted(rows.file_ids, all_ids[is_known])]
    projection = Projection(stored.mean, stored.components)
    positions = place_by_neighbours(projection.apply(vectors[is_known]), known_positions,
                                    projection.apply(vectors[is_new]))
    new_ids = all_ids[is_new].tolist()
    map_positions.add_points(catalog, model_key, new_ids, positions)
    return len(new_ids)


def has_layout(catalog: Catalog, model_key: str) -> bool:
    return map_positions.load_layout(catalog, model_key) is not None


def current_map(catalog: Catalog, model_key: str, progress: Progress | None = None,
                cancel: threading.Event | None = None) -> MapRows:
    """The map as it should be shown now: laid out the first time, new files placed since."""
    if not has_layout(catalog, model_key):
        relayout(catalog, model_key, progress, cancel)
    else:
        place_new_files(catalog, model_key)
    return map_positions.load_points(catalog, model_key)


def light_by_score(file_ids: np.ndarray, scores: dict[int, float]) -> np.ndarray:
    """0..1 per point: a query's hits by score relative to the best and worst hit, the rest 0."""
    light = np.zeros(len(file_ids), np.float32)
    if not scores:
        return light
    values = np.array(list(scores.values()), np.float64)
    low, high = float(values.min()), float(values.max())
    span = high - low
    index = {int(fid): i for i, fid in enumerate(file_ids)}
    for fid, score in scores.items():
        at = index.get(int(fid))
        if at is not None:
            # The weakest hit still shows clearly above the dimmed rest.
            light[at] = 1.0 if span <= 0 else 0.35 + 0.65 * (score - low) / span
    return light
