"""Duplicates: identical files by content hash, near-duplicates by sound.

Sample packs repeat each other: the same kick ships in five packs under five names, and a
"bounced" copy differs only in its last bits. The first kind is found exactly through the content
hash; the second through the vector index, as pairs whose vectors are nearly parallel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from clapdesk.core.store.catalog import Catalog, display_path

if TYPE_CHECKING:  # the library is the face above this package; only its type is named here
    from clapdesk.core.library import Library

NEAR_DUPLICATE_COSINE = 0.985
NEIGHBOURS = 8


@dataclass
class DuplicateGroup:
    kind: str  # "identical" or "near"
    paths: list[str] = field(default_factory=list)
    similarity: float = 1.0

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "similarity": round(self.similarity, 4),
                "paths": [display_path(p) for p in self.paths]}


def identical_groups(catalog: Catalog) -> list[DuplicateGroup]:
    """Files with the same content hash, grouped (only groups of two or more)."""
    groups: dict[str, DuplicateGroup] = {}
    for digest, path in catalog.identical_paths():
        groups.setdefault(digest, DuplicateGroup("identical")).paths.append(path)
    return list(groups.values())


def count_identical(catalog: Catalog) -> int:
    """How many files have an identical twin: one query, cheap enough for every refresh."""
    return catalog.count_identical()


def near_groups(library: Library, threshold: float = NEAR_DUPLICATE_COSINE) -> list[DuplicateGroup]:
    """Files that sound the same but are not byte-identical, grouped by single linkage."""
    ids, vectors = library.catalog.vectors(library.model_key)
    if len(ids) < 2:
        return []
    hashes = library.catalog.content_hashes()
    index = library.vector_index()
    parent = {int(i): int(i) for i in ids}
    best: dict[int, float] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for file_id, vector in zip(ids, vectors):
        for other, score in index.query(vector, NEIGHBOURS + 1):
            if other == file_id or score < threshold or other not in parent:
                continue
            if hashes.get(other) is not None and hashes.get(other) == hashes.get(int(file_id)):
                continue  # identical content is reported as such
            a, b = root(int(file_id)), root(other)
            if a != b:
                parent[b] = a
            best[a] = min(best.get(a, 1.0), score)
    members: dict[int, list[int]] = {}
    for file_id in parent:
        members.setdefault(root(file_id), []).append(file_id)
    groups = []
    for head, group in members.items():
        if len(group) > 1:
            records = library.catalog.files(group)
            groups.append(DuplicateGroup("near", sorted(r.path for r in records),
                                         best.get(head, threshold)))
    return sorted(groups, key=lambda g: g.paths)


def is_duplicate(library: Library, path: str) -> bool:
    return library.catalog.has_identical_twin(path)
