"""The first hour in the window: model switch and revert, Settings, side panel, exports,
reveal, the small things (hint, sort arrow, lengths, folder dialog, waveform, wizard)."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path

import pytest
from conftest import family_sound, index_folder, write_sound
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QFileDialog, QMessageBox

from clapdesk.core.finetune import versions
from clapdesk.core.library import Library
from clapdesk.core.store.paths import cache_dir
from clapdesk.gui.model_control import READY, UNAVAILABLE
from clapdesk.gui.results_model import MATCH, NAME, OBJECT_ROLE, format_duration
from clapdesk.gui.settings import Settings
from clapdesk.gui.settings_dialog import SettingsDialog

FAMILIES = ("kick", "hihat", "pad", "bass")


def index_sounds(folder: Path, model: Path, count: int) -> list[Path]:
    sounds = [write_sound(folder / f"{FAMILIES[i % 4]}_{i:03d}.wav",
                          family_sound(FAMILIES[i % 4], i, seconds=0.5 + i)) for i in range(count)]
    index_folder(folder, model)
    return sounds


def ready(qtbot, window) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: window.model_ctl.state in (READY, UNAVAILABLE), timeout=60000)
    assert window.model_ctl.state == READY, window.model_ctl.message


def test_starting_with_another_model_searches_the_librarys_own_and_says_so(
        qtbot, make_window, tiny_model: Path, tiny_model_b: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_sounds(tmp_path / "samples", tiny_model, 6)
    window = make_window(model=str(tiny_model_b))
    ready(qtbot, window)
    window.search.set_text("punchy kick")
    qtbot.waitUntil(lambda: "results for" in window.title.text(), timeout=10000)
    assert window.model.rowCount() == 6, window.title.text()
    assert window.title.text().startswith("6 results")
    message = window.statusBar().currentMessage()
    assert f"clapdesk models switch {tiny_model_b}" in message and "6 sounds" in message
    assert Library().model_ref == str(tiny_model), "nothing was switched behind the user's back"


def test_revert_to_the_base_model_and_use_a_version_from_the_menu(
        qtbot, make_window, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    index_sounds(tmp_path / "samples", tiny_model, 4)
    library = Library(model=str(tiny_model))
    embedder = library.embedder()
    versions.save_version(library.paths.models, "ft-mine",
                          copy.deepcopy(embedder.model.audio_projection),
                          copy.deepcopy(embedder.model.text_projection),
                          {"base": embedder.encoder_key})
    versions.activate(library, "ft-mine")
    library.close()
    window = make_window()
    ready(qtbot, window)
    assert window.library.active_version == "ft-mine"
    menu_texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert "&Revert to the base model" in menu_texts

    window.actions_by_name["revert_model"].trigger()
    qtbot.waitUntil(lambda: window.library.active_version is None, timeout=10000)
    qtbot.waitUntil(lambda: "base model" in window.statusBar().currentMessage(), timeout=5000)
    assert window.library.model_key == window.library.identity.encoder_key

    window.actions_by_name["use_version"].trigger()  # the versions, with their figures
    window.versions_dialog.select("ft-mine")
    window.versions_dialog.activate_button.click()
    qtbot.waitUntil(lambda: window.library.active_version == "ft-mine", timeout=10000)
    qtbot.waitUntil(lambda: "ft-mine" in window.statusBar().currentMessage(), timeout=5000)


def test_settings_refuse_a_folder_that_is_not_a_model_and_show_the_model_in_use(
        qtbot, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(
        lambda parent, title, text, *a: warnings.append(text)))
    settings = Settings()
    dialog = SettingsDialog(settings, [], model_in_use=str(tiny_model))
    qtbot.addWidget(dialog)
    assert str(tiny_model) in dialog.model_in_use.text()
    not_a_model = tmp_path / "just samples"
    write_sound(not_a_model / "kick.wav", family_sound("kick", 1))
    dialog.editors["model"].setText(str(not_a_model))
    dialog.accept()
    assert dialog.result() != SettingsDialog.DialogCode.Accepted and dialog.isVisible() is False \
        or not dialog.result()
    assert warnings and "not a model folder" in warnings[0]
    dialog.save()  # what the caller does on Accepted only; here it must not have been accepted
    warnings.clear()
    dialog.editors["model"].setText(str(tiny_model))
    dialog.accept()
    assert warnings == [] and dialog.result() == SettingsDialog.DialogCode.Accepted


def test_the_model_in_use_shows_when_it_came_from_the_environment(
        qtbot, make_window, tiny_model: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("CLAPDESK_MODEL", str(tiny_model))
    window = make_window(start=False)
    shown: list[str] = []
    monkeypatch.setattr(SettingsDialog, "exec", lambda self: (
        shown.append(self.model_in_use.text()), SettingsDialog.DialogCode.Rejected)[1])
    window.on_settings()
    assert shown and str(tiny_model) in shown[0] and "CLAPDESK_MODEL" in shown[0]


def test_a_model_folder_chosen_instead_is_checked_and_saved(
        qtbot, make_window, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    warnings: list[str] = []
    monkeypatch.setattr(QMessageBox, "warning", staticmethod(
        lambda parent, title, text, *a: warnings.append(text)))
    window = make_window(model=str(tmp_path / "gone"), start=False)
    (tmp_path / "empty").mkdir()
    assert not window.use_model_folder(str(tmp_path / "empty"))
    assert warnings and "config.json" in warnings[0]
    assert window.settings.get("model") == ""
    assert window.use_model_folder(str(tiny_model))
    assert Settings().get("model") == str(tiny_model), "the fix must outlive this start"
    ready(qtbot, window)


def test_folders_with_the_same_name_show_the_shortest_path_that_tells_them_apart(
        qtbot, make_window) -> None:  # noqa: ANN001
    window = make_window(start=False)
    window.side.set_folders(["/home/me/Drums/samples", "/mnt/usb/Keys/samples", "/home/me/FX",
                             "/a/x/loops", "/b/x/loops"])
    labels = [window.side.folders.child(i).text(0) for i in range(5)]
    assert labels == ["Drums/samples", "Keys/samples", "FX", "a/x/loops", "b/x/loops"]


def test_region_exports_go_to_a_lasting_folder_that_settings_can_change(
        qtbot, make_window, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("CLAPDESK_EXPORTS", raising=False)
    monkeypatch.setenv("XDG_MUSIC_DIR", str(tmp_path / "Music"))
    sounds = index_sounds(tmp_path / "samples", tiny_model, 2)
    window = make_window(start=False)
    wave = window.waveform
    wave.set_file(str(sounds[1]))
    qtbot.waitUntil(lambda: wave.duration > 0, timeout=10000)
    wave.set_selection(0.1, 0.4)
    exported = wave.export_selection()
    assert exported.is_file()
    assert not exported.is_relative_to(cache_dir()), "a cleaner may empty the cache"
    assert exported.parent == Path(tmp_path / "Music" / "clapdesk")
    chosen = tmp_path / "my exports"
    window.settings.set("export_folder", str(chosen))
    monkeypatch.setattr(SettingsDialog, "exec", lambda self: SettingsDialog.DialogCode.Accepted)
    monkeypatch.setattr(SettingsDialog, "save", lambda self: None)
    window.on_settings()
    assert wave.export_selection().parent == chosen


def test_reveal_without_a_file_manager_says_so_and_copies_the_path(
        qtbot, make_window, tiny_model: Path, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("PATH", str(tmp_path / "no-tools"))  # no xdg-open, as on a bare desktop
    index_sounds(tmp_path / "samples", tiny_model, 2)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == 2, timeout=10000)
    window.view.setCurrentIndex(window.proxy.index(0, NAME))
    path = window.current_hit().file.path
    window.on_reveal()
    assert path in window.statusBar().currentMessage()
    assert QApplication.clipboard().text() == path


def test_device_and_precision_offer_only_what_this_computer_has(qtbot) -> None:  # noqa: ANN001
    import torch

    dialog = SettingsDialog(Settings(), [])
    qtbot.addWidget(dialog)
    devices = dialog.editors["device"].property("choices")
    precisions = dialog.editors["precision"].property("choices")
    assert ("cuda" in devices) == torch.cuda.is_available()
    assert ("mps" in devices) == torch.backends.mps.is_available()
    gpu = torch.cuda.is_available() or torch.backends.mps.is_available()
    assert ("float16" in precisions) == gpu
    assert {"auto", "float32", "int8"} <= set(precisions)
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    native = " avx512_bf16" in flags or " amx_bf16" in flags
    assert ("bfloat16" in precisions) == (gpu or native)


def _contrast(image, rect) -> int:  # noqa: ANN001
    """The largest brightness step between any pixel in `rect` and the rect's corner pixel."""
    corner = image.pixelColor(rect.left() + 1, rect.top() + 1).lightness()
    return max(abs(image.pixelColor(x, y).lightness() - corner)
               for x in range(rect.left(), rect.right()) for y in range(rect.top(), rect.bottom()))


