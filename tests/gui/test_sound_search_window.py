"""Searching with a sound in the window: a file dropped on the search field, words steering it,
the aspects, and a recording from an ALSA input backed by a WAV file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, index_folder, write_sound
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import QApplication

from clapdesk.core.store.catalog import Catalog
from clapdesk.gui.model_control import READY, UNAVAILABLE
from clapdesk.gui.results_model import NAME

sys.path.insert(0, str(Path(__file__).parent))
from asound import alsa_env, portaudio_loads, run_script, write_input_config  # noqa: E402

FAMILIES = ("kick", "hihat", "pad", "bass", "noise")


def family_library(folder: Path, model: Path, per_family: int = 3) -> None:
    for family in FAMILIES:
        for seed in range(per_family):
            write_sound(folder / f"{family}_{seed:02d}.wav", family_sound(family, 20 + seed))
    index_folder(folder, model)


def ready(qtbot, make_window, rows: int):  # noqa: ANN001, ANN201
    window = make_window()
    qtbot.waitUntil(lambda: window.model_ctl.state in (READY, UNAVAILABLE), timeout=60000)
    assert window.model_ctl.state == READY, window.model_ctl.message
    qtbot.waitUntil(lambda: window.model.rowCount() == rows, timeout=10000)
    return window


def drop_on(widget, path: Path) -> bool:  # noqa: ANN001
    """Drag a file over `widget` and drop it, as a file manager does (text/uri-list)."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    at = widget.rect().center()
    enter = QDragEnterEvent(at, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    if not enter.isAccepted():
        return False
    drop = QDropEvent(QPoint(at), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                      Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return drop.isAccepted()


def names(window) -> list[str]:  # noqa: ANN001
    return [window.model.hit(r).file.name for r in range(window.model.rowCount())]


def searched_again(qtbot, window, action) -> list[str]:  # noqa: ANN001
    with qtbot.waitSignal(window.sound_search.results_shown, timeout=20000):
        action()
    return names(window)


def test_dropping_a_file_from_outside_the_library_finds_its_family_first(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    family_library(tmp_path / "samples", tiny_model)
    outside = write_sound(tmp_path / "Downloads" / "kick_07.wav", family_sound("kick", 77),
                          rate=48000)
    window = ready(qtbot, make_window, 15)
    with qtbot.waitSignal(window.sound_search.results_shown, timeout=20000) as shown:
        assert drop_on(window.search.field, outside), "the field refused a dropped sound"
    assert shown.args[0] > 0
    assert window.search.chip_labels() == ["Sounds like kick_07"]
    assert "Sounds like kick_07" in window.title.text()
    found = names(window)
    assert all(n.startswith("kick") for n in found[:3]), found
    assert window.model.scored and window.view.rowAt(0) == 0
    assert window.search.tools.isVisible(), "the amount slider and the aspects are not shown"
    catalog = Catalog(window.library.paths.catalog)
    try:
        assert catalog.count_files() == 15 and catalog.file_by_path(str(outside)) is None
    finally:
        catalog.close()

    # Words beside the chip steer the same sound: the slider says how far.
    window.search.amount.setValue(0)
    qtbot.keyClicks(window.search.field, "bass")
    unsteered = searched_again(qtbot, window, window.search.fire)
    assert unsteered == found, "at 0 % the words must not move the results"
    steered = searched_again(qtbot, window, lambda: window.search.amount.setValue(100))
    assert "steered 100 %: bass" in window.title.text()
    assert window.search.chip_labels() == ["Sounds like kick_07"]
    assert steered.index("bass_00.wav") < unsteered.index("bass_00.wav")

    # An aspect re-ranks the same sound.
    searched_again(qtbot, window, lambda: window.search.aspect.setCurrentIndex(1))
    assert window.title.text().endswith("in timbre")

    # Removing the chip goes back to browsing the library.
    window.search.clear_similar()
    qtbot.waitUntil(lambda: not window.model.scored and window.model.rowCount() == 15,
                    timeout=10000)
    assert window.search.chip_labels() == [] and not window.search.tools.isVisible()


def test_a_sound_dropped_before_the_model_is_ready_is_searched_when_it_is(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    family_library(tmp_path / "samples", tiny_model, per_family=2)
    outside = write_sound(tmp_path / "elsewhere" / "pad_idea.wav", family_sound("pad", 70))
    window = make_window(start=False)
    assert window.model_ctl.state != READY
    assert drop_on(window.search.field, outside)
    assert "will be searched as soon as the model is ready" in window.title.text()
    with qtbot.waitSignal(window.sound_search.results_shown, timeout=60000):
        window.start()
    assert names(window)[0].startswith("pad") and "Sounds like pad_idea" in window.title.text()


def test_a_dropped_file_that_is_not_a_sound_is_a_plain_notice(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    family_library(tmp_path / "samples", tiny_model, per_family=1)
    notes = tmp_path / "notes.wav"
    notes.write_text("shopping list, not audio")
    window = ready(qtbot, make_window, 5)
    assert drop_on(window.search.field, notes)
    qtbot.waitUntil(lambda: window.search.notice.isVisible(), timeout=20000)
    assert "cannot be read as a sound" in window.search.notice.text()
    assert window.search.chip_labels() == []
    assert drop_on(window.search.field, tmp_path / "samples")
    assert "is a folder" in window.search.notice.text()


def test_find_similar_in_pitch_and_the_row_menu_offer_the_aspects(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    family_library(tmp_path / "samples", tiny_model, per_family=2)
    window = ready(qtbot, make_window, 10)
    window.view.setCurrentIndex(window.proxy.index(0, NAME))
    source = window.current_hit().file
    with qtbot.waitSignal(window.sound_search.results_shown, timeout=20000):
        window.actions_by_name["similar_pitch"].trigger()
    stem = Path(source.name).stem
    assert window.search.chip_labels() == [f"Sounds like {stem}"]
    assert window.search.chosen_aspect == "pitch" and window.title.text().endswith("in pitch")
    assert source.name not in names(window) and len(names(window)) == 9


RECORD_SCRIPT = """
import json, os, sys, time
from PySide6.QtWidgets import QApplication
app = QApplication([])
from clapdesk.core.library import Library
from clapdesk.gui.main_window import MainWindow
from clapdesk.gui.model_control import READY
from clapdesk.gui.settings import Settings
window = MainWindow(Library(model={model!r}, allow_download=False), Settings())
window.indexing.watching = False
window.show()
window.start()

def wait(condition, seconds):
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        app.processEvents()
        time.sleep(0.01)
    return condition()

assert wait(lambda: window.model_ctl.state == READY, 60), window.model_ctl.message
times = []
window.sound_search.results_shown.connect(times.append)
window.actions_by_name["record_query"].trigger()  # the shortcut's action
panel = window.sound_search.panel
wait(lambda: not panel.recording, 30)
assert wait(lambda: bool(times), 30), panel.status.text()
rows = [window.model.hit(r).file.name for r in range(window.model.rowCount())]
playback = panel.playback_path()
saved = panel.save_to({saved!r})
kept = {{"status": panel.status.text(), "chips": window.search.chip_labels(),
        "rows": rows, "ms": times[0], "peak": panel.meter.peak_db, "seconds": len(panel.trimmed) / panel.rate,
        "playback_existed": os.path.isfile(playback), "saved": saved,
        "files": window.library.catalog.count_files()}}
window.search.clear_similar()
kept["playback_left"] = os.path.exists(playback)
window.shutdown()
print(json.dumps(kept))
"""


@pytest.mark.skipif(not portaudio_loads(), reason="PortAudio (libportaudio2) is not installed")
def test_recording_from_the_window_trims_searches_plays_and_saves(
        tiny_model: Path, tmp_path: Path) -> None:
    """The window's Record runs in a fresh process: PortAudio reads the ALSA configuration
    (an input that plays a WAV: silence, a bass, silence) when it is first imported."""
    family_library(tmp_path / "samples", tiny_model)
    rate = 44100
    bass = family_sound("bass", 6, rate, 1.2)
    take = np.concatenate([np.zeros(rate, np.float32), bass, np.zeros(3 * rate, np.float32)])
    config, rate = write_input_config(tmp_path / "alsa",
                                      write_sound(tmp_path / "take.wav", take, rate, "FLOAT"))
    saved = tmp_path / "kept" / "my bass.wav"
    saved.parent.mkdir()
    env = alsa_env(config)
    result = run_script(RECORD_SCRIPT.format(model=str(tiny_model), saved=str(saved)), env,
                        timeout=180)
    assert result["status"].startswith("Recorded 1.2 s (trimmed from 10.0 s)"), result["status"]
    assert result["chips"] == ["Sounds like your recording (1.2 s)"]
    assert all(n.startswith("bass") for n in result["rows"][:3]), result["rows"]
    assert result["peak"] > -12, "the meter's peak never showed the bass"
    assert result["playback_existed"] and not result["playback_left"]
    assert result["saved"] == str(saved) and saved.is_file()
    assert result["files"] == 15, "the recording was added to the library"
    print(json.dumps({"record_to_results_ms": round(result["ms"], 1)}))
