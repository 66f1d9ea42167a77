"""The catalog's schema, one function per version, and how a catalog is brought up to date.

Each step migrates from version i to i+1 and is never edited once released: a change is a new
step. Before a step runs on a catalog that holds anything, the catalog is copied beside itself
(catalog.sqlite3.v<N>.bak, with SQLite's backup API, so the copy is consistent even while
another clapdesk reads it); the steps then run in one transaction, so a failure leaves the
catalog as it was.

`min_compatible` (kept in the meta table) is the oldest schema whose clapdesk can still use the
catalog. A step that only adds columns or tables keeps it where it was, so an older clapdesk
still opens a catalog a newer one upgraded; a step that changes what rows mean raises it to its
own version, and older versions then refuse the catalog with a plain message.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path


class SchemaError(Exception):
    """A catalog this clapdesk cannot open as it is (catalog.py adds the catalog's path)."""


def _run(db: sqlite3.Connection, statements: Sequence[str]) -> None:
    for statement in statements:
        db.execute(statement)


def _first_schema(db: sqlite3.Connection) -> None:
    """0 -> 1: the first schema: roots, files, features, vectors and meta."""
    _run(db, [
        """
        CREATE TABLE roots(
            id INTEGER PRIMARY KEY,
            path BLOB UNIQUE NOT NULL,
            added_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE files(
            id INTEGER PRIMARY KEY,
            path BLOB UNIQUE NOT NULL,
            root_id INTEGER REFERENCES roots(id) ON DELETE CASCADE,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            content_hash TEXT,
            duration REAL, sample_rate INTEGER, channels INTEGER, format TEXT, subtype TEXT,
            error TEXT,
            indexed_at REAL
        )
        """,
        "CREATE INDEX files_hash ON files(content_hash)",
        "CREATE INDEX files_root ON files(root_id)",
        """
        CREATE TABLE features(
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            encoder_key TEXT NOT NULL,
            feature BLOB NOT NULL,
            PRIMARY KEY(file_id, encoder_key)
        )
        """,
        """
        CREATE TABLE vectors(
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            model_key TEXT NOT NULL,
            vector BLOB NOT NULL,
            UNIQUE(file_id, model_key)
        )
        """,
        "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT)",
    ])


def _analysis_tags_favourites_history(db: sqlite3.Connection) -> None:
    """1 -> 2: analysis columns, tags, favourites and history."""
    _run(db, [
        "ALTER TABLE files ADD COLUMN bpm REAL",
        "ALTER TABLE files ADD COLUMN bpm_source TEXT",
        "ALTER TABLE files ADD COLUMN musical_key TEXT",
        "ALTER TABLE files ADD COLUMN key_source TEXT",
        "ALTER TABLE files ADD COLUMN kind TEXT",
        "ALTER TABLE files ADD COLUMN peak_db REAL",
        "ALTER TABLE files ADD COLUMN loudness_db REAL",
        "ALTER TABLE files ADD COLUMN brightness REAL",
        """
        CREATE TABLE tags(
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            tag TEXT NOT NULL,
            source TEXT NOT NULL,          -- 'user', 'auto', 'folder', 'filename', 'csv'
            score REAL NOT NULL DEFAULT 1,
            hidden INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY(file_id, tag, source)
        )
        """,
        "CREATE INDEX tags_tag ON tags(tag)",
        """
        CREATE TABLE favourites(
            file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            added_at REAL NOT NULL
        )
        """,
        """
        CREATE TABLE history(
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,            -- 'query' or 'audition'
            value TEXT,
            file_id INTEGER REFERENCES files(id) ON DELETE CASCADE,
            at REAL NOT NULL
        )
        """,
        "CREATE INDEX history_kind ON history(kind, at)",
    ])


def _retries_and_missing_files(db: sqlite3.Connection) -> None:
    """2 -> 3: failures that pass are retried (ctime, transient errors), and what vanished files
    leave behind (store/missing.py).
    """
    _run(db, [
        "ALTER TABLE files ADD COLUMN ctime_ns INTEGER",
        "ALTER TABLE files ADD COLUMN error_transient INTEGER NOT NULL DEFAULT 0",
        """
        CREATE TABLE missing_files(
            id INTEGER PRIMARY KEY,
            path BLOB NOT NULL,
            content_hash TEXT,
            missing_since REAL NOT NULL,
            tags TEXT NOT NULL DEFAULT '[]',  -- JSON [[tag, source, score, hidden]]: user and hidden tags
            favourite_at REAL
        )
        """,
        "CREATE INDEX missing_path ON missing_files(path)",
        "CREATE INDEX missing_hash ON missing_files(content_hash)",
    ])


def _sound_map(db: sqlite3.Connection) -> None:
    """3 -> 4: the map of the library by sound (map_layouts, map_points)."""
    _run(db, [
        """
        CREATE TABLE map_layouts(
            model_key TEXT PRIMARY KEY,
            created_at REAL NOT NULL,
            dims INTEGER NOT NULL,
            mean BLOB NOT NULL,            -- float32 (d,): the PCA the layout was made in
            components BLOB NOT NULL       -- float32 (d, dims)
        )
        """,
        """
        CREATE TABLE map_points(
            file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
            model_key TEXT NOT NULL REFERENCES map_layouts(model_key) ON DELETE CASCADE,
            x REAL NOT NULL,
            y REAL NOT NULL,
            placed INTEGER NOT NULL DEFAULT 0,  -- 1: placed by its neighbours after the layout
            PRIMARY KEY(model_key, file_id)
        )
        """,
        "CREATE INDEX map_points_file ON map_points(file_id)",
    ])


def _user_tempo_and_key(db: sqlite3.Connection) -> None:
    """The producer's own tempo and key for a file (store/user_tempo.py). A table of their own,
    as user tags are a source of their own: indexing writes only `files`, so a rescan or a
    re-analysis never touches them. A vanished file's correction waits in missing_files with
    its tags, for when it comes back. An older clapdesk would show the analysed values and, when
    a corrected file vanished, drop its correction: so it is refused the catalog, as for every
    step before.
    """
    _run(db, [
        """
        CREATE TABLE user_tempo_key(
            file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
            user_bpm REAL,                 -- NULL: the analysed (or named) tempo stands
            user_key TEXT,                 -- canonical ("F# minor"); NULL: the analysed key stands
            edited_at REAL NOT NULL,
            CHECK (user_bpm IS NOT NULL OR user_key IS NOT NULL)
        )
        """,
        "ALTER TABLE missing_files ADD COLUMN tempo_key TEXT",  # JSON [bpm, key, edited_at]
    ])


@dataclass(frozen=True)
class Step:
    apply: Callable[[sqlite3.Connection], None]
    min_compatible: int  # the oldest schema that can use a catalog once this step has run
    # False for a step that only adds indexes: no row changes, so it needs no backup (on a
    # 100,000-file library the copy is hundreds of MB, made before the window opens).
    changes_rows: bool = True


def _onset_rate(db: sqlite3.Connection) -> None:
    """4 -> 5: each file's onsets per second, for "similar in rhythm". Files indexed before it
    keep NULL until they change or the library is re-indexed; the aspect then leaves it out."""
    _run(db, ["ALTER TABLE files ADD COLUMN onset_rate REAL"])


def _overview_indexes(db: sqlite3.Connection) -> None:
    """6 -> 7: partial indexes for what the side panel reads on every refresh while indexing:
    the failures (a few files, in path order) and the live files by content (the library's
    count and its identical copies). Each query scanned the whole files table; on 100,000
    files the overview took 97 ms, and 38 ms with these (and with recent() no longer reading
    all of the history). An older clapdesk uses the catalog as it is: SQLite keeps the indexes."""
    _run(db, [
        "CREATE INDEX files_failed ON files(path) WHERE error IS NOT NULL",
        "CREATE INDEX files_live_hash ON files(content_hash) WHERE error IS NULL",
    ])


STEPS: list[Step] = [
    Step(_first_schema, 1),
    Step(_analysis_tags_favourites_history, 2),
    Step(_retries_and_missing_files, 3),
    Step(_sound_map, 4),
    Step(_onset_rate, 5),
    Step(_user_tempo_and_key, 6),
    Step(_overview_indexes, 6, changes_rows=False),
]
SCHEMA_VERSION = len(STEPS)
MIN_COMPATIBLE_KEY = "min_compatible"


def user_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def min_compatible(db: sqlite3.Connection) -> int:
    """The oldest schema that can use this catalog: what the steps it went through say."""
    version = user_version(db)
    try:
        row = db.execute("SELECT value FROM meta WHERE key = ?", (MIN_COMPATIBLE_KEY,)).fetchone()
    except sqlite3.OperationalError:  # no meta table: an empty or foreign file
        row = None
    return int(row[0]) if row and row[0] is not None else version


def check_readable(db: sqlite3.Connection) -> None:
    """Refuse a catalog from a newer clapdesk that this one cannot use. Reads only: a catalog
    refused here is left byte for byte as it was."""
    version = user_version(db)
    if version > SCHEMA_VERSION and min_compatible(db) > SCHEMA_VERSION:
        raise SchemaError(
            f"was written by a newer clapdesk (schema {version}, this one knows "
            f"{SCHEMA_VERSION}); update clapdesk to open it. It was left untouched.")


def backup_path(catalog: Path, version: int) -> Path:
    return catalog.with_name(f"{catalog.name}.v{version}.bak")


def migrate(db: sqlite3.Connection, catalog: Path, readonly: bool = False) -> Path | None:
    """Bring the catalog to SCHEMA_VERSION; returns the backup made, if any. A newer catalog
    that this clapdesk can use is left at its own version."""
    check_readable(db)
    version = user_version(db)
    if version >= SCHEMA_VERSION:
        return None
    if readonly:
        raise SchemaError(f"has an older schema ({version}) and must be upgraded once by "
                          "opening it for writing")
    backup = None
    with db:
        db.execute("BEGIN IMMEDIATE")
        # Read again under the write lock: another clapdesk opening the same catalog at the
        # same moment may have migrated it while this one waited.
        version = user_version(db)
        if version >= SCHEMA_VERSION:
            return None
        # A new, empty catalog has nothing to keep, and steps that only add indexes change
        # nothing a backup would give back.
        if version > 0 and any(step.changes_rows for step in STEPS[version:]):
            backup = backup_path(catalog, version)
            _copy(catalog, backup)
        for step in STEPS[version:]:
            step.apply(db)
        oldest = max([min_compatible(db) if version else 0,
                      *(s.min_compatible for s in STEPS[version:])])
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?, ?)",
                   (MIN_COMPATIBLE_KEY, str(oldest)))
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    return backup


def _copy(catalog: Path, target: Path) -> None:
    """A consistent copy of the catalog at `target`, written whole before it takes the name.
    Read through a connection of its own: the migrating one holds the write lock, and SQLite's
    backup cannot read through a connection in the middle of a write transaction."""
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)
    source = sqlite3.connect(catalog, timeout=30)
    copy = sqlite3.connect(partial)
    try:
        source.backup(copy)
    finally:
        copy.close()
        source.close()
    partial.replace(target)
