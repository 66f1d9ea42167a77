"""The waveform of the selected sound, its playhead and region drag-out; row thumbnails.

API (GUI thread):

    view = WaveformView(parent=None, player=None, runner=None)  # with a Player, audio is decoded only once
    view.set_file(path | None)      # peaks are computed off-thread; call after player.play(path)
    view.set_audio(data, rate, path)  # audio already at hand: (frames, channels) float32
    view.set_position(seconds)      # connect Player.position; view.clear_position() on stopped
    view.selection                  # (start_s, end_s) or None
    view.set_selection(start_s, end_s); view.clear_selection()
    view.export_selection() -> Path # the region as a 24-bit WAV in view.export_folder
    view.region_mime(path) -> QMimeData   # text/uri-list with the file's URL
    view.drag_runner                # callable(QDrag); default drag.exec(CopyAction)
    Signals: seek_requested(float seconds), selection_changed(float, float),
             region_exported(str path), peaks_ready(str path)

Mouse: a click seeks; a drag (or shift-drag, which extends the current region) selects a
region; dragging from inside the selected region exports it and drags the file out.

    thumbnail(path, width, height, device_pixel_ratio=1.0) -> QPixmap  # cached, computed now
    ThumbnailLoader(parent, runner).request(path, w, h, dpr) -> QPixmap | None  # None: `ready(path)` later

Thumbnails read at most THUMB_PROBES short slices of a long file, so a row of an hour-long
recording costs about as much as a one-shot.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from PySide6.QtCore import QMimeData, QObject, QPointF, QRect, Qt, QUrl, Signal
from PySide6.QtGui import (
    QColor,
    QDrag,
    QMouseEvent,
    QPainter,
    QPaintEvent,
    QPixmap,
    QPolygonF,
    QResizeEvent,
)
from PySide6.QtWidgets import QApplication, QWidget

from clapdesk.core.ingest.audio import native_path, read_for_playback, write_region
from clapdesk.core.store.paths import LibraryPaths
from clapdesk.gui.workers import TaskRunner

BACKGROUND = QColor("#1b1d21")
CENTRE_LINE = QColor("#2c2f36")
WAVE = QColor("#5fb8c2")
WAVE_SELECTED = QColor("#f2c46d")
SELECTION = QColor(242, 196, 109, 48)
PLAYHEAD = QColor("#ff6b6b")

OVERVIEW_BINS = 4096  # enough for a 4K-wide window; redrawn at the widget's width from these
THUMB_FULL_READ_SECONDS = 30.0
THUMB_PROBES = 256
THUMB_PROBE_FRAMES = 2048
THUMB_CACHE = 4096

# Separate lanes of the app's TaskRunner, so fifty row thumbnails never delay the selected
# file's waveform. A view or loader made without a runner (a test) owns its own.
VIEW_LANE, THUMB_LANE = "peaks", "thumbs"


def min_max_peaks(mono: np.ndarray, bins: int) -> np.ndarray:
    """(bins, 2) of each bin's minimum and maximum; fewer bins when there are fewer samples."""
    if len(mono) == 0:
        return np.zeros((1, 2), np.float32)
    bins = max(1, min(bins, len(mono)))
    starts = np.linspace(0, len(mono), bins + 1).astype(np.int64)[:-1]
    return np.stack([np.minimum.reduceat(mono, starts), np.maximum.reduceat(mono, starts)],
                    axis=1).astype(np.float32)


def _mono(data: np.ndarray) -> np.ndarray:
    return data if data.ndim == 1 else data.mean(axis=1, dtype=np.float32)


def file_peaks(path: str | os.PathLike[str], bins: int) -> np.ndarray:
    """Peaks of a file for a thumbnail: all of a short file, evenly spaced slices of a long one."""
    with sf.SoundFile(native_path(path)) as handle:  # bytes: non-UTF-8 names open too
        frames = handle.frames
        # Judged in samples, never by the header's rate: a sparse 4 GiB file claiming 2^31 Hz
        # is "2 s long", and read whole it would take 8 GB.
        small = frames * handle.channels <= THUMB_FULL_READ_SECONDS * 48_000 * 2
        if small or not handle.seekable():
            budget = int(THUMB_FULL_READ_SECONDS * 48_000 * 2) // max(1, handle.channels)
            count = min(frames, budget) if frames > 0 else budget
            return min_max_peaks(_mono(handle.read(count, dtype="float32", always_2d=True)), bins)
        probes = min(bins, THUMB_PROBES)
        peaks = np.zeros((probes, 2), np.float32)
        for i, start in enumerate(np.linspace(0, frames - THUMB_PROBE_FRAMES, probes)):
            handle.seek(int(start))
            block = _mono(handle.read(THUMB_PROBE_FRAMES, dtype="float32", always_2d=True))
            if len(block):
                peaks[i] = block.min(), block.max()
        return peaks


