"""Correcting a sound's tempo and key in the window: the dialog, the cells, the edited mark."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from conftest import write_sound
from loopfactory import render, spec_for
from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QAbstractItemView, QApplication, QDialogButtonBox, QLineEdit

from clapdesk.core.library import Library
from clapdesk.core.store import user_tempo
from clapdesk.gui.results_model import BPM, EDITED_MARK, KEY


def index_loops(folder: Path, model: Path) -> list[Path]:
    paths = []
    for name, bpm, seed in (("groove_take.wav", 100.0, 3), ("DrumLoop_94bpm_Cmin.wav", 94.0, 4)):
        spec = replace(spec_for(seed), genre="rock", bpm=bpm, bars=2, hats="eighths", swing=0.5,
                       extras=(), rate=44100)
        paths.append(write_sound(folder / name, render(spec), 44100))
    library = Library(model=str(model), allow_download=False)
    try:
        library.index_folders([str(folder)])
    finally:
        library.close()
    return paths


def cell(window, path: Path, column: int, role: int = Qt.ItemDataRole.DisplayRole) -> object:  # noqa: ANN001
    return window.model.index(window.model.row_of(str(path)), column).data(role)


def test_the_dialog_saves_a_tempo_and_key_that_show_as_edited(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    groove, named = index_loops(tmp_path / "samples", tiny_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=10000)
    assert cell(window, named, BPM) == "94" and cell(window, named, KEY) == "C minor"
    assert not cell(window, named, BPM, Qt.ItemDataRole.FontRole)
    assert "from the file name" in cell(window, named, BPM, Qt.ItemDataRole.ToolTipRole)
    assert "Ctrl+K" in window.actions_by_name["edit_tempo"].toolTip()

    window.view.select_paths([str(groove)])
    window.actions_by_name["edit_tempo"].trigger()
    dialog = window.tempo_dialog
    qtbot.waitExposed(dialog)
    ok = dialog.buttons.button(QDialogButtonBox.StandardButton.Ok)
    assert "from the audio" in dialog.bpm_now.text()
    assert not dialog.bpm_reset.isEnabled()  # nothing of the producer's to clear yet

    QTest.keyClicks(dialog.bpm, "500")
    assert not ok.isEnabled() and "outside 40-300 BPM" in dialog.bpm_error.text()
    dialog.bpm.clear()
    QTest.keyClicks(dialog.bpm, "140")
    dialog.key.lineEdit().setFocus()
    QTest.keyClicks(dialog.key.lineEdit(), "Q")
    assert not ok.isEnabled() and "not a key" in dialog.key_error.text()
    dialog.key.setCurrentText("")
    QTest.keyClicks(dialog.key.lineEdit(), "Am")
    assert ok.isEnabled() and not dialog.key_error.isVisible()
    said: list[str] = []
    window.statusBar().messageChanged.connect(said.append)  # other notices may follow it
    ok.click()

    assert cell(window, groove, BPM) == "140" + EDITED_MARK
    assert cell(window, groove, KEY) == "A minor" + EDITED_MARK
    assert cell(window, groove, BPM, Qt.ItemDataRole.FontRole).italic()
    assert "Your tempo (analysis: 10" in cell(window, groove, BPM, Qt.ItemDataRole.ToolTipRole)
    record = window.library.catalog.file_by_path(groove)
    assert record is not None and (record.bpm, record.key, record.bpm_source) == (140.0, "A minor", "user")
    assert "Tempo and key saved for 1 sound" in said

    # Back to the analysis from the dialog.
    window.actions_by_name["edit_tempo"].trigger()
    dialog = window.tempo_dialog
    qtbot.waitExposed(dialog)
    assert dialog.bpm.text() == "140" and dialog.key.currentText() == "A minor"
    assert "analysis: 10" in dialog.bpm_now.text()
    dialog.bpm_reset.click()
    dialog.key_reset.click()
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    assert EDITED_MARK not in cell(window, groove, BPM)
    assert user_tempo.corrections(window.library.catalog, [record.id]) == {}


def test_typing_into_the_key_cell_corrects_it_and_emptying_it_goes_back(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    _, named = index_loops(tmp_path / "samples", tiny_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=10000)
    index = window.proxy.mapFromSource(window.model.index(window.model.row_of(str(named)), KEY))

    def type_into_cell(text: str) -> None:
        window.view.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        window.view.setFocus()
        QTest.keyClick(window.view, Qt.Key.Key_F2)
        editor = QApplication.focusWidget()
        assert isinstance(editor, QLineEdit), "F2 opens an editor in the cell"
        editor.selectAll()
        QTest.keyClick(editor, Qt.Key.Key_Backspace)
        QTest.keyClicks(editor, text)
        QTest.keyClick(editor, Qt.Key.Key_Return)
        # The delegate commits a Return on the next turn of the event loop.
        qtbot.waitUntil(lambda: window.view.state() != QAbstractItemView.State.EditingState,
                        timeout=5000)

    type_into_cell("f# min")
    assert cell(window, named, KEY) == "F# minor" + EDITED_MARK
    assert cell(window, named, BPM) == "94"  # the tempo stays the file name's
    said: list[str] = []
    window.statusBar().messageChanged.connect(said.append)  # other notices may follow it
    type_into_cell("blue")
    assert any("'blue' is not a key" in message for message in said)
    assert cell(window, named, KEY) == "F# minor" + EDITED_MARK  # nothing lost
    type_into_cell("")
    assert cell(window, named, KEY) == "C minor"  # the file name's again
    assert not cell(window, named, KEY, Qt.ItemDataRole.FontRole)


def test_a_key_for_several_rows_leaves_each_ones_tempo(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    groove, named = index_loops(tmp_path / "samples", tiny_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=10000)
    tempos = {p: cell(window, p, BPM) for p in (groove, named)}
    window.view.select_paths([str(groove), str(named)])
    window.actions_by_name["edit_tempo"].trigger()
    dialog = window.tempo_dialog
    qtbot.waitExposed(dialog)
    assert dialog.bpm.text() == "" and "as analysed" in dialog.bpm_now.text()
    dialog.key.setCurrentText("Dm")
    dialog.buttons.button(QDialogButtonBox.StandardButton.Ok).click()
    for path in (groove, named):
        assert cell(window, path, KEY) == "D minor" + EDITED_MARK
        assert cell(window, path, BPM) == tempos[path]  # each keeps its own tempo
