"""A failure that passes (a share that drops mid-rescan, a drive unplugged while it is read)
never costs a good row, and is tried again; a file that cannot be decoded is tried again as
soon as it changes in any way, its ctime included.

Root ignores permissions, so "unreadable for one run" is made the way a dropped share makes it:
the folder goes away between the scan and the decoding (every read then fails with ENOENT) and
comes back after the run. Renaming the folder leaves its files' own stamps (ctime included) as
they were, as a share that reconnects does.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from conftest import family_sound, write_sound

from clapdesk.core.library import Library
from clapdesk.core.search.ranking import search_text

FAMILIES = ["kick", "pad", "bass", "hihat"]


def _library_folder(folder: Path, count: int) -> list[Path]:
    return [write_sound(folder / f"{FAMILIES[i % 4]}_{i:02d}.wav", family_sound(FAMILIES[i % 4], i))
            for i in range(count)]


def _drop_share_after_scan(folder: Path, away: Path):  # type: ignore[no-untyped-def]
    """A progress callback that takes the folder away once the scan is done."""
    def progress(p) -> None:  # type: ignore[no-untyped-def]
        if p.phase == "loading model" and folder.exists():
            shutil.move(str(folder), str(away))
    return progress


def test_a_rescan_whose_share_drops_keeps_every_good_row(tmp_path: Path, tiny_model: Path) -> None:
    folder, away = tmp_path / "share" / "samples", tmp_path / "elsewhere"
    files = _library_folder(folder, 20)
    library = Library(model=str(tiny_model))
    try:
        assert library.index_folders([str(folder)]).indexed == 20
        # A sync tool touched every file: the rescan must read them all again...
        for path in files:
            st = path.stat()
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
        # ...and the share drops right after the scan.
        report = library.index_folders([str(folder)], progress=_drop_share_after_scan(folder, away))
        shutil.move(str(away), str(folder))
        assert len(report.failed) == 20, report.failed
        assert {why for _, why in report.failed} == {"file vanished while it was being indexed"}
        assert report.removed == 0
        # Every file is still there and still found.
        assert library.catalog.count_files() == 20
        assert library.catalog.failures() == []
        hits = search_text(library, "a sound", k=50).hits
        assert len(hits) == 20
        # The next rescan reads them again (their stamps were never taken from the failed run).
        again = library.rescan()
        assert (again.indexed, len(again.failed), again.unchanged) == (20, 0, 0)
        assert library.rescan().unchanged == 20
    finally:
        library.close()


def test_new_files_that_failed_for_a_passing_reason_are_retried_unchanged(
        tmp_path: Path, tiny_model: Path) -> None:
    folder, away = tmp_path / "share" / "samples", tmp_path / "elsewhere"
    _library_folder(folder, 6)
    library = Library(model=str(tiny_model))
    try:
        report = library.index_folders([str(folder)], progress=_drop_share_after_scan(folder, away))
        shutil.move(str(away), str(folder))
        assert report.indexed == 0 and len(report.failed) == 6
        assert len(library.catalog.failures()) == 6  # listed with their reason meanwhile
        # Nothing about the files changed, yet the failure passed: they are tried again.
        again = library.rescan()
        assert (again.indexed, len(again.failed), again.unchanged) == (6, 0, 0)
        assert library.catalog.failures() == []
    finally:
        library.close()


def test_a_file_that_cannot_be_decoded_is_retried_when_only_its_ctime_changes(
        tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "samples"
    _library_folder(folder, 2)
    broken = folder / "notes.wav"
    broken.write_bytes(b"these are my notes, not audio " * 50)
    library = Library(model=str(tiny_model))
    try:
        first = library.index_folders([str(folder)])
        assert first.failed == [(str(broken), "not an audio file")]
        # Unchanged: not read again (a content fault stays until the file changes).
        second = library.rescan()
        assert second.decoded == 0 and second.unchanged == 3
        # A change of mode alone moves only the ctime: size and mtime stay as they were.
        before = broken.stat()
        os.chmod(broken, 0o600)
        after = broken.stat()
        assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
        assert after.st_ctime_ns != before.st_ctime_ns
        third = library.rescan()
        assert third.decoded == 1
        assert third.failed == [(str(broken), "not an audio file")]
        # Fixed by its owner (new content): indexed.
        write_sound(broken, family_sound("pad", 9))
        fourth = library.rescan()
        assert fourth.indexed == 1 and fourth.failed == []
    finally:
        library.close()
