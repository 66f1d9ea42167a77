"""The first hour with the keyboard: Down plays the best match, history offers and never
captures, Tab leaves the table, focus is visible, Find similar shows its own results."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import family_sound, index_folder, write_sound
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication

from clapdesk.gui.model_control import READY, UNAVAILABLE
from clapdesk.gui.results_model import NAME, OBJECT_ROLE

FAMILIES = ("kick", "hihat", "pad", "bass")


def index_sounds(folder: Path, model: Path, count: int) -> list[Path]:
    sounds = [write_sound(folder / f"{FAMILIES[i % 4]}_{i:03d}.wav",
                          family_sound(FAMILIES[i % 4], i)) for i in range(count)]
    index_folder(folder, model)
    return sounds


def ready_window(qtbot, make_window, rows: int):  # noqa: ANN001, ANN201
    window = make_window()
    qtbot.waitUntil(lambda: window.model_ctl.state in (READY, UNAVAILABLE), timeout=60000)
    assert window.model_ctl.state == READY, window.model_ctl.message
    qtbot.waitUntil(lambda: window.model.rowCount() == rows, timeout=10000)
    return window


def record_plays(window) -> list[str]:  # noqa: ANN001
    played: list[str] = []
    original = window.player.play
    window.player.play = lambda path, start=0.0: (played.append(os.fspath(path)),
                                                  original(path, start))
    return played


def searched(qtbot, window, text: str) -> str:  # noqa: ANN001
    """Search as typed and return the best match's path (the first row shown)."""
    window.search.field.setFocus()
    window.search.set_text(text)
    qtbot.waitUntil(lambda: window.model.scored and text in window.title.text(), timeout=10000)
    return window.proxy.index(0, NAME).data(OBJECT_ROLE).file.path


