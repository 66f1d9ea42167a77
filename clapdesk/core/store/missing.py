"""Files that vanished: hidden from everything, but what the user gave them is kept.

A vanished file's row goes (with its vectors, so search and the index never see it), and its
own tags, the tags it had hidden, its favourite mark and the tempo and key its producer set
move to `missing_files`. When a file
comes back at the same path, or with the same content at a new path, it is indexed as new and
gets them back. They are purged on request or after a long absence.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

from clapdesk.core.store import user_tempo
from clapdesk.core.store.catalog import Catalog, decode_path, encode_path

PURGE_AFTER_DAYS = 90.0
_DAY = 86400.0


def forget(catalog: Catalog, file_ids: Sequence[int], now: float | None = None) -> int:
    """Mark files missing: keep their user tags, hidden tags and favourite; drop their rows."""
    if not file_ids:
        return 0
    now = time.time() if now is None else now
    db = catalog.db
    with db:
        for file_id in file_ids:
            row = db.execute("SELECT path, content_hash FROM files WHERE id = ?", (file_id,)).fetchone()
            if row is None:
                continue
            kept = [list(r) for r in db.execute(
                "SELECT tag, source, score, hidden FROM tags WHERE file_id = ? "
                "AND (source = 'user' OR hidden = 1) ORDER BY rowid", (file_id,))]
            star = db.execute("SELECT added_at FROM favourites WHERE file_id = ?", (file_id,)).fetchone()
            tempo_key = user_tempo.keep_for_missing(catalog, file_id)
            if kept or star or tempo_key:  # a file nobody tagged, starred or corrected leaves nothing
                db.execute("INSERT INTO missing_files(path, content_hash, missing_since, tags, "
                           "favourite_at, tempo_key) VALUES (?, ?, ?, ?, ?, ?)",
                           (row[0], row[1], now, json.dumps(kept), star[0] if star else None,
                            json.dumps(tempo_key) if tempo_key else None))
            db.execute("DELETE FROM files WHERE id = ?", (file_id,))
    return len(file_ids)


def count(catalog: Catalog) -> int:
    return int(catalog.db.execute("SELECT COUNT(*) FROM missing_files").fetchone()[0])


def missing_paths(catalog: Catalog) -> list[tuple[str, float]]:
    """(path, missing since) of every vanished file still remembered."""
    rows = catalog.db.execute("SELECT path, missing_since FROM missing_files ORDER BY path")
    return [(decode_path(p), float(t)) for p, t in rows]


def restore(catalog: Catalog, file_id: int, path: str, content_hash: str | None) -> bool:
    """Give a newly indexed file what its vanished self had (no commit: the caller's batch).

    The same path wins over the same content elsewhere; of several, the latest to vanish.
    """
    db = catalog.db
    columns = "id, tags, favourite_at, tempo_key"
    row = db.execute(f"SELECT {columns} FROM missing_files WHERE path = ? "
                     "ORDER BY missing_since DESC LIMIT 1", (encode_path(path),)).fetchone()
    if row is None and content_hash:
        row = db.execute(f"SELECT {columns} FROM missing_files WHERE content_hash = ? "
                         "ORDER BY missing_since DESC LIMIT 1", (content_hash,)).fetchone()
    if row is None:
        return False
    entry, tags, favourite_at, tempo_key = row
    user_tempo.restore_from_missing(catalog, file_id, json.loads(tempo_key) if tempo_key else None)
    db.executemany("INSERT OR REPLACE INTO tags(file_id, tag, source, score, hidden) "
                   "VALUES (?, ?, ?, ?, ?)",
                   [(file_id, tag, source, float(score), int(hidden))
                    for tag, source, score, hidden in json.loads(tags)])
    if favourite_at is not None:
        db.execute("INSERT OR IGNORE INTO favourites(file_id, added_at) VALUES (?, ?)",
                   (file_id, favourite_at))
    db.execute("DELETE FROM missing_files WHERE id = ?", (entry,))
    return True


def purge(catalog: Catalog, older_than_days: float | None = None, now: float | None = None) -> int:
    """Forget vanished files for good: all of them, or those missing for longer than given."""
    with catalog.db:
        if older_than_days is None:
            return catalog.db.execute("DELETE FROM missing_files").rowcount
        cutoff = (time.time() if now is None else now) - older_than_days * _DAY
        return catalog.db.execute("DELETE FROM missing_files WHERE missing_since < ?",
                                  (cutoff,)).rowcount
