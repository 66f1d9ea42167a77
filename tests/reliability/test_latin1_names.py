"""Folder names in Latin-1 (bytes that are not UTF-8, as old sample CDs and Windows copies have
them) index like any other, with readable name tags; a query typed in a terminal that is not
UTF-8 (argv with surrogates) searches instead of crashing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import soundfile as sf
from conftest import family_sound

from clapdesk.cli import main
from clapdesk.core.library import Library
from clapdesk.core.store import user_tags

FOLDERS = [b"caf\xe9 \xe0 \xfc", b"Gr\xfc\xdfe B\xe4sse", b"d\xe9j\xe0 vu \xff\xfe"]


def test_latin1_folder_names_index_with_readable_tags(
        tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = os.fsencode(tmp_path / "samples")
    paths = []
    for n, name in enumerate(FOLDERS):
        folder = os.path.join(root, name)
        os.makedirs(folder)
        for i, fam in enumerate(["kick", "pad"]):
            raw = os.path.join(folder, f"{fam}_{i}.wav".encode())
            sf.write(raw, family_sound(fam, n * 2 + i), 44100)  # bytes: the name as it is
            paths.append(os.fsdecode(raw))
    library = Library(model=str(tiny_model))
    try:
        report = library.index_folders([os.fsdecode(root)])
        assert report.failed == [] and report.indexed == 6
        record = library.catalog.file_by_path(paths[0])
        assert record is not None and record.path == paths[0]  # the path itself round-trips
        shown = user_tags.tags_for_display(library.catalog, [record.id])[record.id]
        assert "café" in shown
        again = library.rescan()
        assert again.unchanged == 6 and again.failed == []
    finally:
        library.close()
    capsys.readouterr()
    query = os.fsdecode(b"caf\xe9 kick")  # as Python hands a Latin-1 terminal's argv over
    assert main(["--json", "search", query, "-k", "3"]) == 0
    assert len(json.loads(capsys.readouterr().out)["results"]) == 3
    assert main(["search", query, "-k", "3"]) == 0
    out = capsys.readouterr().out
    out.encode("utf-8")  # printable: no surrogates reach the terminal
