"""Browsing without a query: the library's places (everything, a folder, favourites, recently
heard, identical copies) and the overview beside them, for the window and the command line.

Each call opens its own catalog connection, so it can run on any thread, beside the indexer's.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from clapdesk.core.search.duplicates import count_identical, identical_groups
from clapdesk.core.search.ranking import Hit
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.not_heard import without_any_vector
from clapdesk.core.store.user_tags import tags_for_display

BROWSE_LIMIT = 5000  # rows shown when browsing a place without a query
ALL, FOLDER, FAVOURITES, RECENT = "all", "folder", "favourites", "recent"
DUPLICATES = "duplicates"  # files whose content is identical to another's


@dataclass
class Overview:
    """What the side panel and the failures panel show."""

    roots: list[str] = field(default_factory=list)
    offline: set[str] = field(default_factory=set)
    total: int = 0
    favourites: list[int] = field(default_factory=list)
    recent: int = 0
    queries: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    duplicates: int = 0  # files that have an identical twin


def load_overview(catalog_path: Path) -> Overview:
    catalog = Catalog(catalog_path)
    try:
        roots = [path for _, path in catalog.roots()]
        return Overview(
            roots=roots, offline={r for r in roots if not os.path.isdir(r)},
            total=catalog.count_files(), favourites=catalog.favourites(),
            recent=len(catalog.recent("audition", 200)),
            queries=[str(q) for q in catalog.recent("query", 200)],
            failures=catalog.failures(),
            duplicates=count_identical(catalog))
    finally:
        catalog.close()


def load_place(catalog_path: Path, kind: str, value: str = "", limit: int = BROWSE_LIMIT
               ) -> list[Hit]:
    """The files of a place (the whole library, a folder, favourites, recent), as score-less hits."""
    catalog = Catalog(catalog_path)
    try:
        if kind == FAVOURITES:
            records = catalog.files(catalog.favourites()[:limit])
        elif kind == RECENT:
            records = catalog.files([int(i) for i in catalog.recent("audition", limit)])
        elif kind == DUPLICATES:
            # Group by group, so copies of one sound sit together in the table.
            paths = [p for group in identical_groups(catalog) for p in group.paths][:limit]
            records = [r for r in (catalog.file_by_path(p) for p in paths) if r is not None]
        elif kind == FOLDER and value:
            records = catalog.browse_files(value, limit)
        else:
            records = catalog.browse_files(limit=limit)
        records = [r for r in records if r.error is None]
        tags = tags_for_display(catalog, [r.id for r in records])
        # A first indexing run lists files before the model has heard them (no vector yet).
        waiting = without_any_vector(catalog, [r.id for r in records])
        return [Hit(record, 0.0, None, tags.get(record.id, []), heard=record.id not in waiting)
                for record in records]
    finally:
        catalog.close()
