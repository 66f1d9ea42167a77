"""The library's SQLite catalog: files, their analysis, features, vectors, tags and history.

The catalog is the source of truth; the hnswlib index is a cache rebuilt from it. Paths are
stored as the bytes the OS gave us (os.fsencode), because sample libraries contain file names
that are not valid UTF-8 and must still round-trip exactly.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clapdesk.core.ingest.text import readable
from clapdesk.core.store import migrations
from clapdesk.core.store.migrations import SCHEMA_VERSION, SchemaError
from clapdesk.core.store.queries import CatalogQueries

__all__ = ["SCHEMA_VERSION", "Catalog", "CatalogError", "FileRecord"]


# A file's tempo and key are the producer's own where they set them (store/user_tempo.py), the
# analysis' (or the file name's) otherwise: every reader of FileRecord.bpm/.key gets the winner,
# with source 'user', and the analysed values stay beside it.
# SELECT {FILE_COLUMNS} FROM {FILES}; filters on the winners use EFFECTIVE_BPM / EFFECTIVE_KEY.
FILES = "files LEFT JOIN user_tempo_key u ON u.file_id = files.id"
EFFECTIVE_BPM = "COALESCE(u.user_bpm, bpm)"
EFFECTIVE_KEY = "COALESCE(u.user_key, musical_key)"
FILE_COLUMNS = (
    "files.id, path, root_id, size, mtime_ns, content_hash, duration, sample_rate, channels, "
    "format, subtype, error, indexed_at, "
    f"{EFFECTIVE_BPM}, CASE WHEN u.user_bpm IS NULL THEN bpm_source ELSE 'user' END, "
    f"{EFFECTIVE_KEY}, CASE WHEN u.user_key IS NULL THEN key_source ELSE 'user' END, "
    "kind, peak_db, loudness_db, brightness, onset_rate, "
    "bpm, bpm_source, musical_key, key_source"
)


class CatalogError(Exception):
    """A catalog that cannot be opened, with the reason."""


def encode_path(path: str | os.PathLike[str]) -> bytes:
    return os.fsencode(os.fspath(path))


def decode_path(raw: bytes) -> str:
    return os.fsdecode(bytes(raw))


def display_path(path: str) -> str:
    """A path safe to print or show, even when its bytes are not valid UTF-8."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def prefix_range(folder: str | os.PathLike[str]) -> tuple[bytes, bytes]:
    """Byte bounds selecting every path inside `folder` with an index range scan."""
    base = encode_path(os.path.abspath(folder)).rstrip(b"/") + b"/"
    return base, base[:-1] + b"0"  # '0' is the byte after '/'


@dataclass
class FileRecord:
    id: int
    path: str
    root_id: int | None
    size: int
    mtime_ns: int
    content_hash: str | None
    duration: float | None
    sample_rate: int | None
    channels: int | None
    format: str | None
    subtype: str | None
    error: str | None
    indexed_at: float | None
    bpm: float | None = None
    bpm_source: str | None = None
    key: str | None = None
    key_source: str | None = None
    kind: str | None = None
    peak_db: float | None = None
    loudness_db: float | None = None
    brightness: float | None = None
    onset_rate: float | None = None  # onsets per second (NULL until the file is indexed again)
    # What analysis (or the file name) found, before any correction of the producer's.
    analysed_bpm: float | None = None
    analysed_bpm_source: str | None = None
    analysed_key: str | None = None
    analysed_key_source: str | None = None

    @classmethod
    def from_row(cls, row: Sequence[object]) -> FileRecord:
        values = list(row)
        values[1] = decode_path(values[1])  # type: ignore[arg-type]
        return cls(*values)  # type: ignore[arg-type]

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    @property
    def bpm_edited(self) -> bool:
        return self.bpm_source == "user"

    @property
    def key_edited(self) -> bool:
        return self.key_source == "user"


