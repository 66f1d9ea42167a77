"""A full disk while indexing or saving: the previous index and catalog stay intact, and the
command says "the disk is full" (exit 1), never a traceback.

As root the library lives on a small tmpfs that the test really fills, so hnswlib, SQLite and
the OS meet a genuine ENOSPC. Where mounting is not allowed, the save is made to fail with
ENOSPC at its fsync (as ext4 and NFS report a late write failure), and the SQLite case, which
cannot be faked honestly, is skipped.
"""

from __future__ import annotations

import errno
import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from child import integrity
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.library import Library
from clapdesk.core.store import vector_index as vector_index_module


class SmallDisk:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.filler = path / "filler"

    def fill(self) -> None:
        """Write until the filesystem refuses: no byte is left."""
        block = b"\0" * 65536
        try:
            # The close is inside too: a write cut short leaves its tail in the file object's
            # buffer, and closing tries that tail again (how often depends on the space left).
            with open(self.filler, "ab") as out:
                while True:
                    out.write(block)
                    out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        for size in (4096, 512, 1):  # the last partial blocks
            try:
                with open(self.filler, "ab") as out:
                    while True:
                        out.write(b"\0" * size)
                        out.flush()
            except OSError:
                continue

    def free(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[SmallDisk | None]:
    """A 16 MB tmpfs when the test may mount one (root), else None."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or os.environ.get("CLAPDESK_TEST_NO_MOUNT"):  # the latter: try the fallback
        yield None
        return
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        yield None
        return
    try:
        yield SmallDisk(mount)
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.blake2b(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def write_batch(folder: Path, start: int, count: int) -> None:
    for i in range(start, start + count):
        write_sound(folder / f"sound_{i:02d}.wav", family_sound(["kick", "pad"][i % 2], i))


def test_disk_full_during_index_save(tmp_path: Path, tiny_model: Path,
                                     small_disk: SmallDisk | None,
                                     monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    library = (small_disk.path if small_disk else tmp_path) / "library"
    samples = tmp_path / "samples"
    write_batch(samples, 0, 8)
    args = ["--library", str(library), "--model", str(tiny_model), "--json"]
    assert main([*args, "index", str(samples)]) == 0
    capsys.readouterr()
    before = fingerprint(library / "index")

    write_batch(samples, 8, 4)
    real_save = vector_index_module.VectorIndex.save

    def fill_then_save(self: vector_index_module.VectorIndex) -> None:
        if small_disk:
            small_disk.fill()  # the catalog has committed; now the disk is full
            return real_save(self)

        def no_space(path: Path) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        with monkeypatch.context() as patch:
            patch.setattr(vector_index_module, "_fsync", no_space)
            return real_save(self)

    monkeypatch.setattr(vector_index_module.VectorIndex, "save", fill_then_save)
    code = main([*args, "index", str(samples)])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines()[-1] == ("clapdesk: the disk is full; the library was left as it was before "
                           "this step")
    assert fingerprint(library / "index") == before, "the previous index must survive intact"
    assert integrity(library / "catalog.sqlite3") == "ok"

    monkeypatch.setattr(vector_index_module.VectorIndex, "save", real_save)
    if small_disk:
        small_disk.free()
    # The catalog kept what was committed before the save; the index catches up from it.
    assert main([*args, "index", str(samples)]) == 0
    capsys.readouterr()
    opened = Library(library, model=str(tiny_model))
    try:
        assert len(opened.vector_index()) == opened.catalog.count_files() == 12
    finally:
        opened.close()


def test_disk_full_for_the_catalog(tmp_path: Path, tiny_model: Path,
                                   small_disk: SmallDisk | None,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    if small_disk is None:
        pytest.skip("needs root and tmpfs: SQLite's own full-disk path cannot be faked honestly")
    library = small_disk.path / "library"
    samples = tmp_path / "samples"
    write_batch(samples, 0, 6)
    args = ["--library", str(library), "--model", str(tiny_model), "--json"]
    assert main([*args, "index", str(samples)]) == 0
    capsys.readouterr()
    index_before = fingerprint(library / "index")

    write_batch(samples, 6, 6)
    small_disk.fill()
    code = main([*args, "index", str(samples)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("clapdesk: the disk is full")
    small_disk.free()
    assert integrity(library / "catalog.sqlite3") == "ok"
    assert fingerprint(library / "index") == index_before
    opened = Library(library, model=str(tiny_model))
    try:
        assert opened.catalog.count_files() in range(6, 13)  # whole batches only
        assert len(opened.vector_index()) == opened.catalog.count_files()
    finally:
        opened.close()
    assert main([*args, "index", str(samples)]) == 0
    capsys.readouterr()