def resample_peaks(peaks: np.ndarray, columns: int) -> np.ndarray:
    """Peaks at another width: merged bins when narrowing, repeated bins when widening."""
    if len(peaks) == columns:
        return peaks
    index = np.minimum((np.arange(columns + 1) * len(peaks)) // max(columns, 1), len(peaks))
    if len(peaks) > columns:
        starts = index[:-1]
        return np.stack([np.minimum.reduceat(peaks[:, 0], starts),
                         np.maximum.reduceat(peaks[:, 1], starts)], axis=1)
    return peaks[np.minimum(index[:-1], len(peaks) - 1)]


def peaks_polygon(peaks: np.ndarray, width: float, height: float, top: float = 0.0) -> QPolygonF:
    """The outline of a min/max waveform: the maxima left to right, the minima back."""
    columns = len(peaks)
    x = (np.arange(columns) + 0.5) * (width / max(columns, 1))
    middle, half = top + height / 2.0, height / 2.0
    upper = middle - np.clip(peaks[:, 1], -1, 1) * half
    lower = middle - np.clip(peaks[:, 0], -1, 1) * half
    # At least one pixel tall, so silence still reads as a line.
    lower = np.maximum(lower, upper + 1.0)
    xs = np.concatenate([x, x[::-1]])
    ys = np.concatenate([upper, lower[::-1]])
    return QPolygonF([QPointF(float(a), float(b)) for a, b in zip(xs, ys)])


def render_peaks(peaks: np.ndarray, width: int, height: int, dpr: float, colour: QColor,
                 background: QColor | None = None) -> QPixmap:
    """A HiDPI pixmap of the peaks: drawn at device pixels, shown at `width` x `height`."""
    device_w, device_h = max(1, round(width * dpr)), max(1, round(height * dpr))
    pixmap = QPixmap(device_w, device_h)
    pixmap.fill(background if background is not None else Qt.GlobalColor.transparent)
    painter = QPainter(pixmap)
    painter.setRenderHint(QPainter.RenderHint.Antialiasing)
    painter.setPen(Qt.PenStyle.NoPen)
    painter.setBrush(colour)
    painter.drawPolygon(peaks_polygon(resample_peaks(peaks, device_w), device_w, device_h))
    painter.end()
    pixmap.setDevicePixelRatio(dpr)
    return pixmap


# ----------------------------------------------------------------------------- thumbnails
_peaks_cache: OrderedDict[tuple[str, int], np.ndarray] = OrderedDict()
_pixmaps: OrderedDict[tuple[str, int, int, float], QPixmap] = OrderedDict()
_cache_lock = threading.Lock()


def _cached_peaks(path: str, bins: int) -> np.ndarray | None:
    with _cache_lock:
        return _peaks_cache.get((path, bins))


def _remember_peaks(path: str, bins: int, peaks: np.ndarray) -> None:
    with _cache_lock:
        _peaks_cache[(path, bins)] = peaks
        while len(_peaks_cache) > THUMB_CACHE:
            _peaks_cache.popitem(last=False)


def _thumbnail_pixmap(path: str, width: int, height: int, dpr: float,
                      peaks: np.ndarray) -> QPixmap:
    key = (path, width, height, dpr)
    pixmap = _pixmaps.get(key)
    if pixmap is None:
        pixmap = render_peaks(peaks, width, height, dpr, WAVE)
        _pixmaps[key] = pixmap
        while len(_pixmaps) > THUMB_CACHE:
            _pixmaps.popitem(last=False)
    return pixmap


def thumbnail(path: str | os.PathLike[str], width: int, height: int,
              device_pixel_ratio: float = 1.0) -> QPixmap:
    """A small waveform picture of `path` (GUI thread; computes now if not cached)."""
    path = os.fspath(path)
    bins = max(1, round(width * device_pixel_ratio))
    peaks = _cached_peaks(path, bins)
    if peaks is None:
        try:
            peaks = file_peaks(path, bins)
        except Exception:  # noqa: BLE001 - an unreadable file gets a flat line, not a crash
            peaks = np.zeros((1, 2), np.float32)
        _remember_peaks(path, bins, peaks)
    return _thumbnail_pixmap(path, width, height, device_pixel_ratio, peaks)


class ThumbnailLoader(QObject):
    """Thumbnails for result rows without decoding on the GUI thread."""

    ready = Signal(str)
    _computed = Signal(str)

    def __init__(self, parent: QObject | None = None, runner: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self._runner = runner if runner is not None else TaskRunner(self)
        self._pending: set[tuple[str, int]] = set()
        self._computed.connect(self.ready, Qt.ConnectionType.QueuedConnection)

    def request(self, path: str | os.PathLike[str], width: int, height: int,
                device_pixel_ratio: float = 1.0) -> QPixmap | None:
        path = os.fspath(path)
        bins = max(1, round(width * device_pixel_ratio))
        peaks = _cached_peaks(path, bins)
        if peaks is not None:
            return _thumbnail_pixmap(path, width, height, device_pixel_ratio, peaks)
        if (path, bins) not in self._pending:
            self._pending.add((path, bins))
            self._runner.lane(THUMB_LANE).submit(self._compute, path, bins)
        return None

    def _compute(self, path: str, bins: int) -> None:
        try:
            peaks = file_peaks(path, bins)
        except Exception:  # noqa: BLE001 - see thumbnail()
            peaks = np.zeros((1, 2), np.float32)
        _remember_peaks(path, bins, peaks)
        self._pending.discard((path, bins))
        self._computed.emit(path)


# ----------------------------------------------------------------------------- the view
class WaveformView(QWidget):
    seek_requested = Signal(float)
    selection_changed = Signal(float, float)
    region_exported = Signal(str)
    peaks_ready = Signal(str)
    _audio_ready = Signal(int, str, object, int, object)  # token, path, data, rate, peaks

    def __init__(self, parent: QWidget | None = None, player: Any = None,
                 runner: TaskRunner | None = None) -> None:
        super().__init__(parent)
        self._runner = runner if runner is not None else TaskRunner(self)
        self.export_folder = ""  # the Settings' "Region exports"; empty: LibraryPaths().exports
        self.player = player
        self.drag_runner: Callable[[QDrag], object] = \
            lambda drag: drag.exec(Qt.DropAction.CopyAction)
        self.setMinimumHeight(48)
        self.setMouseTracking(False)
        self._token = 0
        self._path: str | None = None
        self._data: np.ndarray | None = None
        self._rate = 0
        self._peaks: np.ndarray | None = None
        self._rendered: QPixmap | None = None
        self._position: float | None = None
        self._selection: tuple[float, float] | None = None
        self._press_x: float | None = None
        self._anchor = 0.0
        self._mode = ""
        self._audio_ready.connect(self._take_audio, Qt.ConnectionType.QueuedConnection)

    # ----------------------------------------------------------------- content
    @property
    def path(self) -> str | None:
        return self._path

    @property
    def duration(self) -> float:
        return len(self._data) / self._rate if self._data is not None and self._rate else 0.0

    @property
    def selection(self) -> tuple[float, float] | None:
        return self._selection

    def set_file(self, path: str | os.PathLike[str] | None) -> None:
        self._token += 1
        self._reset(os.fspath(path) if path is not None else None)
        if path is not None:
            self._runner.lane(VIEW_LANE).submit(self._load, self._token, os.fspath(path))

    def set_audio(self, data: np.ndarray, rate: int, path: str | os.PathLike[str]) -> None:
        self._token += 1
        self._reset(os.fspath(path))
        self._take_audio(self._token, os.fspath(path), data, rate,
                         min_max_peaks(_mono(data), OVERVIEW_BINS))

    def _reset(self, path: str | None) -> None:
        self._path, self._data, self._rate, self._peaks = path, None, 0, None
        self._rendered, self._position, self._selection, self._mode = None, None, None, ""
        self.update()

    def _load(self, token: int, path: str) -> None:
        if token != self._token:
            return  # another file was selected before this one's turn came
        try:
            data, rate = self.player.load(path) if self.player is not None \
                else read_for_playback(path)
        except Exception:  # noqa: BLE001 - the player reports decode errors; draw nothing
            return
        self._audio_ready.emit(token, path, data, rate, min_max_peaks(_mono(data), OVERVIEW_BINS))

    def _take_audio(self, token: int, path: str, data: np.ndarray, rate: int,
                    peaks: np.ndarray) -> None:
        if token != self._token:
            return
        self._data, self._rate, self._peaks, self._rendered = data, rate, peaks, None
        self.update()
        self.peaks_ready.emit(path)

    # ----------------------------------------------------------------- playhead and region
    def set_position(self, seconds: float) -> None:
        old = self._position
        self._position = seconds if seconds >= 0 else None
        for value in (old, self._position):
            if value is not None:
                x = round(self._x_for(value))
                self.update(QRect(x - 2, 0, 5, self.height()))

    def clear_position(self) -> None:
        self.set_position(-1.0)

    def set_selection(self, start: float, end: float) -> None:
        start, end = sorted((max(0.0, start), min(self.duration, end)))
        self._selection = (start, end) if end > start else None
        self.update()

    def clear_selection(self) -> None:
        self._selection = None
        self.update()

    def export_selection(self) -> Path:
        """Write the selected region as a 24-bit WAV in the exports folder and say where."""
        if self._data is None or self._selection is None or self._path is None:
            raise ValueError("no region is selected")
        start, end = self._selection
        first, last = round(start * self._rate), round(end * self._rate)
        stem = re.sub(r"[^\w.-]+", "_", Path(self._path).stem).strip("_") or "region"
        folder = Path(self.export_folder).expanduser() if self.export_folder \
            else LibraryPaths().exports
        target = folder / f"{stem}_{first}-{last}.wav"
        write_region(self._data, self._rate, first, last, target)
        self.region_exported.emit(str(target))
        return target

    def region_mime(self, path: Path) -> QMimeData:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        return mime

    # ----------------------------------------------------------------- geometry
    def _x_for(self, seconds: float) -> float:
        duration = self.duration
        return 0.0 if duration <= 0 else seconds / duration * self.width()

    def _seconds_at(self, x: float) -> float:
        if self.width() <= 0:
            return 0.0
        return float(np.clip(x / self.width(), 0.0, 1.0)) * self.duration

    # ----------------------------------------------------------------- mouse
    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if event.button() != Qt.MouseButton.LeftButton or self._data is None:
            return super().mousePressEvent(event)
        x = event.position().x()
        seconds = self._seconds_at(x)
        self._press_x = x
        shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if self._selection is not None and shift:
            start, end = self._selection
            self._anchor = start if abs(seconds - start) > abs(seconds - end) else end
            self._mode = "select"
            self.set_selection(self._anchor, seconds)
        elif self._selection is not None and self._selection[0] <= seconds <= self._selection[1]:
            self._mode = "maybe-drag-out"
        else:
            self._anchor, self._mode = seconds, "maybe-select"
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._press_x is None:
            return super().mouseMoveEvent(event)
        x = event.position().x()
        moved = abs(x - self._press_x) >= QApplication.startDragDistance()
        if self._mode == "maybe-select" and moved:
            self._mode = "select"
        if self._mode == "select":
            self.set_selection(self._anchor, self._seconds_at(x))
        elif self._mode == "maybe-drag-out" and moved:
            self._mode = ""
            self._press_x = None
            self._drag_region_out()
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802 - Qt override
        if self._press_x is None:
            return super().mouseReleaseEvent(event)
        if self._mode in ("maybe-select", "maybe-drag-out"):
            self.seek_requested.emit(self._seconds_at(event.position().x()))
        elif self._mode == "select" and self._selection is not None:
            self.selection_changed.emit(*self._selection)
        self._press_x, self._mode = None, ""
        event.accept()

    def _drag_region_out(self) -> None:
        try:
            target = self.export_selection()
        except (OSError, ValueError):
            return
        drag = QDrag(self)
        drag.setMimeData(self.region_mime(target))
        if self._data is not None and self._selection is not None:
            first, last = (round(s * self._rate) for s in self._selection)
            region = min_max_peaks(_mono(self._data[first:last]), 256)
            drag.setPixmap(render_peaks(region, 120, 32, self.devicePixelRatioF(),
                                        WAVE_SELECTED, BACKGROUND))
        self.drag_runner(drag)

    # ----------------------------------------------------------------- painting
    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 - Qt override
        self._rendered = None
        super().resizeEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 - Qt override
        painter = QPainter(self)
        painter.fillRect(self.rect(), BACKGROUND)
        width, height = self.width(), self.height()
        painter.setPen(CENTRE_LINE)
        painter.drawLine(0, height // 2, width, height // 2)
        if self._peaks is not None:
            dpr = self.devicePixelRatioF()
            if self._rendered is None or self._rendered.devicePixelRatio() != dpr:
                self._rendered = render_peaks(self._peaks, width, height, dpr, WAVE)
            painter.drawPixmap(0, 0, self._rendered)
        if self._selection is not None:
            left, right = (self._x_for(s) for s in self._selection)
            painter.fillRect(QRect(round(left), 0, max(1, round(right - left)), height),
                             SELECTION)
            painter.setPen(WAVE_SELECTED)
            painter.drawLine(round(left), 0, round(left), height)
            painter.drawLine(round(right), 0, round(right), height)
        if self._position is not None and self.duration > 0:
            x = round(self._x_for(self._position))
            painter.setPen(PLAYHEAD)
            painter.drawLine(x, 0, x, height)
        painter.end()
