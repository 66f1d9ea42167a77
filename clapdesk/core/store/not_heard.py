"""Files in the catalog that have no vector for a model yet: catalogued from their names while a
first indexing run goes on (index/first_catalogue.py), or left by a run that was stopped."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from clapdesk.core.store.catalog import Catalog

CHUNK = 900  # bound parameters per statement, under SQLite's oldest limit

_NOT_HEARD = ("f.error IS NULL AND NOT EXISTS "
              "(SELECT 1 FROM vectors v WHERE v.file_id = f.id AND v.model_key = ?)")


def count_not_heard(catalog: Catalog, model_key: str | None) -> int:
    """Files without a vector for the model (None: without a vector of any model)."""
    if model_key is None:
        row = catalog.db.execute("SELECT COUNT(*) FROM files f WHERE f.error IS NULL AND NOT "
                                 "EXISTS (SELECT 1 FROM vectors v WHERE v.file_id = f.id)"
                                 ).fetchone()
    else:
        row = catalog.db.execute(f"SELECT COUNT(*) FROM files f WHERE {_NOT_HEARD}",
                                 (model_key,)).fetchone()
    return int(row[0])


def not_heard_among(catalog: Catalog, model_key: str, file_ids: Sequence[int]) -> set[int]:
    """Which of these files have no vector for the model yet."""
    return _ids_where(catalog, file_ids, _NOT_HEARD, (model_key,))


def without_any_vector(catalog: Catalog, file_ids: Sequence[int]) -> set[int]:
    """Which of these files have no vector of any model: browsing, which has no model at hand,
    marks these as not heard yet."""
    return _ids_where(catalog, file_ids,
                      "NOT EXISTS (SELECT 1 FROM vectors v WHERE v.file_id = f.id)", ())


def _ids_where(catalog: Catalog, file_ids: Sequence[int], condition: str,
               params: tuple[object, ...]) -> set[int]:
    """The given files (`f`) that meet `condition`, asked in chunks SQLite's limits allow."""
    out: set[int] = set()
    ids = [int(i) for i in file_ids]
    for at in range(0, len(ids), CHUNK):
        chunk = ids[at: at + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = catalog.db.execute(
            f"SELECT f.id FROM files f WHERE f.id IN ({marks}) AND {condition}", [*chunk, *params])
        out.update(int(r[0]) for r in rows)
    return out


def not_heard_ids(catalog: Catalog, model_key: str) -> list[int]:
    rows = catalog.db.execute(f"SELECT f.id FROM files f WHERE {_NOT_HEARD} ORDER BY f.id",
                              (model_key,))
    return [int(r[0]) for r in rows]


def files_named(catalog: Catalog, tags: Iterable[str], not_heard_by: str | None = None
                ) -> dict[int, set[str]]:
    """Live files that carry any of these visible tags (their name and folder words are tags
    too), only those without a vector for `not_heard_by` when given: file id -> which tags."""
    out: dict[int, set[str]] = {}
    wanted = sorted(set(tags))
    only = f" AND {_NOT_HEARD}" if not_heard_by is not None else " AND f.error IS NULL"
    extra = [not_heard_by] if not_heard_by is not None else []
    for at in range(0, len(wanted), CHUNK):
        chunk = wanted[at: at + CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = catalog.db.execute(
            f"SELECT t.file_id, t.tag FROM tags t JOIN files f ON f.id = t.file_id "
            f"WHERE t.hidden = 0 AND t.tag IN ({marks}){only}", [*chunk, *extra])
        for file_id, tag in rows:
            out.setdefault(int(file_id), set()).add(str(tag))
    return out
