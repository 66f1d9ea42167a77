"""The results model without a window: Qt's model contract, sorting, drag data, settings."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt

from clapdesk.core.store.catalog import Catalog
from clapdesk.gui import jobs
from clapdesk.gui.results_model import (
    BPM,
    DURATION,
    MATCH,
    NAME,
    OBJECT_ROLE,
    SCORE_ROLE,
    SORT_ROLE,
    URI_LIST,
    ResultsModel,
    ResultsProxy,
)
from clapdesk.gui.settings import Settings


def catalog_with_rows(tmp_path: Path) -> tuple[Path, list[str]]:
    """A real catalog with analysed rows (no model needed), including a non-UTF-8 file name."""
    folder = tmp_path / "pack"
    folder.mkdir()
    names = [b"kick 808.wav", b"snare_loop_92bpm.wav", b"pad \xe9t\xe9.wav", b"zap.aif"]
    paths = []
    for raw in names:
        path = os.path.join(os.fsencode(folder), raw)
        with open(path, "wb") as handle:
            handle.write(b"x")
        paths.append(os.fsdecode(path))
    catalog_path = tmp_path / "catalog.sqlite3"
    catalog = Catalog(catalog_path)
    root = catalog.add_root(folder)
    with catalog.transaction():
        for i, path in enumerate(paths):
            file_id = catalog.upsert_file(path, root, 1, 1, f"h{i}", duration=0.5 + 3 * i,
                                          bpm=[None, 92.0, None, 140.0][i],
                                          musical_key=[None, None, "A minor", None][i],
                                          kind=["one-shot", "loop", "one-shot", "loop"][i])
            catalog.set_tags(file_id, [("drum", 1.0), ("dark", 0.5)], "auto")
            # Indexed rows have a vector; a row without one is a sound not heard yet.
            catalog.put_vector(file_id, "test@0", np.full(4, 0.5, np.float32))
    catalog.close()
    return catalog_path, paths


def test_the_model_passes_qt_model_tester(qtmodeltester, tmp_path: Path) -> None:  # noqa: ANN001
    catalog_path, _ = catalog_with_rows(tmp_path)
    model = ResultsModel()
    hits = jobs.load_place(catalog_path, jobs.ALL)
    for score, hit in zip((0.9, 0.5, 0.7, 0.1), hits):
        hit.score = score
    model.set_hits(hits, scored=True)
    qtmodeltester.check(model)
    model.set_hits([], scored=False)
    qtmodeltester.check(model)


def test_sorting_uses_numbers_and_rows_carry_their_hit(tmp_path: Path) -> None:
    catalog_path, paths = catalog_with_rows(tmp_path)
    model = ResultsModel()
    hits = jobs.load_place(catalog_path, jobs.ALL)
    model.set_hits(hits, scored=False)
    assert model.rowCount() == 4 and model.index(0, MATCH).data() == ""
    proxy = ResultsProxy()
    proxy.setSourceModel(model)
    selection = QItemSelectionModel(proxy)
    zap = next(r for r in range(4) if proxy.index(r, NAME).data() == "zap.aif")
    selection.setCurrentIndex(proxy.index(zap, NAME), QItemSelectionModel.SelectionFlag.Select)
    proxy.sort(DURATION, Qt.SortOrder.DescendingOrder)
    durations = [proxy.index(r, DURATION).data(SORT_ROLE) for r in range(4)]
    assert durations == sorted(durations, reverse=True) and durations[0] == 9.5
    assert proxy.index(0, DURATION).data() == "0:09.5"  # one format for every length
    assert selection.currentIndex().data() == "zap.aif"  # the selection follows its row
    assert selection.currentIndex().row() == 0
    proxy.sort(BPM, Qt.SortOrder.DescendingOrder)
    assert proxy.index(0, BPM).data() == "140"
    assert proxy.index(0, NAME).data(OBJECT_ROLE).file.name == "zap.aif"
    assert "drum" in proxy.index(0, 7).data()


def test_drag_data_has_exact_file_urls_even_for_names_that_are_not_utf8(tmp_path: Path) -> None:
    catalog_path, paths = catalog_with_rows(tmp_path)
    model = ResultsModel()
    model.set_hits(jobs.load_place(catalog_path, jobs.ALL), scored=False)
    rows = range(model.rowCount())
    mime = model.mimeData([model.index(r, NAME) for r in rows] + [model.index(0, DURATION)])
    assert URI_LIST in model.mimeTypes() and mime.hasUrls()
    dropped = [bytes(u.toEncoded()) for u in mime.urls()]
    assert len(dropped) == 4  # one URL per row, however many cells were selected
    from urllib.parse import unquote_to_bytes

    got = sorted(unquote_to_bytes(u[len(b"file://"):]) for u in dropped)
    assert got == sorted(os.fsencode(p) for p in paths)
    assert model.flags(model.index(0, NAME)) & Qt.ItemFlag.ItemIsDragEnabled


def test_settings_round_trip_with_types(tmp_path: Path) -> None:
    settings = Settings()
    assert settings.get("auto_play") is True and settings.get("auto_play_delay_ms") == 120
    settings.set("auto_play", False)
    settings.set("auto_play_delay_ms", 250)
    settings.set("device", "cpu")
    settings.sync()
    again = Settings()
    assert again.get("auto_play") is False
    assert again.get("auto_play_delay_ms") == 250 and again.get("device") == "cpu"
    assert Path(again.path).is_relative_to(Path(os.environ["CLAPDESK_CONFIG"]))
    try:
        again.set("no_such_setting", 1)
    except KeyError:
        pass
    else:
        raise AssertionError("an undeclared setting was accepted")


def test_the_match_column_shows_a_readable_match_never_a_cosine(tmp_path: Path) -> None:
    catalog_path, _ = catalog_with_rows(tmp_path)
    model = ResultsModel()
    hits = jobs.load_place(catalog_path, jobs.ALL)
    for hit, cosine, match in zip(hits, (0.131, 0.052, -0.01, 0.0), (78.4, 41.0, 0.0, None)):
        hit.score = hit.cosine = cosine
        hit.match = match
    model.set_hits(hits, scored=True)
    shown = {model.index(r, MATCH).data(): model.index(r, MATCH).data(SCORE_ROLE)
             for r in range(4)}
    assert shown["78 %"] == pytest.approx(0.784) and shown["41 %"] == pytest.approx(0.41)
    assert shown["0 %"] == 0.0
    assert not any(text and ("0.1" in text or "-0.01" in text) for text in shown)
    header = model.headerData(MATCH, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole)
    assert "typical" in header and "cosine" not in header
