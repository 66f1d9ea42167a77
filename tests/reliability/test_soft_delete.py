"""A file that vanishes is hidden, not forgotten: its own tags and its favourite mark come back
with it (same path, or the same content at a new path), until it is purged on request or after
a long absence."""

from __future__ import annotations

import json
import shutil
import sqlite3
import time
from pathlib import Path

from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import search_text
from clapdesk.core.store import user_tags


def _setup(folder: Path) -> list[Path]:
    return [write_sound(folder / f"{fam}_{i}.wav", family_sound(fam, i))
            for i, fam in enumerate(["kick", "pad", "bass", "hihat"])]


def _tag_and_star(library: Library, path: Path) -> None:
    record = library.catalog.file_by_path(path)
    assert record is not None
    user_tags.set_user_tags(library.catalog, [record.id], ["dusty", "mine"])
    library.catalog.add_favourite(record.id)


def _tags_and_star(library: Library, path: Path) -> tuple[list[str], bool]:
    record = library.catalog.file_by_path(path)
    assert record is not None, path
    mine = user_tags.user_tags(library.catalog, [record.id])[record.id]
    return mine, record.id in library.catalog.favourites()


def test_a_vanished_file_keeps_its_tags_and_favourite_until_it_returns(
        tmp_path: Path, tiny_model: Path) -> None:
    folder, parked = tmp_path / "samples", tmp_path / "parked.wav"
    kick = _setup(folder)[0]
    library = Library(model=str(tiny_model))
    try:
        library.index_folders([str(folder)])
        _tag_and_star(library, kick)

        shutil.move(str(kick), str(parked))  # deleted by mistake
        report = library.rescan()
        assert report.removed == 1
        assert library.catalog.count_files() == 3
        assert library.catalog.file_by_path(kick) is None  # hidden from everything...
        assert all(h.file.path != str(kick) for h in search_text(library, "kick", k=10).hits)
        assert library.catalog.failures() == []

        shutil.move(str(parked), str(kick))  # ...and restored from the bin
        back = library.rescan()
        assert back.indexed == 1 and back.removed == 0
        assert _tags_and_star(library, kick) == (["dusty", "mine"], True)

        # The same content at a new path (moved by hand between two rescans) gets them too.
        moved = folder / "sorted" / "kick_0.wav"
        shutil.move(str(kick), str(parked))
        assert library.rescan().removed == 1
        moved.parent.mkdir()
        shutil.move(str(parked), str(moved))
        assert library.rescan().indexed == 1
        assert _tags_and_star(library, moved) == (["dusty", "mine"], True)
    finally:
        library.close()


def test_purge_on_request_and_after_a_long_absence(tmp_path: Path, tiny_model: Path,
                                                   capsys) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "samples"
    kick, pad, *_ = _setup(folder)
    library = Library(model=str(tiny_model))
    try:
        library.index_folders([str(folder)])
        _tag_and_star(library, kick)
        _tag_and_star(library, pad)
        kick_bytes, pad_bytes = kick.read_bytes(), pad.read_bytes()
        kick.unlink()
        pad.unlink()
        assert library.rescan().removed == 2
    finally:
        library.close()

    # `clapdesk purge` forgets them for good.
    assert main(["--json", "purge"]) == 0
    assert json.loads(capsys.readouterr().out)["purged"] == 2
    kick.write_bytes(kick_bytes)
    library = Library(model=str(tiny_model))
    try:
        library.rescan()
        assert _tags_and_star(library, kick) == ([], False)
        _tag_and_star(library, kick)  # tagged again, for the last step
    finally:
        library.close()

    # A long absence purges on its own: pad went missing 100 days ago.
    pad.write_bytes(pad_bytes)
    library = Library(model=str(tiny_model))
    try:
        library.rescan()
        _tag_and_star(library, pad)
        pad.unlink()
        library.rescan()
        db = sqlite3.connect(library.paths.catalog)
        with db:
            db.execute("UPDATE missing_files SET missing_since = ?", (time.time() - 100 * 86400,))
        db.close()
        library.rescan()  # any indexing run purges what has been missing for too long
        pad.write_bytes(pad_bytes)
        library.rescan()
        assert _tags_and_star(library, pad) == ([], False)
    finally:
        library.close()

    # And `index --purge-missing` does it as part of a run.
    kick.unlink()
    assert main(["index"]) == 0
    capsys.readouterr()
    assert main(["--json", "index", "--purge-missing"]) == 0
    assert json.loads(capsys.readouterr().out)["purged"] == 1
