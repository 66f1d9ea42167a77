"""The main window over a real library: indexing, searching, dragging, cancelling, failures."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from conftest import family_sound, index_folder, write_sound
from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, QUrl

from clapdesk.core.store.catalog import Catalog
from clapdesk.gui.model_control import READY, UNAVAILABLE
from clapdesk.gui.results_model import NAME, URI_LIST

FAMILIES = ("kick", "hihat", "pad", "bass")
MAX_UI_GAP_S = 0.100


def make_sounds(folder: Path, count: int, broken: bool = False) -> list[Path]:
    paths = [write_sound(folder / f"{FAMILIES[i % 4]}_{i:03d}.wav", family_sound(FAMILIES[i % 4], i))
             for i in range(count)]
    if broken:
        (folder / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    return paths


class GapMeter:
    """A 10 ms QTimer on the GUI thread; the largest gap between ticks is how long it was blocked."""

    def __init__(self) -> None:
        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.last = 0.0
        self.largest = 0.0

    def start(self) -> None:
        self.last = time.perf_counter()
        self.timer.start()

    def _tick(self) -> None:
        now = time.perf_counter()
        self.largest = max(self.largest, now - self.last)
        self.last = now

    def stop(self) -> float:
        self.timer.stop()
        return self.largest


def wait_model_ready(qtbot, window) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: window.model_ctl.state in (READY, UNAVAILABLE), timeout=60000)
    assert window.model_ctl.state == READY, window.model_ctl.message


def test_indexing_from_the_gui_fills_the_table_without_blocking_the_ui(
        qtbot, make_window, tmp_path: Path) -> None:  # noqa: ANN001
    sounds = make_sounds(tmp_path / "samples", 24, broken=True)
    window = make_window()
    wait_model_ready(qtbot, window)  # torch's import is start-up's cost, not indexing's
    seen: list[tuple[int, int]] = []
    window.indexing.progressed.connect(
        lambda p: seen.append((window.progress.bar.value(), window.progress.bar.maximum())))
    meter = GapMeter()
    meter.start()
    with qtbot.waitSignal(window.indexing.finished, timeout=120000) as finished:
        window.indexing.index([str(tmp_path / "samples")])
    largest = meter.stop()
    report = finished.args[0]
    assert report is not None and report.indexed == len(sounds)
    qtbot.waitUntil(lambda: window.model.rowCount() == len(sounds), timeout=10000)
    names = {window.model.hit(r).file.name for r in range(window.model.rowCount())}
    assert names == {p.name for p in sounds}
    # Repaints are throttled (50 ms), so a quick run shows a few steps: they must climb to full.
    steps = [(v, top) for v, top in seen if top > 0]
    assert len(steps) >= 2 and steps[0][0] < steps[-1][0], f"the bar did not move: {seen}"
    assert steps[-1][0] == steps[-1][1], f"the bar did not end full: {seen}"
    assert largest < MAX_UI_GAP_S, f"the UI thread was blocked for {largest * 1000:.0f} ms"
    # The unreadable file is listed with its reason, and the window says so without a traceback.
    qtbot.waitUntil(lambda: window.failures.count() == 1, timeout=5000)
    path, reason = window.failures.rows()[0]
    assert path.endswith("broken.wav") and reason and "Traceback" not in reason
    assert "could not be read" in window.statusBar().currentMessage()


def index_with_core(folder: Path, model: Path, count: int = 16) -> list[Path]:
    sounds = make_sounds(folder, count)
    index_folder(folder, model)
    return sounds


def test_a_search_shows_rows_and_dragging_them_gives_file_urls(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    sounds = index_with_core(tmp_path / "samples", tiny_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == len(sounds), timeout=10000)  # browsable
    wait_model_ready(qtbot, window)
    window.model.set_hits([], scored=False)
    window.search.field.setText("punchy kick")
    window.search.field.textEdited.emit("punchy kick")  # as typed: debounced
    assert window.model.rowCount() == 0
    qtbot.waitUntil(lambda: window.model.rowCount() > 0 and window.model.scored, timeout=10000)
    assert "punchy kick" in window.title.text()
    # The kicks first, best match at the top of the table as shown.
    shown = [window.proxy.index(r, NAME).data() for r in range(window.proxy.rowCount())]
    kicks = sum(1 for p in sounds if p.name.startswith("kick_"))
    assert all(name.startswith("kick_") for name in shown[:kicks]), shown

    # Select two rows and ask the view's model (the proxy) for the drag data, as a drag does.
    selection = window.view.selectionModel()
    flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
    for row in (0, 2):
        selection.select(window.proxy.index(row, NAME), flags)
    chosen = {window.proxy.index(r, NAME).data(Qt.ItemDataRole.UserRole + 2).file.path for r in (0, 2)}
    assert window.view.dragEnabled()
    assert window.proxy.flags(window.proxy.index(0, NAME)) & Qt.ItemFlag.ItemIsDragEnabled
    mime = window.proxy.mimeData(selection.selectedIndexes())
    assert mime.hasFormat(URI_LIST)
    urls = mime.urls()
    assert all(isinstance(u, QUrl) and u.isLocalFile() for u in urls)
    assert {u.toLocalFile() for u in urls} == chosen
    assert all(Path(u.toLocalFile()).is_file() for u in urls)


def test_constraints_show_as_chips_that_can_be_removed(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_with_core(tmp_path / "samples", tiny_model, count=8)
    window = make_window()
    wait_model_ready(qtbot, window)
    window.search.set_text("dark pad loop at 120 bpm")
    assert window.search.chip_labels() == ["120 BPM", "loop"]
    qtbot.waitUntil(lambda: "results for" in window.title.text(), timeout=10000)
    assert window.model.rowCount() == 0  # no generated sound is a 120 BPM loop
    chip = next(c for c in window.search.parsed.constraints() if c.kind == "bpm")
    window.search.remove_chip(chip)
    window.search.remove_chip(window.search.parsed.constraints()[0])
    assert window.search.chip_labels() == []
    qtbot.waitUntil(lambda: window.model.rowCount() == 8, timeout=10000)


def test_cancelling_indexing_stops_it_and_leaves_a_consistent_library(
        qtbot, make_window, tmp_path: Path) -> None:  # noqa: ANN001
    sounds = make_sounds(tmp_path / "samples", 60)
    window = make_window()
    wait_model_ready(qtbot, window)

    def cancel_once_embedding(progress) -> None:  # noqa: ANN001
        if progress.phase == "embedding" and progress.done >= 3:
            window.on_cancel_indexing()

    window.indexing.progressed.connect(cancel_once_embedding)
    with qtbot.waitSignal(window.indexing.finished, timeout=120000) as finished:
        window.indexing.index([str(tmp_path / "samples")])
    report = finished.args[0]
    assert report is not None and report.cancelled
    assert 0 < report.indexed < len(sounds)
    qtbot.waitUntil(lambda: not window.runner.busy, timeout=10000)
    assert "cancelled" in window.statusBar().currentMessage().lower()
    catalog = Catalog(window.library.paths.catalog)
    try:
        assert catalog.integrity_ok()
        live = catalog.live_files()
        with_vectors = catalog.vector_file_ids(window.library.model_key)
        assert len(with_vectors) == report.indexed and with_vectors <= {f.id for f in live}
        # The rest were catalogued from their names and headers before the model heard them
        # (searchable by name meanwhile): rows with no features, which the next run embeds.
        waiting = [f for f in live if f.id not in with_vectors]
        assert len(live) <= len(sounds)
        ids = [f.id for f in waiting]
        assert not ids or catalog.features(window.library.identity.encoder_key, ids)[0].size == 0
    finally:
        catalog.close()
    qtbot.waitUntil(lambda: window.model.rowCount() == len(live), timeout=10000)

    # Indexing again finishes the job: every file heard, none twice.
    window.indexing.progressed.disconnect(cancel_once_embedding)
    with qtbot.waitSignal(window.indexing.finished, timeout=120000) as finished:
        window.indexing.index([str(tmp_path / "samples")])
    again = finished.args[0]
    assert again is not None and not again.cancelled
    assert again.indexed == len(sounds) - report.indexed
    catalog = Catalog(window.library.paths.catalog)
    try:
        assert len(catalog.vector_file_ids(window.library.model_key)) == len(sounds)
    finally:
        catalog.close()


def test_an_unavailable_model_is_a_plain_message_and_browsing_still_works(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    sounds = index_with_core(tmp_path / "samples", tiny_model, count=6)
    window = make_window(model="clapdesk-test/never-downloaded")
    qtbot.waitUntil(lambda: window.model_ctl.state == UNAVAILABLE, timeout=20000)
    message = window.statusBar().currentMessage()
    assert "is not on this computer" in message
    assert "Traceback" not in message and "Error" not in message.split(":")[0]
    assert "Model unavailable" in window.model_label.text()
    qtbot.waitUntil(lambda: window.model.rowCount() == len(sounds), timeout=10000)
    window.search.set_text("kick")  # waits for the model instead of failing
    assert "needs the model, which is unavailable" in window.title.text()
    assert window.model.rowCount() == len(sounds)
    with qtbot.waitSignal(window.indexing.failed, timeout=20000) as failed:
        window.indexing.index([str(tmp_path / "samples")])
    assert failed.args[0].startswith("Indexing needs the model: ")
    assert "Traceback" not in failed.args[0]


def test_first_run_offers_the_download_with_its_size_and_a_model_folder(
        qtbot, make_window, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # as on a connected first run
    window = make_window(model="laion/larger_clap_music")
    qtbot.waitUntil(lambda: getattr(window, "download_dialog", None) is not None, timeout=20000)
    dialog = window.download_dialog
    text = " ".join(label.text() for label in dialog.findChildren(type(window.title)))
    assert "laion/larger_clap_music" in text and "776 MB" in text
    assert dialog.folder_button.text() == "Use a model folder instead…"
    dialog.done(0)
    window.model_ctl.use_folder(str(tiny_model))  # what the folder button does once chosen
    qtbot.waitUntil(lambda: window.model_ctl.state == READY, timeout=60000)


def test_arrowing_auto_plays_only_where_the_selection_rests(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_with_core(tmp_path / "samples", tiny_model, count=8)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == 8, timeout=10000)
    window.view.setFocus()
    window.view.setCurrentIndex(window.proxy.index(0, NAME))
    played: list[str | None] = []
    original_play = window.player.play
    window.player.play = lambda path, start=0.0: (played.append(os.fspath(path)),
                                                  original_play(path, start))
    for _ in range(3):  # three quick presses: faster than the auto-play delay
        qtbot.keyClick(window.view, Qt.Key.Key_Down)
    assert played == []
    qtbot.waitUntil(lambda: len(played) == 1, timeout=2000)
    assert played[0] == window.current_hit().file.path
    assert window.current_hit().file.path == window.proxy.index(3, NAME).data(
        Qt.ItemDataRole.UserRole + 2).file.path
    qtbot.keyClick(window.view, Qt.Key.Key_Escape)
    assert not window.player.is_playing

    # A click plays at once, without the auto-play delay.
    target = window.proxy.index(5, NAME)
    at = window.view.visualRect(target).center()
    qtbot.mouseClick(window.view.viewport(), Qt.MouseButton.LeftButton, pos=at)
    assert played[-1] == target.data(Qt.ItemDataRole.UserRole + 2).file.path
    assert len(played) == 2


def test_new_files_in_a_library_folder_are_picked_up_without_a_rescan(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    folder = tmp_path / "samples"
    index_with_core(folder, tiny_model, count=4)
    window = make_window(start=False)
    window.indexing.watching = True
    window.indexing.watch_timer.setInterval(200)
    window.start()
    qtbot.waitUntil(lambda: len(window.indexing.watcher.directories()) == 1, timeout=10000)
    wait_model_ready(qtbot, window)
    write_sound(folder / "new_kick.wav", family_sound("kick", 99))
    with qtbot.waitSignal(window.indexing.finished, timeout=60000) as finished:
        pass
    assert finished.args[0].indexed == 1 and finished.args[0].unchanged == 4
    qtbot.waitUntil(lambda: window.model.rowCount() == 5, timeout=10000)


def test_the_window_remembers_its_size_and_splitters(qtbot, make_window) -> None:  # noqa: ANN001
    window = make_window(start=False)
    window.resize(720, 520)  # the offscreen screen is 800x600
    window.side_split.setSizes([200, 520])
    sizes = window.side_split.sizes()
    window.close()
    again = make_window(start=False)
    assert (again.width(), again.height()) == (720, 520)
    assert again.side_split.sizes() == sizes


def test_favourites_history_and_keys_of_the_search_field(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_with_core(tmp_path / "samples", tiny_model, count=6)
    window = make_window()
    wait_model_ready(qtbot, window)
    qtbot.waitUntil(lambda: window.model.rowCount() == 6, timeout=10000)

    # A favourite becomes a place of its own.
    window.view.setCurrentIndex(window.proxy.index(2, NAME))
    chosen = window.current_hit().file.path
    window.on_favourite()
    qtbot.waitUntil(lambda: window.side.favourites.text(0) == "Favourites (1)", timeout=5000)
    window._place("favourites", "")
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=5000)
    assert window.model.hit(0).file.path == chosen

    # Enter remembers the query: side panel history and the field's completer.
    window._place("all", "")
    window.search.field.setFocus()
    qtbot.keyClicks(window.search.field, "warm pad")
    qtbot.keyClick(window.search.field, Qt.Key.Key_Return)
    assert window.search.history_model.stringList()[0] == "warm pad"
    assert window.side.history.child(0).text(0) == "warm pad"
    assert window.library.catalog.recent("query")[0] == "warm pad"

    # Space types a space in the field; Down moves into the results.
    qtbot.keyClick(window.search.field, Qt.Key.Key_Space)
    assert window.search.text() == "warm pad "
    qtbot.waitUntil(lambda: window.model.rowCount() == 6 and window.model.scored, timeout=10000)
    qtbot.keyClick(window.search.field, Qt.Key.Key_Down)
    assert window.view.hasFocus() and window.view.currentIndex().isValid()


def test_find_similar_and_copy_path_from_a_row(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QApplication

    index_with_core(tmp_path / "samples", tiny_model, count=8)
    window = make_window()
    wait_model_ready(qtbot, window)
    qtbot.waitUntil(lambda: window.model.rowCount() == 8, timeout=10000)
    window.view.setCurrentIndex(window.proxy.index(4, NAME))
    source = window.current_hit().file
    window.on_copy_path()
    assert QApplication.clipboard().text() == source.path
    window.on_similar()
    qtbot.waitUntil(lambda: "Sounds like" in window.title.text(), timeout=10000)
    assert f"Sounds like {Path(source.name).stem}" in window.title.text()
    paths = [window.model.hit(r).file.path for r in range(window.model.rowCount())]
    assert len(paths) == 7 and source.path not in paths
    scores = [window.model.hit(r).score for r in range(window.model.rowCount())]
    assert scores == sorted(scores, reverse=True) and window.model.scored


def test_removing_a_library_folder_forgets_its_sounds_but_not_the_files(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    kept = index_with_core(tmp_path / "kept", tiny_model, count=3)
    gone = index_with_core(tmp_path / "gone", tiny_model, count=4)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == 7, timeout=10000)
    qtbot.waitUntil(lambda: len(window.side.folder_paths()) == 2, timeout=10000)
    with qtbot.waitSignal(window.indexing.removed, timeout=20000) as removed:
        window.indexing.remove(str(tmp_path / "gone"))
    assert removed.args == [4]
    qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=10000)
    assert {window.model.hit(r).file.name for r in range(3)} == {p.name for p in kept}
    qtbot.waitUntil(lambda: window.side.folder_paths() == [str(tmp_path / "kept")], timeout=10000)
    assert all(p.exists() for p in gone)


def test_duplicates_are_a_place_that_shows_copies_side_by_side(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    from clapdesk.gui.panels import PLACE_ROLE

    sounds = index_with_core(tmp_path / "samples", tiny_model, count=6)
    copy = tmp_path / "samples" / "zz copy of the first.wav"
    shutil.copy(sounds[0], copy)
    index_with_core(tmp_path / "samples", tiny_model, count=6)  # picks the copy up
    window = make_window()
    qtbot.waitUntil(lambda: window.side.duplicates.text(0) == "Duplicates (2)", timeout=10000)
    item = window.side.duplicates
    assert item.data(0, PLACE_ROLE)[0] == "duplicates"
    window.side.tree.itemClicked.emit(item, 0)
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=10000)
    shown = sorted(Path(window.proxy.index(r, NAME).data(Qt.ItemDataRole.UserRole + 2).file.path)
                   for r in range(2))
    assert shown == sorted([sounds[0], copy])
