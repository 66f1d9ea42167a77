"""Edit tags… on real rows: the producer's tags are saved, shown first, and a hidden tag goes."""

from __future__ import annotations

from pathlib import Path

from conftest import family_sound, write_sound
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from clapdesk.core.library import Library
from clapdesk.core.store.user_tags import other_tags, set_user_tags, tags_for_display, user_tags
from clapdesk.gui.actions import COMMANDS
from clapdesk.gui.results_model import TAGS


def index_sounds(folder: Path, model: Path) -> list[Path]:
    sounds = [write_sound(folder / f"{family}_{i}.wav", family_sound(family, i))
              for i, family in enumerate(("kick", "pad", "bass"))]
    library = Library(model=str(model), allow_download=False)
    try:
        library.index_folders([str(folder)])
        other = library.catalog.file_by_path(sounds[2])
        assert other is not None
        set_user_tags(library.catalog, [other.id], ["dusty"])  # something to complete from
    finally:
        library.close()
    return sounds


def tags_cell(window, path: Path) -> str:  # noqa: ANN001
    row = window.model.row_of(str(path))
    return window.model.index(row, TAGS).data()


def test_edit_tags_saves_user_tags_first_and_hides_an_unchecked_one(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    sounds = index_sounds(tmp_path / "samples", tiny_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == len(sounds), timeout=10000)
    assert tags_cell(window, sounds[0]).startswith("kick")  # the file-name tag
    window.view.select_paths([str(sounds[0])])
    assert "edit_tags" in window.actions_by_name
    assert "Ctrl+T" in window.actions_by_name["edit_tags"].toolTip()

    window.actions_by_name["edit_tags"].trigger()
    dialog = window.tag_dialog
    qtbot.waitExposed(dialog)
    assert dialog.mine.text() == ""
    found = [dialog.found.item(r).text() for r in range(dialog.found.count())]
    assert "kick" in found

    # Typing completes from the library's tags; choosing one leaves room for the next.
    dialog.mine.setFocus()
    QTest.keyClicks(dialog.mine, "du")
    assert dialog.completer.currentCompletion() == "dusty"
    dialog.completer.activated.emit("dusty")
    assert dialog.mine.text() == "dusty,"
    QTest.keyClicks(dialog.mine, " Big  Room Kick ,")
    dialog.found.item(found.index("kick")).setCheckState(Qt.CheckState.Unchecked)
    dialog.accept()

    catalog = window.library.catalog
    record = catalog.file_by_path(sounds[0])
    assert record is not None
    assert user_tags(catalog, [record.id])[record.id] == ["dusty", "big room kick"]
    assert ("kick", True) in other_tags(catalog, [record.id])[record.id]
    shown = tags_cell(window, sounds[0])
    assert shown.startswith("dusty, big room kick")
    assert "kick" not in shown.split(", ")
    assert shown.split(", ") == tags_for_display(catalog, [record.id])[record.id][:6]
    # The other rows are untouched.
    assert tags_cell(window, sounds[1]).startswith("pad")


def test_editing_several_rows_keeps_each_ones_other_tags(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    sounds = index_sounds(tmp_path / "samples", tiny_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == len(sounds), timeout=10000)
    catalog = window.library.catalog
    pad = catalog.file_by_path(sounds[1])
    bass = catalog.file_by_path(sounds[2])
    set_user_tags(catalog, [pad.id], ["dusty", "warm"])
    window.view.select_paths([str(sounds[1]), str(sounds[2])])
    window.on_edit_tags()
    dialog = window.tag_dialog
    assert dialog.mine.text() == "dusty"  # the tag both share
    dialog.mine.setText("vinyl")  # drop "dusty" from both, add "vinyl" to both
    dialog.accept()
    assert user_tags(catalog, [pad.id, bass.id]) == {pad.id: ["warm", "vinyl"],
                                                     bass.id: ["vinyl"]}
    assert tags_cell(window, sounds[1]).startswith("warm, vinyl")
    assert tags_cell(window, sounds[2]).startswith("vinyl")


def test_the_command_is_declared_once_with_its_shortcut() -> None:
    shortcuts = [c.shortcut for c in COMMANDS if c.shortcut]
    assert len(shortcuts) == len(set(shortcuts))
    assert [c.shortcut for c in COMMANDS if c.name == "edit_tags"] == ["Ctrl+T"]
