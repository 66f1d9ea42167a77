"""Files that cannot be seen right now are not deleted: a library folder found empty (a drive
not mounted on its mount point) or missing (unplugged) keeps its files until it comes back."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import family_sound, write_sound

from clapdesk.core.library import Library


def test_empty_or_missing_library_folder_keeps_its_files(tmp_path: Path, tiny_model: Path) -> None:
    mount_point = tmp_path / "mnt" / "samples"
    for i, family in enumerate(["kick", "pad", "bass", "hihat"]):
        write_sound(mount_point / family / f"{family}_{i}.wav", family_sound(family, i))
    away = tmp_path / "drive-contents"
    library = Library(model=str(tiny_model))
    try:
        assert library.index_folders([str(mount_point)]).indexed == 4

        # The drive is unmounted: the mount point is still there, empty.
        shutil.move(str(mount_point), str(away))
        mount_point.mkdir()
        report = library.index_folders([str(mount_point)])
        assert report.offline_roots == [str(mount_point)]
        assert (report.removed, report.indexed, report.unchanged) == (0, 0, 4)
        assert library.catalog.count_files() == 4

        # Unplugged altogether: no mount point either.
        mount_point.rmdir()
        report = library.rescan()
        assert report.offline_roots == [str(mount_point)] and report.removed == 0
        assert library.catalog.count_files() == 4

        # Back again: nothing is embedded anew.
        mount_point.parent.mkdir(exist_ok=True)
        shutil.move(str(away), str(mount_point))
        report = library.rescan()
        assert (report.removed, report.indexed, report.unchanged) == (0, 0, 4)

        # A folder that really lost some of its files loses their rows.
        (mount_point / "kick" / "kick_0.wav").unlink()
        report = library.rescan()
        assert report.removed == 1 and library.catalog.count_files() == 3

        # And removing the folder from the library is how it is dropped on purpose.
        assert library.remove_folder(str(mount_point)) == 3
        assert library.catalog.count_files() == 0
    finally:
        library.close()