class Catalog(CatalogQueries):
    """One SQLite file, WAL mode, migrated on open. Not shared between threads.

    The rows indexing writes are here; the named questions of browsing, search, duplicates and
    tags are in queries.py."""

    def __init__(self, path: Path | str, readonly: bool = False) -> None:
        self.path = Path(path)
        # A library on a read-only file system (or one this user may not write) is opened for
        # reading: searching works, and nothing tries to write ("attempt to write a readonly
        # database"). access() answers for the file system's mount flags too, even for root.
        writable = not self.path.exists() or (os.access(self.path, os.W_OK)
                                              and os.access(self.path.parent, os.W_OK))
        self.readonly = readonly or not writable
        if self.readonly:
            # Without a writable folder SQLite cannot make the WAL's shared-memory file:
            # immutable tells it that nothing can change the file meanwhile, which holds there.
            folder_fixed = not os.access(self.path.parent, os.W_OK)
            uri = f"file:{self.path}?mode=ro" + ("&immutable=1" if folder_fixed else "")
            self.db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
        readonly = self.readonly
        try:
            # A newer clapdesk's catalog is refused before anything is written to it (even
            # switching to WAL rewrites the header), so it is left byte for byte as it was.
            self._refuse_newer()
            self.db.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                self._use_wal()
                # NORMAL in WAL mode survives a process crash; only power loss may drop the
                # last transactions, never corrupt the file.
                self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except CatalogError:
            self.db.close()
            raise
        except sqlite3.DatabaseError as exc:
            self.db.close()
            if _disk_nearly_full(self.path.parent):
                # SQLite says "disk I/O error" when it cannot even create its WAL index.
                raise CatalogError(
                    f"the disk is full: the catalog {self.path} cannot be opened until some "
                    "space is freed; it was left as it was") from exc
            raise CatalogError(f"the catalog {self.path} cannot be opened: {exc}") from exc

    def _use_wal(self) -> None:
        """Switch to WAL. Two processes switching at once can deadlock on the file lock, and
        SQLite then answers "locked" at once instead of waiting: so wait here and retry."""
        for attempt in range(100):
            try:
                self.db.execute("PRAGMA journal_mode = WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or attempt == 99:
                    raise
                time.sleep(0.05)

    def _refuse_newer(self) -> None:
        try:
            migrations.check_readable(self.db)
        except SchemaError as exc:
            raise CatalogError(f"the catalog {self.path} {exc}") from None

    def _migrate(self) -> None:
        """Bring the schema up to date (store/migrations.py: a backup first, one transaction)."""
        try:
            migrations.migrate(self.db, self.path, self.readonly)
        except SchemaError as exc:
            raise CatalogError(f"the catalog {self.path} {exc}") from None

    def close(self) -> None:
        self.db.close()

    def transaction(self) -> sqlite3.Connection:
        """`with catalog.transaction():` commits on success and rolls back on error."""
        return self.db

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str | None) -> None:
        if self.readonly:
            return  # remembered next time the library can be written
        with self.db:
            self.db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)", (key, value))

    # -- roots ------------------------------------------------------------------------------
    def add_root(self, folder: str | os.PathLike[str]) -> int:
        raw = encode_path(os.path.abspath(folder))
        with self.db:
            self.db.execute("INSERT OR IGNORE INTO roots(path, added_at) VALUES (?, ?)",
                            (raw, time.time()))
        return int(self.db.execute("SELECT id FROM roots WHERE path = ?", (raw,)).fetchone()[0])

    def remove_root(self, folder: str | os.PathLike[str]) -> int:
        """Forget a library folder and every file under it; returns how many files went."""
        raw = encode_path(os.path.abspath(folder))
        row = self.db.execute("SELECT id FROM roots WHERE path = ?", (raw,)).fetchone()
        if not row:
            return 0
        with self.db:
            gone = self.db.execute("DELETE FROM files WHERE root_id = ?", (row[0],)).rowcount
            self.db.execute("DELETE FROM roots WHERE id = ?", (row[0],))
        return gone

    def roots(self) -> list[tuple[int, str]]:
        rows = self.db.execute("SELECT id, path FROM roots ORDER BY path").fetchall()
        return [(int(i), decode_path(p)) for i, p in rows]

    # -- files ------------------------------------------------------------------------------
    def file_stamps(self, root_id: int) -> dict[str, tuple[int, int, int, str | None, bool]]:
        """path -> (id, size, mtime_ns, hash, failed) for every file of a root: one query."""
        rows = self.db.execute(
            "SELECT path, id, size, mtime_ns, content_hash, error IS NOT NULL FROM files "
            "WHERE root_id = ?", (root_id,))
        return {decode_path(p): (i, s, m, h, bool(f)) for p, i, s, m, h, f in rows}

    def get_file(self, file_id: int) -> FileRecord | None:
        row = self.db.execute(f"SELECT {FILE_COLUMNS} FROM {FILES} WHERE id = ?", (file_id,)).fetchone()
        return FileRecord.from_row(row) if row else None

    def file_by_path(self, path: str | os.PathLike[str]) -> FileRecord | None:
        row = self.db.execute(f"SELECT {FILE_COLUMNS} FROM {FILES} WHERE path = ?",
                              (encode_path(os.path.abspath(path)),)).fetchone()
        return FileRecord.from_row(row) if row else None

    def files(self, ids: Iterable[int] | None = None) -> list[FileRecord]:
        """The files with these ids, in that order; every file without ids."""
        if ids is not None:
            id_list = list(ids)
            out: dict[int, FileRecord] = {}
            for chunk in _chunks(id_list, 900):
                marks = ",".join("?" * len(chunk))
                for row in self.db.execute(
                        f"SELECT {FILE_COLUMNS} FROM {FILES} WHERE id IN ({marks})", chunk):
                    record = FileRecord.from_row(row)
                    out[record.id] = record
            return [out[i] for i in id_list if i in out]
        return [FileRecord.from_row(r) for r in self.db.execute(f"SELECT {FILE_COLUMNS} FROM {FILES}")]

    def failures(self) -> list[tuple[str, str]]:
        rows = self.db.execute("SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path")
        return [(decode_path(p), e) for p, e in rows]

    def count_files(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM files WHERE error IS NULL").fetchone()[0])

    def files_with_hash(self, content_hash: str, encoder_key: str) -> list[int]:
        """Live files with this content that already have features for the encoder."""
        rows = self.db.execute(
            "SELECT f.id FROM files f JOIN features x ON x.file_id = f.id "
            "WHERE f.content_hash = ? AND x.encoder_key = ? AND f.error IS NULL",
            (content_hash, encoder_key))
        return [int(r[0]) for r in rows]

    def delete_files(self, ids: Sequence[int]) -> None:
        with self.db:
            for chunk in _chunks(list(ids), 900):
                marks = ",".join("?" * len(chunk))
                self.db.execute(f"DELETE FROM files WHERE id IN ({marks})", chunk)

    def move_file(self, file_id: int, new_path: str, root_id: int, mtime_ns: int) -> None:
        """A renamed file keeps its row: vectors, tags and favourites stay with it."""
        with self.db:
            self.db.execute("UPDATE files SET path = ?, root_id = ?, mtime_ns = ? WHERE id = ?",
                            (encode_path(new_path), root_id, mtime_ns, file_id))

    def upsert_file(self, path: str, root_id: int, size: int, mtime_ns: int,
                    content_hash: str | None, **fields: object) -> int:
        """Insert or update one file's row (without committing); returns its id."""
        columns = ["path", "root_id", "size", "mtime_ns", "content_hash", "indexed_at", *fields]
        values = [encode_path(path), root_id, size, mtime_ns, content_hash, time.time(),
                  *(_plain(v) for v in fields.values())]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns[1:])
        marks = ",".join("?" * len(columns))
        row = self.db.execute(
            f"INSERT INTO files({', '.join(columns)}) VALUES ({marks}) "
            f"ON CONFLICT(path) DO UPDATE SET {updates} RETURNING id", values).fetchone()
        return int(row[0])

    # -- features and vectors ---------------------------------------------------------------
    def put_feature(self, file_id: int, encoder_key: str, feature: np.ndarray) -> None:
        self.db.execute("INSERT OR REPLACE INTO features(file_id, encoder_key, feature) "
                        "VALUES (?, ?, ?)", (file_id, encoder_key, _blob(feature)))

    def put_vector(self, file_id: int, model_key: str, vector: np.ndarray) -> None:
        self.db.execute("INSERT OR REPLACE INTO vectors(file_id, model_key, vector) "
                        "VALUES (?, ?, ?)", (file_id, model_key, _blob(vector)))

    def features(self, encoder_key: str, ids: Sequence[int] | None = None
                 ) -> tuple[np.ndarray, np.ndarray]:
        """(file ids, features matrix) for live files."""
        return self._matrix("features", "feature", "encoder_key", encoder_key, ids)

    def vectors(self, model_key: str, ids: Sequence[int] | None = None,
                after: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """(file ids, vectors matrix); `after` keeps rows written since a vector row id."""
        return self._matrix("vectors", "vector", "model_key", model_key, ids, after)

    def _matrix(self, table: str, column: str, key_column: str, key: str,
                ids: Sequence[int] | None, after: int = 0) -> tuple[np.ndarray, np.ndarray]:
        sql = (f"SELECT t.file_id, t.{column} FROM {table} t JOIN files f ON f.id = t.file_id "
               f"WHERE t.{key_column} = ? AND f.error IS NULL")
        params: list[object] = [key]
        if after:
            sql += " AND t.id > ?"
            params.append(after)
        rows: list[tuple[int, bytes]] = []
        if ids is None:
            rows = self.db.execute(sql, params).fetchall()
        else:
            for chunk in _chunks(list(ids), 900):
                marks = ",".join("?" * len(chunk))
                rows += self.db.execute(sql + f" AND t.file_id IN ({marks})", [*params, *chunk])
        if not rows:
            return np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        file_ids = np.fromiter((r[0] for r in rows), np.int64, len(rows))
        matrix = np.stack([np.frombuffer(r[1], np.float32) for r in rows])
        return file_ids, matrix

    def max_vector_row(self, model_key: str) -> int:
        row = self.db.execute("SELECT MAX(id) FROM vectors WHERE model_key = ?", (model_key,)).fetchone()
        return int(row[0] or 0)

    def vector_file_ids(self, model_key: str) -> set[int]:
        rows = self.db.execute(
            "SELECT v.file_id FROM vectors v JOIN files f ON f.id = v.file_id "
            "WHERE v.model_key = ? AND f.error IS NULL", (model_key,))
        return {int(r[0]) for r in rows}

    def files_missing_vectors(self, model_key: str) -> list[int]:
        rows = self.db.execute(
            "SELECT f.id FROM files f WHERE f.error IS NULL AND NOT EXISTS "
            "(SELECT 1 FROM vectors v WHERE v.file_id = f.id AND v.model_key = ?)", (model_key,))
        return [int(r[0]) for r in rows]

    # -- tags, favourites, history ------------------------------------------------------------
    def set_tags(self, file_id: int, tags: Iterable[tuple[str, float]], source: str) -> None:
        """Replace one source's tags of a file (no commit: callers batch).

        A tag the user hid stays hidden when the new set brings it back (a re-index of a
        changed file suggests the same automatic tags again).
        """
        hidden = {r[0] for r in self.db.execute(
            "SELECT tag FROM tags WHERE file_id = ? AND source = ? AND hidden = 1",
            (file_id, source))}
        # Never a surrogate into SQLite (it refuses them, and the batch would roll back).
        tags = [(readable(tag), score) for tag, score in tags]
        self.db.execute("DELETE FROM tags WHERE file_id = ? AND source = ?", (file_id, source))
        self.db.executemany(
            "INSERT OR REPLACE INTO tags(file_id, tag, source, score, hidden) VALUES (?, ?, ?, ?, ?)",
            [(file_id, tag, source, float(score), int(tag in hidden)) for tag, score in tags])

    def tags_of(self, file_ids: Sequence[int]) -> dict[int, list[tuple[str, str, float]]]:
        """file id -> [(tag, source, score)] of visible tags, user tags first."""
        out: dict[int, list[tuple[str, str, float]]] = {i: [] for i in file_ids}
        for chunk in _chunks(list(file_ids), 900):
            marks = ",".join("?" * len(chunk))
            for fid, tag, source, score in self.db.execute(
                    f"SELECT file_id, tag, source, score FROM tags WHERE hidden = 0 AND "
                    f"file_id IN ({marks}) ORDER BY source != 'user', score DESC, rowid", chunk):
                out[int(fid)].append((tag, source, float(score)))
        return out

    def add_favourite(self, file_id: int, on: bool = True) -> None:
        with self.db:
            if on:
                self.db.execute("INSERT OR IGNORE INTO favourites VALUES (?, ?)", (file_id, time.time()))
            else:
                self.db.execute("DELETE FROM favourites WHERE file_id = ?", (file_id,))

    def favourites(self) -> list[int]:
        return [int(r[0]) for r in self.db.execute(
            "SELECT file_id FROM favourites ORDER BY added_at DESC")]

    def record_history(self, kind: str, value: str | None = None, file_id: int | None = None) -> None:
        if self.readonly:
            return  # a read-only library is searched without keeping a history
        with self.db:
            self.db.execute("INSERT INTO history(kind, value, file_id, at) VALUES (?, ?, ?, ?)",
                            (kind, None if value is None else readable(value), file_id, time.time()))

    def recent(self, kind: str, limit: int = 50) -> list[str | int]:
        """The last `limit` different files heard (or queries made), the latest first.

        Read newest first and stopped at `limit`: grouping the whole history took 10 ms per
        kind on every refresh of the side panel at 20,000 entries, and the history only grows;
        this reads the last few hundred entries (0.1 ms)."""
        column = "file_id" if kind == "audition" else "value"
        rows = self.db.execute(
            f"SELECT {column} FROM history WHERE kind = ? AND {column} IS NOT NULL "
            "ORDER BY at DESC, rowid DESC", (kind,))
        latest: dict[str | int, None] = {}
        for (value,) in rows:
            latest.setdefault(value, None)
            if len(latest) >= limit:
                break
        return list(latest)

    def integrity_ok(self) -> bool:
        return self.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def is_disk_full(exc: BaseException) -> bool:
    """SQLite's own words for ENOSPC ("database or disk is full"), for callers above the store."""
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc)


def _plain(value: object) -> object:
    """numpy scalars as Python numbers: sqlite3 would store a np.float32 as a 4-byte BLOB
    (it has the buffer protocol), and a BLOB where a tempo belongs breaks every reader."""
    return value.item() if isinstance(value, np.generic) else value


def _disk_nearly_full(folder: Path) -> bool:
    try:
        st = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return st.f_bavail * st.f_frsize < 256 * 1024


def _blob(array: np.ndarray) -> bytes:
    return np.ascontiguousarray(array, dtype=np.float32).tobytes()


def _chunks(items: list, size: int) -> Iterator[list]:
    for at in range(0, len(items), size):
        yield items[at: at + size]
