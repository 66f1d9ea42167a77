"""The producer's own tempo and key: read as they write them, winning over analysis and names in
every reader, kept through rescans, vanished files, a crash and the schema migration."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import write_sound
from loopfactory import render, spec_for

import clapdesk
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import search_text
from clapdesk.core.store import map_positions, migrations, missing, user_tempo
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.user_tags import set_user_tags, user_tags
from clapdesk.core.store.user_tempo import CorrectionError, parse_bpm, parse_key


@pytest.mark.parametrize(("text", "key"), [
    ("Am", "A minor"), ("A minor", "A minor"), ("a min", "A minor"), ("F#m", "F# minor"),
    ("Gb major", "F# major"), ("Gb", "F# major"), ("Bb", "A# major"), ("bbm", "A# minor"),
    ("C", "C major"), ("CM", "C major"), ("Cm", "C minor"), ("F sharp minor", "F# minor"),
    ("E-flat major", "D# major"), ("D♭", "C# major"), ("c#moll", "C# minor"), (" e   MINOR ", "E minor"),
])
def test_keys_as_producers_write_them(text: str, key: str) -> None:
    assert parse_key(text) == key


@pytest.mark.parametrize("text", ["H minor", "A mixolydian", "", "Am7", "minor", "120"])
def test_a_key_that_is_no_key_is_refused_with_what_would_do(text: str) -> None:
    with pytest.raises(CorrectionError, match="not a key: write a note"):
        parse_key(text)


def test_tempos_and_their_range() -> None:
    assert parse_bpm("120") == 120.0
    assert parse_bpm("92,5 BPM") == 92.5
    assert parse_bpm(" 174.333 ") == 174.33
    with pytest.raises(CorrectionError, match="outside 40-300 BPM"):
        parse_bpm("12")
    with pytest.raises(CorrectionError, match="outside 40-300 BPM"):
        parse_bpm(999)
    with pytest.raises(CorrectionError, match="not a tempo"):
        parse_bpm("fast")


def _loop(path: Path, bpm: float, bars: int, seed: int = 3) -> Path:
    spec = replace(spec_for(seed), genre="rock", bpm=bpm, bars=bars, hats="eighths", swing=0.5,
                   extras=(), rate=44100)
    return write_sound(path, render(spec), 44100)


@pytest.fixture
def library(tiny_model: Path, tmp_path: Path):  # noqa: ANN201
    folder = tmp_path / "samples"
    _loop(folder / "groove_take.wav", 100.0, 2)
    _loop(folder / "DrumLoop_94bpm_Cmin.wav", 94.0, 2, seed=4)
    lib = Library(model=str(tiny_model), allow_download=False)
    lib.index_folders([str(folder)])
    yield lib, folder
    lib.close()


def test_a_correction_wins_over_analysis_and_names_everywhere_and_survives_a_rescan(library) -> None:  # noqa: ANN001
    lib, folder = library
    catalog = lib.catalog
    groove = catalog.file_by_path(folder / "groove_take.wav")
    named = catalog.file_by_path(folder / "DrumLoop_94bpm_Cmin.wav")
    assert groove is not None and named is not None
    assert groove.bpm_source == "audio" and groove.bpm == pytest.approx(100, rel=0.04)
    assert (named.bpm, named.bpm_source, named.key, named.key_source) == (
        94.0, "filename", "C minor", "filename")

    user_tempo.set_correction(catalog, [groove.id], bpm="140", key="Am")
    user_tempo.set_correction(catalog, [named.id], bpm=188)  # the key stays the name's
    groove, named = catalog.files([groove.id, named.id])
    assert (groove.bpm, groove.bpm_source, groove.key, groove.key_source) == (
        140.0, "user", "A minor", "user")
    assert groove.analysed_bpm == pytest.approx(100, rel=0.04) and groove.analysed_bpm_source == "audio"
    assert (named.bpm, named.bpm_source, named.key, named.key_source) == (
        188.0, "user", "C minor", "filename")

    # Search constraints read the corrected values, in SQL and in Python alike.
    found = search_text(lib, "drum loop at 140 bpm in A minor", k=5)
    assert [h.file.id for h in found.hits] == [groove.id]
    assert found.hits[0].to_json()["bpm"] == 140.0
    assert found.hits[0].to_json()["bpm_source"] == "user"
    assert [h.file.id for h in search_text(lib, "loop at 100 bpm", k=5).hits] == []
    assert [h.file.id for h in search_text(lib, "loop at 188 bpm", k=5).hits] == [named.id]

    # The file changes on disk and is analysed again: the producer's values stand.
    path = folder / "groove_take.wav"
    _loop(path, 120.0, 2, seed=9)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    assert lib.rescan().indexed == 1
    groove = catalog.get_file(groove.id)
    assert groove is not None
    assert (groove.bpm, groove.key, groove.bpm_source) == (140.0, "A minor", "user")
    assert groove.analysed_bpm == pytest.approx(120, rel=0.04)  # analysis moved on beneath it

    # Cleared, one at a time: the analysis counts again.
    user_tempo.clear_correction(catalog, [groove.id], key=False)
    groove = catalog.get_file(groove.id)
    assert groove is not None and groove.bpm_source == "audio" and groove.key == "A minor"
    user_tempo.clear_correction(catalog, [groove.id])
    groove = catalog.get_file(groove.id)
    assert groove is not None and not groove.key_edited and groove.key == groove.analysed_key
    assert user_tempo.corrections(catalog, [groove.id]) == {}


def test_bad_input_writes_nothing(library) -> None:  # noqa: ANN001
    lib, folder = library
    record = lib.catalog.file_by_path(folder / "groove_take.wav")
    assert record is not None
    user_tempo.set_correction(lib.catalog, [record.id], bpm=90)
    with pytest.raises(CorrectionError):
        user_tempo.set_correction(lib.catalog, [record.id], bpm=91, key="Q major")
    assert user_tempo.corrections(lib.catalog, [record.id])[record.id].bpm == 90.0


def test_a_vanished_file_gets_its_correction_back_when_it_returns(library, tmp_path: Path) -> None:  # noqa: ANN001
    lib, folder = library
    path = folder / "groove_take.wav"
    record = lib.catalog.file_by_path(path)
    assert record is not None
    user_tempo.set_correction(lib.catalog, [record.id], bpm=141.5, key="F#m")
    set_user_tags(lib.catalog, [record.id], ["dusty"])
    kept = tmp_path / "kept.wav"
    path.rename(kept)
    lib.rescan()
    assert lib.catalog.file_by_path(path) is None and missing.count(lib.catalog) == 1
    kept.rename(path)
    lib.rescan()
    back = lib.catalog.file_by_path(path)
    assert back is not None
    assert (back.bpm, back.bpm_source, back.key) == (141.5, "user", "F# minor")
    assert user_tags(lib.catalog, [back.id])[back.id] == ["dusty"]


def test_the_map_colours_by_the_corrected_key(tmp_path: Path) -> None:
    catalog = Catalog(tmp_path / "catalog.sqlite3")
    try:
        root = catalog.add_root(tmp_path)
        with catalog.transaction():
            ids = [catalog.upsert_file(str(tmp_path / f"{i}.wav"), root, 1, 1, None,
                                       musical_key="C major", key_source="audio") for i in range(2)]
            catalog.db.execute("INSERT INTO map_layouts VALUES ('m', 0, 2, ?, ?)",
                               (np.zeros(4, np.float32).tobytes(), np.zeros(8, np.float32).tobytes()))
            catalog.db.executemany("INSERT INTO map_points(file_id, model_key, x, y) VALUES (?, 'm', 0, 0)",
                                   [(i,) for i in ids])
        user_tempo.set_correction(catalog, [ids[1]], key="Ebm")
        rows = map_positions.load_points(catalog, "m")
        assert dict(zip(rows.file_ids.tolist(), rows.keys)) == {ids[0]: "C major", ids[1]: "D# minor"}
    finally:
        catalog.close()


def test_a_correction_survives_a_crash_right_after_it_was_made(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    catalog = Catalog(path)
    with catalog.transaction():
        file_id = catalog.upsert_file(str(tmp_path / "a.wav"), catalog.add_root(tmp_path), 1, 1, None,
                                      bpm=80.0, bpm_source="audio")
    catalog.close()
    script = (f"import os; from clapdesk.core.store.catalog import Catalog; "
              f"from clapdesk.core.store import user_tempo; c = Catalog({str(path)!r}); "
              f"user_tempo.set_correction(c, [{file_id}], bpm=160, key='G minor'); os._exit(9)")
    source = str(Path(clapdesk.__file__).resolve().parents[1])  # this checkout's clapdesk
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": source},
                          timeout=60)
    assert done.returncode == 9  # gone without closing anything
    catalog = Catalog(path)
    try:
        record = catalog.get_file(file_id)
        assert record is not None and (record.bpm, record.key, record.bpm_source) == (160.0, "G minor", "user")
    finally:
        catalog.close()


def _catalog_before_this_step(path: Path) -> int:
    """A catalog as the clapdesk before the tempo/key step left it; returns its version."""
    version = migrations.STEPS.index(
        next(s for s in migrations.STEPS if s.apply is migrations._user_tempo_and_key))
    db = sqlite3.connect(path)
    with db:
        for step in migrations.STEPS[:version]:
            step.apply(db)
        db.execute("INSERT INTO meta(key, value) VALUES ('min_compatible', ?)", (str(version),))
        db.execute(f"PRAGMA user_version = {version}")
        db.execute("INSERT INTO roots(id, path, added_at) VALUES (1, ?, 0)", (b"/lib",))
        db.execute("INSERT INTO files(id, path, root_id, size, mtime_ns, bpm, bpm_source, "
                   "musical_key, key_source, kind) VALUES (7, ?, 1, 10, 1, 87.5, 'audio', "
                   "'D minor', 'audio', 'loop')", (b"/lib/loop.wav",))
        db.execute("INSERT INTO tags(file_id, tag, source) VALUES (7, 'dusty', 'user')")
        db.execute("INSERT INTO favourites VALUES (7, 5)")
    db.close()
    return version


def test_migrating_the_previous_schema_keeps_everything_and_adds_corrections(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite3"
    version = _catalog_before_this_step(path)
    catalog = Catalog(path)
    try:
        assert migrations.user_version(catalog.db) == migrations.SCHEMA_VERSION
        assert migrations.backup_path(path, version).exists()
        record = catalog.get_file(7)
        assert record is not None
        assert (record.bpm, record.bpm_source, record.key, record.kind) == (87.5, "audio", "D minor", "loop")
        assert user_tags(catalog, [7]) == {7: ["dusty"]} and catalog.favourites() == [7]
        user_tempo.set_correction(catalog, [7], bpm=175)
        assert catalog.get_file(7).bpm == 175.0  # type: ignore[union-attr]
    finally:
        catalog.close()


def test_tempo_on_the_command_line(capsys: pytest.CaptureFixture[str], library, tiny_model: Path) -> None:  # noqa: ANN001
    from clapdesk.cli import main

    lib, folder = library
    lib.close()
    loop = str(folder / "groove_take.wav")

    def run(*argv: str, code: int = 0) -> dict:
        got = main(["--json", "--model", str(tiny_model), *argv])
        captured = capsys.readouterr()
        assert got == code, captured.err
        return json.loads(captured.out) if code == 0 else {"err": captured.err}

    out = run("tempo", loop, "--bpm", "128", "--key", "Gb major")
    item = out["files"][0]
    assert (item["bpm"], item["bpm_source"], item["key"], item["key_source"]) == (
        128.0, "user", "F# major", "user")
    assert item["analysed_bpm"] == pytest.approx(100, rel=0.04)
    assert run("tempo", loop)["files"][0]["bpm"] == 128.0  # listed, unchanged
    out = run("tempo", loop, "--clear-key")
    assert out["files"][0]["key_source"] != "user" and out["files"][0]["bpm"] == 128.0
    assert run("tempo", loop, "--clear")["files"][0]["bpm_source"] == "audio"

    err = run("tempo", loop, "--key", "A dorian", code=2)["err"]
    assert "clapdesk tempo: 'A dorian' is not a key" in err
    assert "outside 40-300 BPM" in run("tempo", loop, "--bpm", "7", code=2)["err"]
    assert "not both" in run("tempo", loop, "--bpm", "90", "--clear", code=2)["err"]
    assert "not in the library" in run("tempo", str(folder / "nope.wav"), "--bpm", "90", code=1)["err"]
    # Nothing was written by the refused commands.
    assert run("tempo", loop)["files"][0]["bpm_source"] == "audio"
    # Plain text says whose values they are.
    assert main(["--model", str(tiny_model), "tempo", loop, "--bpm", "99"]) == 0
    assert "99 BPM (yours; analysis:" in capsys.readouterr().out
