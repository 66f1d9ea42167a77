"""A library on a read-only file system can be searched and checked; indexing says plainly that
it is read-only. Root ignores permissions, so the library is put on a real read-only file
system: a tmpfs mounted for the test and remounted read-only. Without root (no mount), the
library's folder and files lose their write permission instead, which a normal user obeys."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.library import Library


@pytest.fixture
def library_dir(tmp_path: Path) -> Iterator[tuple[Path, object]]:
    folder = tmp_path / "ro-library"
    folder.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)],
        capture_output=True).returncode == 0
    if os.geteuid() == 0 and not mounted:
        pytest.skip("root without permission to mount: no way to make a read-only library here")

    def make_read_only() -> None:
        if mounted:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        else:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield folder, make_read_only
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)
        else:
            for path in [folder, *folder.rglob("*")]:
                path.chmod(path.stat().st_mode | stat.S_IWUSR)


def test_a_read_only_library_searches_and_refuses_to_index_plainly(
        tmp_path: Path, tiny_model: Path, library_dir, capsys: pytest.CaptureFixture[str]
        ) -> None:  # type: ignore[no-untyped-def]
    folder, make_read_only = library_dir
    samples = tmp_path / "samples"
    for i, fam in enumerate(["kick", "pad", "bass"]):
        write_sound(samples / f"{fam}_{i}.wav", family_sound(fam, i))
    library = Library(folder, model=str(tiny_model))
    try:
        assert library.index_folders([str(samples)]).indexed == 3
    finally:
        library.close()
    before = sorted(p.name for p in folder.iterdir())
    make_read_only()
    capsys.readouterr()

    assert main(["--library", str(folder), "--json", "search", "kick", "-k", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    assert main(["--library", str(folder), "--json", "doctor"]) == 0
    assert json.loads(capsys.readouterr().out)["files"] == 3
    assert main(["--library", str(folder), "failures"]) == 0
    capsys.readouterr()
    assert main(["--library", str(folder), "index"]) == 1
    err = capsys.readouterr().err
    assert "the library is read-only" in err and "readonly database" not in err
    assert sorted(p.name for p in folder.iterdir()) == before
