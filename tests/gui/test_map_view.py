"""The Map view in the real window: hover plays the hovered sound (captured through ALSA),
a lasso fills the results table, the arrow keys walk, a search lights up its family."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import soundfile as sf
from conftest import family_sound, write_sound
from PySide6.QtCore import QEvent, QPointF, Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

sys.path.insert(0, str(Path(__file__).parent))
import asound  # noqa: E402
from test_audition_in_window import needs_portaudio  # noqa: E402

from clapdesk.core.library import Library  # noqa: E402

FAMILIES = ("kick", "hihat", "pad", "bass")
PER_FAMILY = 5


def index_families(folder: Path, tiny_model: Path) -> None:
    for family in FAMILIES:
        for i in range(PER_FAMILY):
            write_sound(folder / family / f"{family}_{i}.wav",
                        family_sound(family, i, seconds=0.5 + 0.1 * i))
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])
    library.close()


def open_map(window, qtbot):  # noqa: ANN001, ANN201
    window.map_action.setChecked(True)
    panel = window.map_panel
    qtbot.waitUntil(lambda: panel.rows is not None and not panel.loading, timeout=120000)
    panel.canvas.resize(500, 400)
    panel.canvas.fit()
    panel.canvas.redraw()
    return panel


def mouse(widget, kind: QEvent.Type, at: QPointF, buttons: Qt.MouseButton,  # noqa: ANN001
          modifiers: Qt.KeyboardModifier = Qt.KeyboardModifier.NoModifier) -> None:
    button = Qt.MouseButton.LeftButton if kind != QEvent.Type.MouseMove else Qt.MouseButton.NoButton
    event = QMouseEvent(kind, at, widget.mapToGlobal(at), button, buttons, modifiers)
    QApplication.sendEvent(widget, event)


def family_of(path: str) -> str:
    return Path(path).parent.name


def test_a_lasso_round_one_family_lists_exactly_it_in_the_table(make_window, qtbot, tmp_path,
                                                                  tiny_model) -> None:  # noqa: ANN001
    index_families(tmp_path / "samples", tiny_model)
    window = make_window()
    qtbot.waitUntil(lambda: window.model.rowCount() == len(FAMILIES) * PER_FAMILY, timeout=30000)
    panel = open_map(window, qtbot)
    canvas = panel.canvas
    pixels = canvas.to_pixels(panel.rows.positions)
    families = np.array([family_of(p) for p in panel.rows.paths])
    mine = pixels[families == "pad"]
    # A lasso: the pad dots' bounding box, a few pixels larger, as a dragged outline.
    low, high = mine.min(axis=0) - 4, mine.max(axis=0) + 4
    outline = [QPointF(low[0], low[1]), QPointF(high[0], low[1]), QPointF(high[0], high[1]),
               QPointF(low[0], high[1])]
    shift = Qt.KeyboardModifier.ShiftModifier
    expected = {p for p, xy in zip(panel.rows.paths, pixels)
                if (low <= xy).all() and (xy <= high).all()}
    assert expected == set(np.array(panel.rows.paths)[families == "pad"]), \
        "the box round the pads holds every pad and nothing else"
    mouse(canvas, QEvent.Type.MouseButtonPress, outline[0], Qt.MouseButton.LeftButton, shift)
    for point in outline[1:] + outline[:1]:
        mouse(canvas, QEvent.Type.MouseMove, point, Qt.MouseButton.LeftButton, shift)
    mouse(canvas, QEvent.Type.MouseButtonRelease, outline[0], Qt.MouseButton.NoButton, shift)
    qtbot.waitUntil(lambda: "chosen on the map" in window.title.text(), timeout=10000)
    listed = {h.file.path for h in window.model.hits()}
    assert listed == expected
    assert window.title.text() == f"{len(expected)} sounds chosen on the map"
    # The table's own drag-out gives the chosen files as URLs.
    window.view.selectAll()
    rows = window.proxy.mapSelectionToSource(window.view.selectionModel().selection()).indexes()
    urls = window.model.mimeData(rows).urls()
    assert {u.toLocalFile() for u in urls} == listed


def test_arrow_keys_walk_to_the_nearest_sound_in_that_direction(make_window, qtbot, tmp_path,
                                                                 tiny_model) -> None:  # noqa: ANN001
    index_families(tmp_path / "samples", tiny_model)
    window = make_window()
    panel = open_map(window, qtbot)
    canvas = panel.canvas
    positions = panel.rows.positions
    start = int(np.argmin(positions[:, 0]))  # the leftmost sound: Right must find a neighbour
    canvas.select(start)
    canvas.setFocus()
    QTest.keyClick(canvas, Qt.Key.Key_Right)
    moved = canvas.current
    assert moved is not None and moved != start
    offset = positions[moved] - positions[start]
    assert offset[0] > 0 and abs(np.arctan2(offset[1], offset[0])) < np.radians(50)
    # It plays as arrowing the table does: after the auto-play delay.
    assert window.audition.pending == panel.rows.paths[moved]
    assert canvas.geometry_.step(moved, -1, 0) is not None


def test_a_search_lights_up_its_family_and_dims_the_rest(make_window, qtbot, tmp_path,
                                                         tiny_model) -> None:  # noqa: ANN001
    index_families(tmp_path / "samples", tiny_model)
    window = make_window()
    panel = open_map(window, qtbot)
    qtbot.waitUntil(lambda: window.model_ctl.state == "ready", timeout=120000)
    window.settings.set("results", PER_FAMILY)
    window.search.set_text("kick")
    qtbot.waitUntil(lambda: window.model.scored, timeout=60000)
    light = panel.canvas.light
    assert light is not None
    families = np.array([family_of(p) for p in panel.rows.paths])
    assert (light[families == "kick"] > 0).all()
    assert (light[families != "kick"] == 0).all()


HOVER_SCRIPT = asound.WINDOW_PREAMBLE + r"""
import json, time
import numpy as np
from PySide6.QtCore import QEvent, QEventLoop, QPointF, Qt
from PySide6.QtGui import QMouseEvent