def test_down_from_the_search_field_selects_and_plays_the_best_match(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_sounds(tmp_path / "samples", tiny_model, 8)
    window = ready_window(qtbot, make_window, 8)
    played = record_plays(window)
    best = searched(qtbot, window, "punchy kick")
    qtbot.keyClick(window.search.field, Qt.Key.Key_Down)
    assert window.view.hasFocus()
    assert window.view.currentIndex().row() == 0
    assert [i.row() for i in window.view.selectionModel().selectedRows()] == [0]
    qtbot.waitUntil(lambda: bool(played), timeout=3000)
    assert played == [best], "the first result is the one heard"

    # Back to the field (the best match is still current) and Down again: row 0 plays again.
    window.on_find()
    qtbot.keyClick(window.search.field, Qt.Key.Key_Down)
    assert window.view.currentIndex().row() == 0
    qtbot.waitUntil(lambda: len(played) == 2, timeout=3000)
    assert played == [best, best]


def test_history_offers_on_demand_and_never_captures_the_keyboard(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_sounds(tmp_path / "samples", tiny_model, 6)
    window = ready_window(qtbot, make_window, 6)
    window.library.catalog.record_history("query", "kick drum")
    window.refresh_overview()
    qtbot.waitUntil(lambda: window.search.history_model.stringList() == ["kick drum"],
                    timeout=5000)
    played = record_plays(window)

    # Typing a word of a remembered query offers nothing by itself...
    window.search.field.setFocus()
    qtbot.keyClicks(window.search.field, "kick")
    qtbot.waitUntil(lambda: window.model.scored and "kick" in window.title.text(), timeout=10000)
    popups = [w for w in QApplication.topLevelWidgets() if w.isVisible() and w is not window]
    assert not popups, "a history popup opened while typing"
    # ...and Down goes to the first result, not to the history entry.
    best = window.proxy.index(0, NAME).data(OBJECT_ROLE).file.path
    qtbot.keyClick(window.search.field, Qt.Key.Key_Down)
    assert window.search.text() == "kick"
    assert window.view.hasFocus() and window.view.currentIndex().row() == 0
    qtbot.waitUntil(lambda: played == [best], timeout=3000)
    assert not window.search.history.isVisible()

    # Alt+Down opens it on demand, on an empty field too, with every remembered query.
    window.search.field.setFocus()
    window.search.field.clear()
    qtbot.keyClick(window.search.field, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    assert window.search.history.isVisible()
    assert window.search.history_filter.index(0, 0).data() == "kick drum"
    # It sits in the layout, above the results, never over the table's header.
    header = window.view.horizontalHeader()
    history_bottom = window.search.history.mapTo(window, window.search.history.rect().bottomLeft())
    header_top = header.mapTo(window, header.rect().topLeft())
    assert history_bottom.y() < header_top.y()

    # Esc closes it and is not taken by the Stop shortcut while it is open.
    stops: list[bool] = []
    window.actions_by_name["stop"].triggered.connect(lambda *_: stops.append(True))
    window.player.play(best)
    qtbot.keyClick(window.search.history, Qt.Key.Key_Escape)
    assert not window.search.history.isVisible()
    assert stops == []
    # With it closed, Esc is Stop again.
    qtbot.keyClick(window.search.field, Qt.Key.Key_Escape)
    assert stops == [True]

    # Choosing an entry searches for it.
    qtbot.keyClick(window.search.field, Qt.Key.Key_Down, Qt.KeyboardModifier.AltModifier)
    qtbot.keyClick(window.search.history, Qt.Key.Key_Return)
    assert window.search.text() == "kick drum" and not window.search.history.isVisible()


@pytest.fixture
def themed(qapp):  # noqa: ANN001, ANN201
    """The app's own style and style sheet, as a producer sees them; undone afterwards."""
    from clapdesk.gui.theme import apply_dark_theme

    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    apply_dark_theme(qapp)
    yield qapp
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


def test_tab_leaves_the_results_and_focus_is_visible(
        qtbot, make_window, themed, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_sounds(tmp_path / "samples", tiny_model, 4)
    window = ready_window(qtbot, make_window, 4)
    window.activateWindow()
    window.view.setFocus()
    window.view.setCurrentIndex(window.proxy.index(0, NAME))
    qtbot.waitUntil(window.view.hasFocus, timeout=2000)
    focused = window.view.grab().toImage()
    qtbot.keyClick(window.view, Qt.Key.Key_Tab)
    assert not window.view.hasFocus(), "Tab is trapped in the results table"
    assert window.view.currentIndex().row() == 0, "Tab moved the row instead of the focus"
    unfocused = window.view.grab().toImage()
    assert focused != unfocused, "a focused table looks the same as an unfocused one"
    # The focus ring is the accent colour around the table's edge.
    edge = {focused.pixelColor(0, y).name() for y in range(5, focused.height() - 5)}
    assert "#f0a030" in edge, edge


def test_find_similar_shows_the_best_matches_and_names_what_it_looks_for(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_sounds(tmp_path / "samples", tiny_model, 40)
    window = ready_window(qtbot, make_window, 40)
    window.resize(900, 420)  # a window where 40 rows do not all fit
    searched(qtbot, window, "dark pad")
    assert window.search.chip_labels() == []
    window.view.setCurrentIndex(window.proxy.index(35, NAME))
    window.view.scrollTo(window.proxy.index(35, NAME))
    assert window.view.verticalScrollBar().value() > 0
    source = window.current_hit().file
    window.on_similar()
    qtbot.waitUntil(lambda: "Sounds like" in window.title.text(), timeout=10000)
    assert window.view.verticalScrollBar().value() == 0, "the best matches are off-screen"
    assert window.view.rowAt(0) == 0
    assert window.search.text() == "", "the old query is still in the field"
    assert window.search.chip_labels() == [f"Sounds like {Path(source.name).stem}"]
    # Removing that chip goes back to browsing.
    window.search.clear_similar()
    qtbot.waitUntil(lambda: not window.model.scored and window.model.rowCount() == 40,
                    timeout=10000)
    assert window.search.chip_labels() == []