@pytest.fixture
def themed(qapp):  # noqa: ANN001, ANN201
    from clapdesk.gui.theme import apply_dark_theme

    style, palette, sheet = qapp.style().name(), qapp.palette(), qapp.styleSheet()
    apply_dark_theme(qapp)
    yield qapp
    qapp.setStyleSheet(sheet)
    qapp.setPalette(palette)
    qapp.setStyle(style)


def test_spin_arrows_unchecked_boxes_and_the_sort_arrow_show_in_the_dark_theme(
        qtbot, themed, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import (
        QCheckBox,
        QSpinBox,
        QStyle,
        QStyleOptionButton,
        QStyleOptionSpinBox,
    )

    dialog = SettingsDialog(Settings(), [])
    qtbot.addWidget(dialog)
    dialog.show()
    spin = next(e for e in dialog.editors.values() if isinstance(e, QSpinBox))
    box = next(e for e in dialog.editors.values() if isinstance(e, QCheckBox))
    box.setChecked(False)
    option = QStyleOptionSpinBox()
    spin.initStyleOption(option) if hasattr(spin, "initStyleOption") else option.initFrom(spin)
    up = spin.style().subControlRect(QStyle.ComplexControl.CC_SpinBox, option,
                                     QStyle.SubControl.SC_SpinBoxUp, spin)
    assert _contrast(spin.grab().toImage(), up) > 80, "the spin box's arrows are not visible"
    button = QStyleOptionButton()
    button.initFrom(box)
    indicator = box.style().subElementRect(QStyle.SubElement.SE_CheckBoxIndicator, button, box)
    assert _contrast(box.grab().toImage(), indicator) > 80, "an unchecked box is not visible"

    # Best first is a descending sort: its arrow must point down (wide at the top).
    index_sounds(tmp_path / "samples", tiny_model, 3)
    window = make_window()
    ready(qtbot, window)
    window.search.set_text("kick")
    qtbot.waitUntil(lambda: window.model.scored, timeout=10000)
    header = window.view.horizontalHeader()
    assert header.sortIndicatorSection() == MATCH
    assert header.sortIndicatorOrder() == Qt.SortOrder.DescendingOrder
    image = header.grab().toImage()
    left = header.sectionViewportPosition(MATCH)
    right = left + header.sectionSize(MATCH)
    rows = {}
    for y in range(image.height()):
        bright = [x for x in range(right - 22, right) if image.pixelColor(x, y).lightness() > 150]
        if bright:
            rows[y] = len(bright)
    assert rows, "no sort arrow drawn"
    top, bottom = min(rows), max(rows)
    assert rows[top] > rows[bottom], f"the arrow points up: {rows}"


def test_small_things(qtbot, make_window, tiny_model: Path, tmp_path: Path,
                      monkeypatch) -> None:  # noqa: ANN001
    # The empty-library hint names a menu item that exists.
    window = make_window()
    qtbot.waitUntil(lambda: "empty" in window.title.text(), timeout=10000)
    menu, item = re.search(r"with (\w+) > (.+?) \(", window.title.text()).groups()
    menus = {a.text().replace("&", ""): a.menu() for a in window.menuBar().actions()}
    assert item in [a.text().replace("&", "") for a in menus[menu].actions()]

    # Lengths read one way, whatever the length.
    assert [format_duration(s) for s in (0.35, 6.49, 12.0, 75.26)] == [
        "0:00.4", "0:06.5", "0:12.0", "1:15.3"]

    # The folder dialog opens in the home folder, not wherever clapdesk was started.
    asked: list[str] = []
    monkeypatch.setattr(QFileDialog, "getExistingDirectory", staticmethod(
        lambda parent, caption, folder="", *a: (asked.append(folder), "")[1]))
    window.on_add_folder()
    assert asked == [str(Path.home())]

    # One sound is "1 sound".
    index_sounds(tmp_path / "one", tiny_model, 1)
    window.browse()
    qtbot.waitUntil(lambda: window.model.rowCount() == 1, timeout=10000)
    assert window.title.text().endswith("— 1 sound")


def test_the_side_panel_shrinks_with_a_small_window(qtbot, make_window) -> None:  # noqa: ANN001
    window = make_window(start=False)
    window.resize(1200, 700)
    window.side_split.setSizes([240, 960])
    qtbot.wait(50)
    wide = window.side.width()
    window.resize(700, 500)
    qtbot.waitUntil(lambda: window.width() == 700, timeout=2000)
    qtbot.wait(50)
    # It gives way with the results, not only once they are squeezed to their minimum.
    assert window.side.width() < 0.8 * wide, "the side panel kept its width"
    assert window.side.width() <= 0.25 * window.width()


def test_the_duplicates_place_clears_the_previous_sounds_waveform(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_sounds(tmp_path / "samples", tiny_model, 3)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=10000)
    window.view.setCurrentIndex(window.proxy.index(0, NAME))
    hit = window.proxy.index(0, NAME).data(OBJECT_ROLE)
    window.audition.show_wave(hit.file.path)
    assert window.waveform.path == hit.file.path
    window._place("duplicates", "")
    qtbot.waitUntil(lambda: "Duplicates" in window.title.text(), timeout=10000)
    assert window.model.rowCount() == 0
    assert window.waveform.path is None


def test_the_wizard_cancels_on_its_first_page(qtbot, make_window) -> None:  # noqa: ANN001
    from PySide6.QtWidgets import QWizard

    window = make_window(start=False)
    window.on_fine_tune()
    wizard = window.finetune_wizard
    assert wizard.button(QWizard.WizardButton.CancelButton).text() == "Cancel"
    wizard.reject()


def test_quitting_while_the_model_loads_takes_under_3_seconds(
        qtbot, make_window) -> None:  # noqa: ANN001
    import time

    window = make_window()
    qtbot.waitUntil(lambda: window.model_ctl.state == "loading", timeout=30000)
    started = time.perf_counter()
    window.close()
    took = time.perf_counter() - started
    assert took < 3.0, f"quitting took {took:.1f} s"


def test_quitting_while_indexing_takes_under_3_seconds(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    import time

    folder = tmp_path / "many"
    for i in range(80):
        write_sound(folder / f"{FAMILIES[i % 4]}_{i:03d}.wav",
                    family_sound(FAMILIES[i % 4], i, seconds=4.0))
    window = make_window()
    ready(qtbot, window)
    window.indexing.index([str(folder)])
    qtbot.waitUntil(lambda: window.progress.bar.value() > 0, timeout=60000)
    started = time.perf_counter()
    window.close()
    took = time.perf_counter() - started
    assert took < 3.0, f"quitting took {took:.1f} s"
    assert os.path.isdir(folder)


def test_the_match_column_holds_not_heard_yet_whole_in_the_theme(
        qtbot, themed, make_window) -> None:  # noqa: ANN001
    """A first run's rows read "not heard yet" in the Match column: whole, not "not heard …".
    The column was sized from the font before the theme's style sheet (10 pt) applied."""
    from PySide6.QtWidgets import QStyle

    from clapdesk.gui.results_model import MATCH, NOT_HEARD

    window = make_window(start=False)
    view = window.view
    qtbot.waitExposed(window)
    # Item views keep (focus frame margin + 1) clear on each side of a cell's text.
    margin = view.style().pixelMetric(QStyle.PixelMetric.PM_FocusFrameHMargin, None, view) + 1
    needed = view.fontMetrics().horizontalAdvance(NOT_HEARD) + 2 * margin
    assert view.columnWidth(MATCH) >= needed, (view.columnWidth(MATCH), needed)
