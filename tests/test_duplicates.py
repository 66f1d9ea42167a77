"""Identical files by hash and near-duplicates by vector."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from conftest import family_sound, write_sound

from clapdesk.core.library import Library
from clapdesk.core.search.duplicates import (
    count_identical,
    identical_groups,
    is_duplicate,
    near_groups,
)


def test_identical_files_are_grouped(tiny_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    write_sound(folder / "a" / "kick.wav", family_sound("kick", 1))
    write_sound(folder / "b" / "pad.wav", family_sound("pad", 2))
    shutil.copy(folder / "a" / "kick.wav", folder / "b" / "Kick Copy.wav")
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])
    groups = identical_groups(library.catalog)
    assert len(groups) == 1 and groups[0].kind == "identical"
    assert [Path(p).name for p in groups[0].paths] == ["kick.wav", "Kick Copy.wav"]
    assert count_identical(library.catalog) == 2
    assert is_duplicate(library, str(folder / "a" / "kick.wav"))
    assert not is_duplicate(library, str(folder / "b" / "pad.wav"))
    library.close()


def test_near_duplicates_come_from_nearly_parallel_vectors(tiny_model: Path, tmp_path: Path) -> None:
    """Vectors are written straight into a real catalog so the grouping is tested exactly."""
    library = Library(model=str(tiny_model))
    catalog = library.catalog
    root = catalog.add_root(tmp_path)
    rng = np.random.default_rng(0)
    base = rng.standard_normal((4, 16)).astype(np.float32)
    vectors = {
        "kick.wav": base[0], "kick bounced.wav": base[0] + 0.01 * rng.standard_normal(16),
        "snare.wav": base[1], "pad.wav": base[2], "bass.wav": base[3],
    }
    with catalog.transaction():
        for i, (name, vector) in enumerate(vectors.items()):
            file_id = catalog.upsert_file(str(tmp_path / name), root, 10, 1, f"hash{i}", error=None)
            catalog.put_vector(file_id, library.model_key, vector / np.linalg.norm(vector))
    groups = near_groups(library)
    assert len(groups) == 1 and groups[0].kind == "near"
    assert sorted(Path(p).name for p in groups[0].paths) == ["kick bounced.wav", "kick.wav"]
    assert groups[0].similarity > 0.985
    library.close()


def test_duplicates_verb(tiny_model: Path, tmp_path: Path, capsys) -> None:
    import json

    from clapdesk.cli import main

    folder = tmp_path / "samples"
    write_sound(folder / "kick.wav", family_sound("kick", 1))
    shutil.copy(folder / "kick.wav", folder / "kick 2.wav")
    assert main(["--model", str(tiny_model), "index", str(folder)]) == 0
    capsys.readouterr()
    assert main(["--json", "duplicates"]) == 0
    groups = json.loads(capsys.readouterr().out)["groups"]
    assert groups == [{"kind": "identical", "similarity": 1.0,
                       "paths": [str(folder / "kick 2.wav"), str(folder / "kick.wav")]}]
