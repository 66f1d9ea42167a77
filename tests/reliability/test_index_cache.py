"""The hnswlib index is a cache: however it is damaged, clapdesk rebuilds it from the catalog."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from child import run_clapdesk
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.library import Library


def flip_bytes_in_place(index: Path, sidecar: Path) -> None:
    """Bit rot: bytes change but the size and the modification time do not."""
    stat = index.stat()
    data = bytearray(index.read_bytes())
    rng = np.random.default_rng(3)
    for at in rng.integers(len(data) // 4, len(data), 64):
        data[at] ^= 0xFF
    index.write_bytes(bytes(data))
    os.utime(index, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def truncate(index: Path, sidecar: Path) -> None:
    index.write_bytes(index.read_bytes()[:1000])


def delete_index(index: Path, sidecar: Path) -> None:
    index.unlink()


def garbage_sidecar(index: Path, sidecar: Path) -> None:
    sidecar.write_text("{not json")


def other_model(index: Path, sidecar: Path) -> None:
    meta = json.loads(sidecar.read_text())
    meta["model_key"] = "another-model@0000"
    sidecar.write_text(json.dumps(meta))


def stale_sidecar(index: Path, sidecar: Path) -> None:
    """An older sidecar beside a newer index: the state a crash between the two renames leaves."""
    meta = json.loads(sidecar.read_text())
    meta["live"] = meta["live"][:-3]
    meta["seen_row"] = max(0, meta["seen_row"] - 3)
    meta["mtime_ns"] -= 1
    sidecar.write_text(json.dumps(meta))


DAMAGE: dict[str, Callable[[Path, Path], None]] = {
    "bit rot": flip_bytes_in_place, "truncated": truncate, "deleted": delete_index,
    "garbage sidecar": garbage_sidecar, "other model": other_model, "stale sidecar": stale_sidecar,
}


@pytest.fixture
def indexed(tmp_path: Path, tiny_model: Path) -> tuple[Path, Path, Path]:
    samples = tmp_path / "samples"
    for i in range(12):
        family = ["kick", "pad", "bass"][i % 3]
        write_sound(samples / f"{family}_{i}.wav", family_sound(family, i))
    library = tmp_path / "library"
    assert main(["--library", str(library), "--model", str(tiny_model), "index", str(samples)]) == 0
    (index,) = (library / "index").glob("*.hnsw")
    return library, index, index.with_suffix(".json")


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index_is_rebuilt_from_the_catalog(damage: str, indexed: tuple[Path, Path, Path],
                                                   tiny_model: Path) -> None:
    library, index, sidecar = indexed
    DAMAGE[damage](index, sidecar)
    if damage == "bit rot":
        # hnswlib may crash on damaged links rather than refuse them: only a child can show
        # that clapdesk never hands it such a file.
        code, found, err = run_clapdesk(library, tiny_model, "search", "kick", "-k", "12")
        assert code == 0, err
        assert len(found["results"]) == 12
    opened = Library(library, model=str(tiny_model))
    try:
        vectors_index = opened.vector_index()
        ids, vectors = opened.catalog.vectors(opened.model_key)
        assert len(vectors_index) == len(ids) == 12
        for file_id, vector in zip(ids, vectors):
            assert vectors_index.query(vector, 1)[0][0] == file_id
    finally:
        opened.close()
    # Saved again, whole: the next open loads it without rebuilding.
    meta = json.loads(sidecar.read_text())
    assert meta["bytes"] == index.stat().st_size and meta["mtime_ns"] == index.stat().st_mtime_ns
