"""The catalog's named questions for browsing, search, duplicates, tags and fine-tuning.

Every SQL statement clapdesk runs lives in store/: callers above it ask these methods by name
and never see a table. They are a mixin of `Catalog` (catalog.py keeps opening, migrating and
the rows indexing writes), so one connection answers both.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from clapdesk.core.store.catalog import FileRecord

CHUNK = 900  # SQLite's default limit is 999 bound parameters per statement


class CatalogQueries:
    # catalog.py imports this module to build Catalog, so its helpers (FileRecord, the path
    # encoding) are imported inside the methods, once the catalog module has loaded.
    db: sqlite3.Connection

    # -- browsing and search -------------------------------------------------------------------
    def browse_files(self, folder: str | os.PathLike[str] | None = None, limit: int = 5000
                     ) -> list[FileRecord]:
        """Live files in path order, the whole library or one folder's, at most `limit`."""
        from clapdesk.core.store.catalog import FILE_COLUMNS, FILES, FileRecord, prefix_range

        if folder is None:
            sql, params = "error IS NULL ORDER BY path LIMIT ?", [limit]
        else:
            sql, params = "error IS NULL AND path >= ? AND path < ? ORDER BY path LIMIT ?", [
                *prefix_range(folder), limit]
        rows = self.db.execute(f"SELECT {FILE_COLUMNS} FROM {FILES} WHERE {sql}", params)
        return [FileRecord.from_row(r) for r in rows]

    def live_files(self) -> list[FileRecord]:
        """Every file that was indexed without an error."""
        from clapdesk.core.store.catalog import FILE_COLUMNS, FILES, FileRecord

        rows = self.db.execute(f"SELECT {FILE_COLUMNS} FROM {FILES} WHERE error IS NULL")
        return [FileRecord.from_row(r) for r in rows]

    def live_files_path_like(self, fragment: str) -> list[FileRecord]:
        """Live files whose path contains `fragment` (SQL LIKE: ASCII letters in any case)."""
        from clapdesk.core.store.catalog import FILE_COLUMNS, FILES, FileRecord

        rows = self.db.execute(
            f"SELECT {FILE_COLUMNS} FROM {FILES} WHERE error IS NULL AND CAST(path AS TEXT) LIKE ?",
            (f"%{fragment}%",))
        return [FileRecord.from_row(r) for r in rows]

    def matching_file_ids(self, *, folder: str | None = None, kind: str | None = None,
                          key: str | None = None, needs_bpm: bool = False,
                          bpm_between: tuple[float, float] | None = None,
                          min_duration: float | None = None, max_duration: float | None = None
                          ) -> list[int]:
        """Live files that meet what SQL can check of a query. `bpm_between` also admits half
        and double time (the caller decides which counts); `needs_bpm` asks only for a tempo."""
        from clapdesk.core.store.catalog import EFFECTIVE_BPM, EFFECTIVE_KEY, prefix_range

        where: list[tuple[str, list[object]]] = [("error IS NULL", [])]
        if folder:
            where.append(("path >= ? AND path < ?", list(prefix_range(folder))))
        if kind:
            where.append(("kind = ?", [kind]))
        if key:
            where.append(("{key} = ?", [key]))
        if bpm_between is not None:
            where.append(("({bpm} BETWEEN ? AND ? OR {bpm} * 2 BETWEEN ? AND ? "
                          "OR {bpm} / 2 BETWEEN ? AND ?)", list(bpm_between) * 3))
        elif needs_bpm:
            where.append(("{bpm} IS NOT NULL", []))
        if min_duration is not None:
            where.append(("duration >= ?", [min_duration]))
        if max_duration is not None:
            where.append(("duration <= ?", [max_duration]))
        # Files the producer corrected are tested on their own values, the rest on the analysed
        # ones: two halves, so that the many uncorrected files are never joined row by row
        # (that cost 80 % more at 100k files); CROSS JOIN makes SQLite walk the few corrections
        # and look each file up, where it would otherwise scan every file for them.
        plain = " AND ".join(sql.format(bpm="bpm", key="musical_key") for sql, _ in where)
        mine = " AND ".join(sql.format(bpm=EFFECTIVE_BPM, key=EFFECTIVE_KEY) for sql, _ in where)
        params = [p for _, values in where for p in values]
        rows = self.db.execute(
            f"SELECT id FROM files WHERE {plain} AND id NOT IN (SELECT file_id FROM user_tempo_key) "
            f"UNION ALL SELECT files.id FROM user_tempo_key u CROSS JOIN files ON files.id = u.file_id "
            f"WHERE {mine}", params + params)
        return [int(r[0]) for r in rows]

    # -- duplicates ----------------------------------------------------------------------------
    def identical_paths(self) -> list[tuple[str, str]]:
        """(content hash, path) of live files that share their content, by hash then path."""
        from clapdesk.core.store.catalog import decode_path

        rows = self.db.execute(
            "SELECT content_hash, path FROM files WHERE error IS NULL AND content_hash IN ("
            " SELECT content_hash FROM files WHERE error IS NULL AND content_hash IS NOT NULL"
            " GROUP BY content_hash HAVING COUNT(*) > 1) ORDER BY content_hash, path")
        return [(digest, decode_path(raw)) for digest, raw in rows]

    def count_identical(self) -> int:
        """How many files have an identical twin: one query, cheap enough for every refresh."""
        row = self.db.execute(
            "SELECT COALESCE(SUM(n), 0) FROM (SELECT COUNT(*) AS n FROM files WHERE error IS NULL "
            "AND content_hash IS NOT NULL GROUP BY content_hash HAVING n > 1)").fetchone()
        return int(row[0])

    def content_hashes(self) -> dict[int, str | None]:
        """file id -> content hash, for every file."""
        return {int(i): h for i, h in self.db.execute("SELECT id, content_hash FROM files")}

    def has_identical_twin(self, path: str) -> bool:
        from clapdesk.core.store.catalog import encode_path

        row = self.db.execute(
            "SELECT COUNT(*) FROM files WHERE error IS NULL AND content_hash = "
            "(SELECT content_hash FROM files WHERE path = ?)", (encode_path(path),)).fetchone()
        return bool(row and row[0] > 1)

    # -- features and vectors ------------------------------------------------------------------
    def feature_file_ids(self, encoder_key: str) -> set[int]:
        """Files with stored features for the encoder, failed ones included."""
        rows = self.db.execute("SELECT file_id FROM features WHERE encoder_key = ?", (encoder_key,))
        return {int(r[0]) for r in rows}

    def live_feature_file_ids(self, encoder_key: str) -> list[int]:
        """Live files with stored features, in the order `features()` returns them."""
        rows = self.db.execute(
            "SELECT x.file_id FROM features x JOIN files f ON f.id = x.file_id "
            "WHERE x.encoder_key = ? AND f.error IS NULL", (encoder_key,))
        return [int(r[0]) for r in rows]

    def delete_vectors(self, model_key: str) -> None:
        """Forget every vector one model (or fine-tuned version) made."""
        with self.db:
            self.db.execute("DELETE FROM vectors WHERE model_key = ?", (model_key,))

    # -- tags ----------------------------------------------------------------------------------
    def tags_from_source(self, file_ids: Sequence[int], source: str) -> list[tuple[int, str]]:
        """(file id, tag) of one source, hidden ones included, in the order they were written."""
        return [(int(f), t) for f, t in self._by_files(
            file_ids, "SELECT file_id, tag FROM tags WHERE source = ?", (source,), order="rowid")]

    def tags_not_from_source(self, file_ids: Sequence[int], source: str
                             ) -> list[tuple[int, str, bool]]:
        """(file id, tag, hidden) of every other source, one row per tag, best score first;
        a tag is hidden when every row of it is."""
        rows = self._by_files(file_ids, "SELECT file_id, tag, MIN(hidden) FROM tags WHERE source != ?",
                              (source,), group="file_id, tag", order="MAX(score) DESC, tag")
        return [(int(f), t, bool(h)) for f, t, h in rows]

    def add_tag(self, file_ids: Iterable[int], tag: str, source: str) -> None:
        """Give each file the tag, keeping the ones it has (no commit: callers batch)."""
        self.db.executemany(
            "INSERT OR IGNORE INTO tags(file_id, tag, source, score) VALUES (?, ?, ?, 1.0)",
            [(int(i), tag, source) for i in file_ids])

    def set_tag_hidden(self, file_id: int, tag: str, hidden: bool, except_source: str) -> int:
        """Hide or show a file's tag in every source but one (no commit); returns rows changed."""
        cursor = self.db.execute(
            "UPDATE tags SET hidden = ? WHERE file_id = ? AND tag = ? AND source != ?",
            (int(hidden), int(file_id), tag, except_source))
        return cursor.rowcount

    def files_with_tags(self, tags: Iterable[str], source: str) -> dict[int, set[str]]:
        """file id -> which of `tags` it has from `source`."""
        out: dict[int, set[str]] = {}
        for chunk in _chunks(sorted(set(tags)), CHUNK):
            marks = ",".join("?" * len(chunk))
            for fid, tag in self.db.execute(
                    f"SELECT file_id, tag FROM tags WHERE source = ? AND tag IN ({marks})",
                    [source, *chunk]):
                out.setdefault(int(fid), set()).add(tag)
        return out

    def tags_by_use(self, limit: int = 5000) -> list[str]:
        """Every visible tag, most used first."""
        return [r[0] for r in self.db.execute(
            "SELECT tag FROM tags WHERE hidden = 0 GROUP BY tag ORDER BY COUNT(*) DESC, tag LIMIT ?",
            (limit,))]

    def _by_files(self, file_ids: Sequence[int], select: str, params: Sequence[object],
                  group: str = "", order: str = "") -> list[tuple]:
        """`select ... AND file_id IN (...)`, in chunks of bound parameters."""
        rows: list[tuple] = []
        for chunk in _chunks([int(i) for i in file_ids], CHUNK):
            marks = ",".join("?" * len(chunk))
            sql = f"{select} AND file_id IN ({marks})"
            if group:
                sql += f" GROUP BY {group}"
            if order:
                sql += f" ORDER BY {order}"
            rows.extend(self.db.execute(sql, [*params, *chunk]).fetchall())
        return rows


def _chunks(items: list, size: int) -> Iterator[list]:
    for at in range(0, len(items), size):
        yield items[at: at + size]