window.resize(1400, 900)
window.map_action.setChecked(True)
panel = window.map_panel
spin(120, lambda: panel.rows is not None and not panel.loading)
canvas = panel.canvas
spin(0.5)  # the splitter settles the canvas's size (and the view fits it) before we aim
started, shown = [], []
window.player.started.connect(started.append)
window.player.started.connect(lambda _p: shown.append(window.transport.now.text()))
def move(i):
    at = QPointF(*canvas.to_pixels(panel.rows.positions[i])[0])
    QApplication.sendEvent(canvas, QMouseEvent(QEvent.Type.MouseMove, at, canvas.mapToGlobal(at),
        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier))
# Sweep the pointer over three sounds quickly: only the one it rests on may play.
order = [int(i) for i in np.argsort(panel.rows.positions[:, 0])]
for i in order[:3]:
    move(i)
    spin(0.01)
rest = order[2]
spin(10, lambda: bool(started))
spin(10, lambda: not window.player.is_playing)
report = {"played": started, "hovered": panel.rows.paths[rest],
          "hover_index": canvas.hover == rest, "available": window.player.available,
          "transport": shown}
finish(report)
"""


@needs_portaudio
def test_hovering_a_dot_plays_that_sound_into_the_capture_device(tiny_model: Path,
                                                                 tmp_path: Path) -> None:
    index_families(tmp_path / "samples", tiny_model)
    config, capture = asound.write_capture_config(tmp_path / "alsa")
    report = asound.run_script(HOVER_SCRIPT, asound.alsa_env(config), timeout=240)
    assert report["available"], "the capture device must be usable"
    assert report["hover_index"]
    assert report["played"] == [report["hovered"]], json.dumps(report)
    assert report["transport"] == [Path(report["hovered"]).name], "the transport shows it"
    played = sf.info(report["hovered"])
    captured = asound.read_capture(capture)[:, 0]
    loud = np.flatnonzero(np.abs(captured) > 1e-3)
    assert loud.size, "the capture is silent"
    heard = loud[-1] - loud[0] + 1
    assert 0.7 * played.frames <= heard <= played.frames + 1
