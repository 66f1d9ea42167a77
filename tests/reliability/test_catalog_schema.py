"""Catalog schema versions: an older catalog (a stored file) is migrated and its rows stay
readable; a newer or damaged one is refused with a message and left byte for byte as it was."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from make_old_catalog import ENCODER, FILES, ROOT, vector

from clapdesk.cli import main
from clapdesk.core.store.catalog import (
    SCHEMA_VERSION,
    Catalog,
    CatalogError,
    decode_path,
    encode_path,
)

FIXTURE = Path(__file__).resolve().parent.parent / "fixtures" / "catalog_v1.sqlite3"


def digest(path: Path) -> str:
    return hashlib.blake2b(path.read_bytes()).hexdigest()


def user_version(path: Path) -> int:
    db = sqlite3.connect(path)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_stored_fixture_is_the_old_schema() -> None:
    assert FIXTURE.stat().st_size < 100_000
    assert user_version(FIXTURE) == 1 < SCHEMA_VERSION


def test_older_catalog_is_migrated_and_its_rows_stay_readable(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    shutil.copy(FIXTURE, path)
    catalog = Catalog(path)
    try:
        assert user_version(path) == SCHEMA_VERSION
        assert catalog.integrity_ok()
        assert catalog.roots() == [(1, decode_path(ROOT))]
        records = {encode_path(r.path): r for r in catalog.files()}
        assert set(records) == {f[0] for f in FILES}  # the non-UTF-8 name too, byte for byte
        kick = records[ROOT + b"/Drums/kick_01.wav"]
        assert (kick.size, kick.duration, kick.sample_rate, kick.bpm, kick.kind) == (
            88244, 0.5, 44100, None, None)
        assert catalog.failures() == [(decode_path(ROOT + b"/broken.wav"), "file is empty")]
        ids, vectors = catalog.vectors(ENCODER)
        assert sorted(ids.tolist()) == [1, 2, 3]
        for file_id, row in zip(ids, vectors):
            np.testing.assert_array_equal(row, np.frombuffer(vector(100 + int(file_id), 16), np.float32))
        assert catalog.get_meta("model") == "laion/larger_clap_music"
        # What the new schema added works on the old rows.
        with catalog.transaction():
            catalog.set_tags(kick.id, [("punchy", 1.0)], "user")
        catalog.add_favourite(kick.id)
        assert catalog.tags_of([kick.id])[kick.id] == [("punchy", "user", 1.0)]
        assert catalog.favourites() == [kick.id]
    finally:
        catalog.close()
    # Opening again is a no-op: already at the current schema.
    Catalog(path).close()
    assert user_version(path) == SCHEMA_VERSION


def test_a_migration_that_fails_changes_nothing(tmp_path: Path) -> None:
    """Every step runs in one transaction: a step that fails half-way leaves the old schema."""
    path = tmp_path / "catalog.sqlite3"
    shutil.copy(FIXTURE, path)
    db = sqlite3.connect(path)
    db.execute("ALTER TABLE files ADD COLUMN kind TEXT")  # step 1 -> 2 will add it again
    db.commit()
    db.close()
    with pytest.raises(CatalogError, match="cannot be opened: duplicate column name: kind"):
        Catalog(path)
    db = sqlite3.connect(path)
    try:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "tags" not in tables and "favourites" not in tables, "step 1 -> 2 was rolled back"
        columns = {r[1] for r in db.execute("PRAGMA table_info(files)")}
        assert "bpm" not in columns
        assert db.execute("SELECT COUNT(*) FROM files").fetchone()[0] == len(FILES)
    finally:
        db.close()


def test_older_catalog_opened_read_only_says_so_and_stays_old(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    shutil.copy(FIXTURE, path)
    with pytest.raises(CatalogError, match=r"older schema \(1\) and must be upgraded"):
        Catalog(path, readonly=True)
    assert digest(path) == digest(FIXTURE)


def test_newer_catalog_is_refused_and_left_untouched(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    library = tmp_path / "library"
    library.mkdir()
    path = library / "catalog.sqlite3"
    shutil.copy(FIXTURE, path)
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.commit()
    db.close()
    before = digest(path)

    with pytest.raises(CatalogError) as refused:
        Catalog(path)
    assert str(refused.value) == (
        f"the catalog {path} was written by a newer clapdesk (schema 99, this one knows "
        f"{SCHEMA_VERSION}); update clapdesk to open it. It was left untouched.")
    assert digest(path) == before

    code = main(["--library", str(library), "doctor"])
    err = capsys.readouterr().err
    assert code == 1 and "written by a newer clapdesk (schema 99" in err
    assert "Traceback" not in err
    assert digest(path) == before
    assert sorted(p.name for p in library.iterdir()) == ["catalog.sqlite3"]


def test_damaged_catalog_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    path.write_bytes(b"this was a catalog once" * 200)
    before = digest(path)
    with pytest.raises(CatalogError, match="cannot be opened: file is not a database"):
        Catalog(path)
    assert digest(path) == before


RACE = """
import os, sys, time
from clapdesk.core.store.catalog import Catalog
start = float(sys.argv[2])
while time.time() < start:
    pass
Catalog(sys.argv[1]).close()
"""


@pytest.mark.parametrize("source", ["fixture", "new"])
def test_processes_opening_one_catalog_at_once_all_succeed(source: str, tmp_path: Path) -> None:
    """Several clapdesk processes (the GUI and a CLI, say) opening a catalog that needs
    migrating, or creating one, at the same instant: each must see the other's migration."""
    path = tmp_path / "catalog.sqlite3"
    if source == "fixture":
        shutil.copy(FIXTURE, path)
    start = time.time() + 3.0  # all of them begin migrating at once
    procs = [subprocess.Popen([sys.executable, "-c", RACE, str(path), str(start)],
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, errors
    assert user_version(path) == SCHEMA_VERSION
    catalog = Catalog(path)
    try:
        assert catalog.integrity_ok()
        assert len(catalog.files()) == (len(FILES) if source == "fixture" else 0)
    finally:
        catalog.close()
