"""WaveformView: click-to-seek, region selection, export and drag-out; thumbnails."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QDrag, QMouseEvent
from PySide6.QtWidgets import QApplication

from clapdesk.core.store.paths import LibraryPaths
from clapdesk.gui.player import Player
from clapdesk.gui.waveform import (
    WAVE,
    ThumbnailLoader,
    WaveformView,
    file_peaks,
    min_max_peaks,
    thumbnail,
)

RATE = 44100
WIDTH = 400


def stereo_sound(seconds: float = 2.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    left = 0.5 * np.sin(2 * np.pi * 220 * t)
    right = 0.25 * np.sin(2 * np.pi * 330 * t)
    return np.stack([left, right], axis=1).astype(np.float32)


def send_mouse(widget, kind: QMouseEvent.Type, x: float, shift: bool = False) -> None:
    """A mouse event straight to the widget: what a real press, move or release delivers."""
    pressed = kind != QMouseEvent.Type.MouseButtonRelease
    event = QMouseEvent(
        kind, QPointF(x, widget.height() / 2), widget.mapToGlobal(QPointF(x, widget.height() / 2)),
        Qt.MouseButton.LeftButton if kind != QMouseEvent.Type.MouseMove else Qt.MouseButton.NoButton,
        Qt.MouseButton.LeftButton if pressed else Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.ShiftModifier if shift else Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, event)


def drag(widget, start: float, end: float, shift: bool = False) -> None:
    send_mouse(widget, QMouseEvent.Type.MouseButtonPress, start, shift)
    send_mouse(widget, QMouseEvent.Type.MouseMove, (start + end) / 2, shift)
    send_mouse(widget, QMouseEvent.Type.MouseMove, end, shift)
    send_mouse(widget, QMouseEvent.Type.MouseButtonRelease, end, shift)


@pytest.fixture
def view(qtbot) -> WaveformView:  # noqa: ANN001 - pytest-qt fixture
    widget = WaveformView()
    qtbot.addWidget(widget)
    widget.resize(WIDTH, 100)
    widget.show()
    data = stereo_sound(2.0)
    widget.set_audio(data, RATE, "/samples/Loop 01 (wet).wav")
    return widget


def test_a_click_seeks_to_the_time_under_the_mouse(view: WaveformView, qtbot) -> None:
    with qtbot.waitSignal(view.seek_requested, timeout=1000) as blocker:
        send_mouse(view, QMouseEvent.Type.MouseButtonPress, 100)
        send_mouse(view, QMouseEvent.Type.MouseButtonRelease, 100)
    assert blocker.args[0] == pytest.approx(100 / WIDTH * 2.0)
    assert view.selection is None


def test_dragging_a_region_out_exports_it_and_drags_its_url(view: WaveformView, qtbot) -> None:
    drags: list[QDrag] = []
    view.drag_runner = drags.append
    with qtbot.waitSignal(view.selection_changed, timeout=1000):
        drag(view, 100, 200)
    start, end = view.selection
    assert start == pytest.approx(0.5) and end == pytest.approx(1.0)

    send_mouse(view, QMouseEvent.Type.MouseButtonPress, 150)  # inside the region
    send_mouse(view, QMouseEvent.Type.MouseMove, 300)

    assert len(drags) == 1
    mime = drags[0].mimeData()
    assert mime.hasUrls() and "text/uri-list" in mime.formats()
    exported = Path(mime.urls()[0].toLocalFile())
    assert exported.parent == LibraryPaths().exports and exported.exists()
    info = sf.info(exported)
    assert info.subtype == "PCM_24" and info.samplerate == RATE and info.channels == 2
    first, last = round(0.5 * RATE), round(1.0 * RATE)
    assert info.frames == last - first
    written, _ = sf.read(exported, dtype="float32")
    np.testing.assert_allclose(written, stereo_sound(2.0)[first:last], atol=1e-5)


def test_shift_drag_extends_the_region(view: WaveformView, qtbot) -> None:
    view.set_selection(0.5, 1.0)
    drag(view, 300, 360, shift=True)  # grabs the nearer edge (the end) and moves it
    assert view.selection == pytest.approx((0.5, 360 / WIDTH * 2.0))


def test_a_short_drag_does_not_select_and_playhead_draws(view: WaveformView, qtbot) -> None:
    with qtbot.waitSignal(view.seek_requested, timeout=1000):
        drag(view, 100, 101)  # below the drag distance: a click
    assert view.selection is None
    view.set_position(1.0)
    image = view.grab().toImage()
    playhead = image.pixelColor(WIDTH // 2, 5)
    assert playhead.red() > 200 and playhead.green() < 150  # the red playhead at 1.0 s of 2.0


def test_the_waveform_is_drawn_where_the_sound_is(qtbot, tmp_path: Path) -> None:
    # Loud first half, silent second half: only the left half shows the wave colour.
    sound = np.zeros(RATE, np.float32)
    sound[: RATE // 2] = 0.9 * np.sign(np.sin(np.arange(RATE // 2) / 5))
    view = WaveformView()
    qtbot.addWidget(view)
    view.resize(WIDTH, 80)
    view.set_audio(sound[:, None], RATE, tmp_path / "half.wav")
    image = view.grab().toImage()
    near_top = 12
    assert _close(image.pixelColor(WIDTH // 4, near_top), WAVE)
    assert not _close(image.pixelColor(3 * WIDTH // 4, near_top), WAVE)


def test_set_file_shares_the_players_decode(qtbot, tmp_path: Path) -> None:
    path = tmp_path / "pad.flac"
    sf.write(path, stereo_sound(1.5), RATE)
    player = Player()
    try:
        view = WaveformView(player=player)
        qtbot.addWidget(view)
        with qtbot.waitSignal(view.peaks_ready, timeout=5000) as blocker:
            view.set_file(path)
        assert blocker.args[0] == str(path)
        assert view.duration == pytest.approx(1.5)
        assert player.decoded(path) is not None  # decoded once, now cached for playback
    finally:
        player.close()


def test_thumbnails_are_cached_and_hidpi(tmp_path: Path, qtbot) -> None:
    path = tmp_path / "hit.wav"
    sf.write(path, stereo_sound(0.5), RATE)
    small = thumbnail(path, 80, 20, device_pixel_ratio=2.0)
    assert (small.width(), small.height()) == (160, 40)
    assert small.devicePixelRatio() == 2.0
    assert thumbnail(path, 80, 20, device_pixel_ratio=2.0).cacheKey() == small.cacheKey()

    loader = ThumbnailLoader()
    other = tmp_path / "other.wav"
    sf.write(other, stereo_sound(0.3), RATE)
    assert loader.request(other, 64, 16) is None
    with qtbot.waitSignal(loader.ready, timeout=5000) as blocker:
        pass
    assert blocker.args[0] == str(other)
    assert loader.request(other, 64, 16) is not None


def test_long_file_thumbnails_read_slices_but_see_the_loud_part(tmp_path: Path) -> None:
    rate = 8000
    sound = np.zeros(60 * rate, np.float32)
    sound[45 * rate: 50 * rate] = 0.8  # a loud stretch three quarters in
    path = tmp_path / "field.wav"
    sf.write(path, sound, rate)
    peaks = file_peaks(path, 100)
    loud = np.flatnonzero(peaks[:, 1] > 0.5) / len(peaks)
    assert len(loud) > 0 and 0.7 < loud.min() and loud.max() < 0.86
    assert min_max_peaks(sound, 60)[46, 1] == pytest.approx(0.8)


def _close(colour: QColor, target: QColor, tolerance: int = 40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour.getRgb()[:3], target.getRgb()[:3]))
