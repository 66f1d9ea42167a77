"""What the side panel reads on every refresh while indexing (the library's count, its identical
copies, the failures, what was heard and asked lately): the same answers, read through partial
indexes and from the newest history, so a large library's refresh does not scan it whole."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from clapdesk.core.store import migrations
from clapdesk.core.store.catalog import Catalog


def _library(path: Path) -> Catalog:
    """60 files: every 7th failed, ids 1-12 in identical pairs, one failed twin of a live one."""
    catalog = Catalog(path)
    root = catalog.add_root("/lib")
    with catalog.transaction():
        for i in range(1, 61):
            digest = f"{(i + 1) // 2:040x}" if i <= 12 else f"{1000 + i:040x}"
            error = "could not decode" if i % 7 == 0 else None
            catalog.upsert_file(f"/lib/{60 - i:02d}.wav", root, 10, i, digest, error=error)
    return catalog


def _plan(catalog: Catalog, sql: str) -> str:
    return " ".join(str(row[-1]) for row in catalog.db.execute(f"EXPLAIN QUERY PLAN {sql}"))


def test_the_overview_counts_read_partial_indexes_and_agree_with_the_rows(tmp_path: Path) -> None:
    catalog = _library(tmp_path / "catalog.sqlite3")
    rows = catalog.db.execute("SELECT id, path, error, content_hash FROM files").fetchall()
    live = [r for r in rows if r[2] is None]
    hashes = [r[3] for r in live]
    assert catalog.count_files() == len(live) == 52
    assert catalog.count_identical() == sum(hashes.count(h) > 1 for h in hashes) == 10
    assert [p for p, _ in catalog.failures()] == sorted(
        bytes(r[1]).decode() if isinstance(r[1], bytes) else r[1] for r in rows if r[2])
    assert "files_live_hash" in _plan(catalog, "SELECT COUNT(*) FROM files WHERE error IS NULL")
    assert "files_failed" in _plan(
        catalog, "SELECT path, error FROM files WHERE error IS NOT NULL ORDER BY path")
    catalog.close()


def test_a_step_that_only_adds_indexes_migrates_without_a_backup(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    _library(path).close()
    db = sqlite3.connect(path)  # the catalog as schema 6 left it
    with db:
        db.execute("DROP INDEX files_failed")
        db.execute("DROP INDEX files_live_hash")
    db.execute("PRAGMA user_version = 6")
    before = db.execute("SELECT * FROM files ORDER BY id").fetchall()
    db.close()
    catalog = Catalog(path)
    names = {r[0] for r in catalog.db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"files_failed", "files_live_hash"} <= names
    assert catalog.db.execute("SELECT * FROM files ORDER BY id").fetchall() == before
    assert catalog.db.execute("PRAGMA user_version").fetchone()[0] == migrations.SCHEMA_VERSION
    catalog.close()
    assert not [p.name for p in tmp_path.iterdir() if ".bak" in p.name]
    # An older clapdesk (schema 6) may still open it.
    assert migrations.STEPS[-1].min_compatible <= 6


def test_recent_lists_the_latest_different_entries_first_and_stops_at_the_limit(
        tmp_path: Path) -> None:
    catalog = _library(tmp_path / "catalog.sqlite3")
    heard = [5, 3, 5, 9, 3, 1, 9, 9, 2]  # in the order heard
    with catalog.transaction():
        for at, file_id in enumerate(heard):
            catalog.db.execute("INSERT INTO history(kind, value, file_id, at) "
                               "VALUES ('audition', NULL, ?, ?)", (file_id, float(at)))
        for value in ("kick", "pad", "kick"):  # the same second: the last written is latest
            catalog.db.execute("INSERT INTO history(kind, value, file_id, at) "
                               "VALUES ('query', ?, NULL, 100.0)", (value,))
    assert catalog.recent("audition", 10) == [2, 9, 1, 3, 5]
    assert catalog.recent("audition", 3) == [2, 9, 1]
    assert catalog.recent("query", 10) == ["kick", "pad"]
    catalog.close()
