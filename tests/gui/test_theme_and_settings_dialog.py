"""Icons, theme and the Settings dialog built from the declared settings."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication, QCheckBox, QComboBox, QSpinBox

from clapdesk.gui.actions import COMMANDS, shortcut_table
from clapdesk.gui.settings import SETTINGS, Settings
from clapdesk.gui.settings_dialog import SettingsDialog
from clapdesk.gui.theme import app_icon, apply_dark_theme, icon, resources_dir


def test_every_icon_the_app_names_exists_and_the_theme_applies(qapp) -> None:  # noqa: ANN001
    assert resources_dir() is not None
    names = {c.icon for c in COMMANDS if c.icon} | {"folder", "library", "recent", "history",
                                                    "warning", "volume", "loop", "play", "stop"}
    missing = [n for n in sorted(names) if icon(n).isNull()]
    assert missing == []
    assert not app_icon().isNull()
    apply_dark_theme(QApplication.instance())
    assert "QTableView" in QApplication.instance().styleSheet()


def test_shortcuts_are_unique_and_listed() -> None:
    keys = [c.shortcut for c in COMMANDS if c.shortcut]
    assert len(keys) == len(set(keys))
    assert ("Ctrl+L", "Add library folder") in shortcut_table()
    assert ("Ctrl+F", "Find") in shortcut_table()


def test_the_settings_dialog_edits_and_saves_the_declared_settings(qtbot) -> None:  # noqa: ANN001
    settings = Settings()
    dialog = SettingsDialog(settings, ["/music/Samples"])
    qtbot.addWidget(dialog)
    assert set(dialog.editors) == {s.key for s in SETTINGS}
    auto_play = dialog.editors["auto_play"]
    delay = dialog.editors["auto_play_delay_ms"]
    device = dialog.editors["device"]
    assert isinstance(auto_play, QCheckBox) and isinstance(delay, QSpinBox)
    assert isinstance(device, QComboBox)
    auto_play.setChecked(False)
    delay.setValue(300)
    device.setCurrentIndex(device.findText("cpu"))
    dialog.folder_list.addItem("/music/More")
    dialog.save()
    again = Settings()
    assert again.get("auto_play") is False and again.get("auto_play_delay_ms") == 300
    assert again.get("device") == "cpu"
    assert dialog.folders() == ["/music/Samples", "/music/More"]


def test_without_a_display_the_app_says_so_instead_of_aborting() -> None:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items()
           if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    done = subprocess.run([sys.executable, "-m", "clapdesk"], env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2
    assert "no display" in done.stderr and "Traceback" not in done.stderr


def test_the_precision_chosen_in_settings_is_the_one_the_library_loads_with(qtbot, tmp_path) -> None:  # noqa: ANN001
    from clapdesk.gui.app import open_library

    settings = Settings()
    # Left to clapdesk: the first indexing chooses (tests/test_precision_choice.py).
    assert open_library(str(tmp_path / "lib"), None, None, settings).precision == "auto"
    dialog = SettingsDialog(settings, [])
    qtbot.addWidget(dialog)
    precision = dialog.editors["precision"]
    assert isinstance(precision, QComboBox)
    # auto, float32 and int8 everywhere; bfloat16 and float16 only where the hardware has
    # them (tests/gui/test_first_hour_window.py checks that against this computer).
    assert [precision.itemText(i) for i in range(precision.count())][:3] == ["auto", "float32", "int8"]
    precision.setCurrentIndex(precision.findText("int8"))
    dialog.save()
    library = open_library(str(tmp_path / "lib"), None, None, Settings())
    assert library.precision == "int8"
    library.close()
    # The command line's --precision wins over the setting.
    library = open_library(str(tmp_path / "lib"), None, None, Settings(), "bfloat16")
    assert library.precision == "bfloat16"
    library.close()


def test_changing_model_or_precision_says_it_applies_from_the_next_start(
        qtbot, make_window, monkeypatch) -> None:  # noqa: ANN001
    from clapdesk.gui import commands

    window = make_window(start=False)
    chosen: dict[str, str] = {}

    class Accepting(SettingsDialog):
        def exec(self) -> int:
            return SettingsDialog.DialogCode.Accepted

        def save(self) -> None:
            for key, value in chosen.items():
                self.settings.set(key, value)

        def folders(self) -> list[str]:
            return [path for _, path in window.library.catalog.roots()]

    monkeypatch.setattr(commands, "SettingsDialog", Accepting)
    window.statusBar().clearMessage()
    window.on_settings()
    assert "next start" not in window.statusBar().currentMessage()  # nothing that needs one
    chosen["precision"] = "int8"
    window.on_settings()
    assert window.statusBar().currentMessage() == "The new precision is used from the next start."
    chosen["model"] = "/music/models/other-clap"
    window.on_settings()
    assert window.statusBar().currentMessage() == (
        "The new model and precision are used from the next start.")


def test_the_status_line_of_the_run_that_chose_the_precision_says_which_and_why() -> None:
    from clapdesk.core.index.indexer import IndexReport
    from clapdesk.core.index.precision_choice import PrecisionChoice
    from clapdesk.gui.indexing import describe_report

    choice = PrecisionChoice("bfloat16", True, "2.4x faster than float32 on this CPU", True)
    line = describe_report(IndexReport(indexed=3, precision=choice))
    assert line == ("Library updated: 3 sounds indexed. Model precision: bfloat16 (chosen "
                    "automatically: 2.4x faster than float32 on this CPU)")
    choice.decided_now = False  # later runs keep the line short
    assert describe_report(IndexReport(indexed=3, precision=choice)) == "Library updated: 3 sounds indexed"


def test_the_progress_says_what_the_choice_is_doing_and_how_to_skip_it(qtbot) -> None:  # noqa: ANN001
    from clapdesk.core.index.report import Progress
    from clapdesk.gui.indexing import IndexProgress

    progress = IndexProgress()
    qtbot.addWidget(progress)
    progress.show_progress(Progress("embedding", 12, 400, not_heard=388, comparing=("int8",)))
    assert progress.label.text() == "Embedding · 388 not heard yet · choosing precision"
    assert progress.bar.maximum() == 400 and progress.bar.value() == 12  # files still count
    tip = progress.label.toolTip()
    assert "first files of this library" in tip and "Settings › Model precision" in tip
    assert "Not listened to yet" in tip  # the rows' own tip still comes with it
    # Once the candidate is timed, the time left is a range: its pace to float32's.
    progress.show_progress(Progress("embedding", 20, 400, eta=250, eta_low=130, not_heard=380,
                                    comparing=("int8",)))
    assert progress.label.text() == ("Embedding · 2–4 min left · 380 not heard yet · "
                                     "choosing precision")
    assert "the time left is a range" in progress.label.toolTip()
    progress.show_progress(Progress("embedding", 50, 400, not_heard=350))
    assert "precision" not in progress.label.toolTip()
    assert "precision" not in progress.label.text()


def test_a_time_left_range_reads_in_the_units_of_its_ends() -> None:
    from clapdesk.gui.indexing import format_eta

    assert format_eta(200) == "3 min 20 s left"
    assert format_eta(45, 30) == "30 s – 45 s left"
    assert format_eta(250, 130) == "2–4 min left"
    assert format_eta(150, 140) == "about 2 min left"  # both ends round alike
    assert format_eta(5400, 2000) == "33 min – 1 h 30 min left"
    assert format_eta(200, 250) == "3 min 20 s left"  # a low end above the high one: no range
