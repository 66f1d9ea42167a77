"""Schema migrations: one function per version, a backup first, one transaction, and
`min_compatible` so an older clapdesk still opens a catalog that only gained columns."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from clapdesk.core.store import migrations
from clapdesk.core.store.catalog import Catalog, CatalogError
from clapdesk.core.store.migrations import SCHEMA_VERSION, Step

FIXTURE = Path(__file__).parent / "fixtures" / "catalog_v1.sqlite3"


def _read(path: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(path)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def _as_newer_clapdesk(path: Path, min_compatible: int) -> None:
    """What a clapdesk one schema ahead would leave: a new column, its version, its claim."""
    Catalog(path).close()
    db = sqlite3.connect(path)
    with db:
        db.execute("ALTER TABLE files ADD COLUMN loved_by_the_future INTEGER")
        db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('min_compatible', ?)",
                   (str(min_compatible),))
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()


def test_migrating_the_first_schema_keeps_a_backup_of_it(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    shutil.copy(FIXTURE, path)
    before = _read(path, "SELECT id, path, content_hash FROM files ORDER BY id")
    Catalog(path).close()
    backup = tmp_path / "catalog.sqlite3.v1.bak"
    assert backup.exists()
    assert _read(backup, "PRAGMA user_version") == [(1,)]
    assert _read(backup, "SELECT id, path, content_hash FROM files ORDER BY id") == before
    assert _read(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert _read(path, "SELECT id, path, content_hash FROM files ORDER BY id") == before
    # The oldest schema any of its steps still lets open it (the index-only step keeps 6's).
    assert _read(path, "SELECT value FROM meta WHERE key = 'min_compatible'") == [
        (str(max(step.min_compatible for step in migrations.STEPS)),)]


def test_a_new_catalog_needs_no_backup(tmp_path: Path) -> None:
    Catalog(tmp_path / "catalog.sqlite3").close()
    assert sorted(p.name for p in tmp_path.iterdir() if ".bak" in p.name) == []


def test_a_newer_catalog_that_only_gained_columns_opens(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    _as_newer_clapdesk(path, min_compatible=SCHEMA_VERSION)
    catalog = Catalog(path)
    try:
        with catalog.transaction():
            file_id = catalog.upsert_file(str(tmp_path / "kick.wav"), None, 10, 20, "ab" * 20)
        assert catalog.get_file(file_id).size == 10
    finally:
        catalog.close()
    assert _read(path, "PRAGMA user_version") == [(SCHEMA_VERSION + 1,)]  # left at its version
    assert _read(path, "SELECT loved_by_the_future FROM files") == [(None,)]


def test_a_newer_catalog_this_clapdesk_cannot_use_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    _as_newer_clapdesk(path, min_compatible=SCHEMA_VERSION + 1)
    before = path.read_bytes()
    with pytest.raises(CatalogError) as refused:
        Catalog(path)
    assert str(refused.value) == (
        f"the catalog {path} was written by a newer clapdesk (schema {SCHEMA_VERSION + 1}, this "
        f"one knows {SCHEMA_VERSION}); update clapdesk to open it. It was left untouched.")
    assert path.read_bytes() == before


def test_a_step_that_fails_leaves_the_catalog_as_it_was(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "catalog.sqlite3"
    Catalog(path).close()

    def half_a_step(db: sqlite3.Connection) -> None:
        db.execute("ALTER TABLE files ADD COLUMN half TEXT")
        raise sqlite3.OperationalError("the step fails after its first statement")

    monkeypatch.setattr(migrations, "STEPS", [*migrations.STEPS, Step(half_a_step, 1)])
    monkeypatch.setattr(migrations, "SCHEMA_VERSION", SCHEMA_VERSION + 1)
    with pytest.raises(CatalogError, match="fails after its first statement"):
        Catalog(path)
    assert _read(path, "PRAGMA user_version") == [(SCHEMA_VERSION,)]
    assert "half" not in {row[1] for row in _read(path, "PRAGMA table_info(files)")}
    assert (tmp_path / f"catalog.sqlite3.v{SCHEMA_VERSION}.bak").exists()
