"""The map's drawing surface: every sound a dot, panned and zoomed at display rate.

The dots are rasterised with numpy into a cached QImage. benchmarks/bench_map.py measured it
against QPainter.drawPoints and a QOpenGLWidget panning 100k points on Xvfb, on a loaded 2-core
machine: blitting the cache took 3.8 ms a frame (17 ms at the 95th percentile), drawing every
point each frame 199 ms with QPainter and 1.3 s through the software GL that Xvfb offers. The
cache also works the same offscreen, on Xvfb and on a real screen.
While a drag pans or the wheel zooms, each frame only blits the cache, moved or scaled; the dots
are drawn again once the gesture rests. Hit-testing, the lasso and arrow walking ask the
KD-tree in core/map/geometry.py.
"""

from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, QTimer, Signal
from PySide6.QtGui import (
    QColor,
    QImage,
    QKeyEvent,
    QMouseEvent,
    QPainter,
    QPainterPath,
    QPaintEvent,
    QPen,
    QResizeEvent,
    QWheelEvent,
)
from PySide6.QtWidgets import QWidget

from clapdesk.core.map.geometry import MapGeometry
from clapdesk.core.map.picture import BACKGROUND, PALETTE

RESTED_MS = 120  # after the last pan or zoom step, the dots are drawn again at the new view
HIT_PIXELS = 7.0  # how near the pointer a dot must be to count as under it
CLICK_PIXELS = 4  # a press and release closer than this is a click, not a drag
DIM = 0.22  # brightness of the dots a search did not find
ARROWS = {Qt.Key.Key_Left: (-1, 0), Qt.Key.Key_Right: (1, 0), Qt.Key.Key_Up: (0, 1),
          Qt.Key.Key_Down: (0, -1)}


def _argb(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (0xFF000000 | (rgb[:, 0] << 16) | (rgb[:, 1] << 8) | rgb[:, 2]).astype(np.uint32)


class MapCanvas(QWidget):
    hovered = Signal(int)  # a point index came under the pointer
    clicked = Signal(int)
    walked = Signal(int)  # the arrow keys moved the current point
    lassoed = Signal(object)  # np.ndarray of the point indices inside a lasso

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setMouseTracking(True)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setMinimumSize(200, 160)
        self.geometry_ = MapGeometry(np.zeros((0, 2)))
        self.positions = np.zeros((0, 2), np.float64)
        self.codes = np.zeros(0, np.int64)
        self.light: np.ndarray | None = None
        self.current: int | None = None
        self.hover: int | None = None
        self.scale = 1.0  # pixels per map unit
        self.centre = np.zeros(2, np.float64)
        self.fitted = True  # the whole map in view, until the producer pans or zooms
        self.cache: QImage | None = None
        self._cache_view: tuple[float, float, float] = (1.0, 0.0, 0.0)  # scale, cx, cy drawn
        self._order = np.zeros(0, np.int64)
        self._colours = np.zeros(0, np.uint32)
        self._press: QPointF | None = None
        self._pan_from: np.ndarray | None = None
        self._lasso: list[QPointF] | None = None
        self.rest_timer = QTimer(self)
        self.rest_timer.setSingleShot(True)
        self.rest_timer.setInterval(RESTED_MS)
        self.rest_timer.timeout.connect(self.redraw)

    # -- data -------------------------------------------------------------------------------
    def set_points(self, positions: np.ndarray, codes: np.ndarray) -> None:
        self.positions = np.asarray(positions, np.float64).reshape(-1, 2)
        self.geometry_ = MapGeometry(self.positions)
        self.codes = np.asarray(codes, np.int64)
        self.light = None
        self.current = self.hover = None
        self.fit()
        self._recolour()

    def set_codes(self, codes: np.ndarray) -> None:
        self.codes = np.asarray(codes, np.int64)
        self._recolour()

    def set_light(self, light: np.ndarray | None) -> None:
        """0..1 per point (a search's hits by score, the rest 0), or None: all at full colour."""
        self.light = None if light is None else np.asarray(light, np.float32)
        self._recolour()

    def _recolour(self) -> None:
        rgb = PALETTE[np.clip(self.codes, 0, len(PALETTE) - 1)].astype(np.float32)
        if self.light is not None and len(self.light) == len(rgb):
            factor = np.where(self.light > 0, 0.55 + 0.45 * self.light, DIM)
            rgb = rgb * factor[:, None] + np.array(BACKGROUND, np.float32) * (1 - factor[:, None])
            self._order = np.argsort(self.light, kind="stable")  # the lit dots drawn last, on top
        else:
            self._order = np.arange(len(rgb))
        self._colours = _argb(np.clip(rgb, 0, 255))
        self.redraw()

    # -- the view ---------------------------------------------------------------------------
    def fit(self) -> None:
        self.fitted = True
        if len(self.positions) == 0:
            self.scale, self.centre = 1.0, np.zeros(2)
            return
        low, high = self.positions.min(axis=0), self.positions.max(axis=0)
        span = np.maximum(high - low, 1e-9)
        self.centre = (low + high) / 2
        self.scale = 0.9 * min(max(1, self.width()) / span[0], max(1, self.height()) / span[1])

    def to_pixels(self, positions: np.ndarray) -> np.ndarray:
        """Widget pixel coordinates of map positions (y grows upwards on the map)."""
        p = np.asarray(positions, np.float64).reshape(-1, 2)
        x = (p[:, 0] - self.centre[0]) * self.scale + self.width() / 2
        y = self.height() / 2 - (p[:, 1] - self.centre[1]) * self.scale
        return np.stack([x, y], axis=1)

    def to_map(self, x: float, y: float) -> np.ndarray:
        return np.array([(x - self.width() / 2) / self.scale + self.centre[0],
                         (self.height() / 2 - y) / self.scale + self.centre[1]])

    def redraw(self) -> None:
        """Rasterise every dot at the current view into the cache (numpy, no per-point call)."""
        width, height = max(1, self.width()), max(1, self.height())
        buffer = np.full((height, width), _argb(np.array([BACKGROUND]))[0], np.uint32)
        if len(self.positions):
            pixels = np.rint(self.to_pixels(self.positions[self._order])).astype(np.int64)
            colours = self._colours[self._order]
            size = 2 if self.scale * 0.02 < 3 else 3
            for dy in range(size):
                for dx in range(size):
                    x, y = pixels[:, 0] + dx - size // 2, pixels[:, 1] + dy - size // 2
                    ok = (x >= 0) & (x < width) & (y >= 0) & (y < height)
                    buffer[y[ok], x[ok]] = colours[ok]
        self.cache = QImage(buffer.data, width, height, width * 4,
                            QImage.Format.Format_ARGB32).copy()  # copy: own the pixels
        self._cache_view = (self.scale, float(self.centre[0]), float(self.centre[1]))
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(*BACKGROUND))
        if self.cache is not None:
            # The cache was drawn at an earlier view: show it moved and scaled to this one.
            scale, cx, cy = self._cache_view
            ratio = self.scale / scale
            origin = self.to_pixels(np.array([[cx, cy]]))[0]
            w, h = self.cache.width() * ratio, self.cache.height() * ratio
            if abs(ratio - 1.0) < 1e-9:  # panning: a plain blit, no scaling
                painter.drawImage(QPointF(origin[0] - w / 2, origin[1] - h / 2), self.cache)
            else:
                painter.drawImage(QRectF(origin[0] - w / 2, origin[1] - h / 2, w, h), self.cache)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for index, colour in ((self.hover, QColor(255, 255, 255, 160)),
                              (self.current, QColor(255, 255, 255))):
            if index is not None and index < len(self.positions):
                x, y = self.to_pixels(self.positions[index])[0]
                painter.setPen(QPen(colour, 2))
                painter.drawEllipse(QPointF(x, y), 6, 6)
        if self._lasso:
            path = QPainterPath(self._lasso[0])
            for point in self._lasso[1:]:
                path.lineTo(point)
            painter.setPen(QPen(QColor(255, 255, 255, 200), 1, Qt.PenStyle.DashLine))
            painter.drawPath(path)
        painter.end()

    def resizeEvent(self, event: QResizeEvent) -> None:
        if self.fitted:
            self.fit()
        self.rest_timer.start()
        super().resizeEvent(event)

    # -- pointer and keys -------------------------------------------------------------------
    def point_at(self, x: float, y: float) -> int | None:
        at = self.to_map(x, y)
        return self.geometry_.nearest(at[0], at[1], HIT_PIXELS / self.scale)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self.setFocus(Qt.FocusReason.MouseFocusReason)
        if event.button() != Qt.MouseButton.LeftButton:
            return
        self._press = event.position()
        if event.modifiers() & Qt.KeyboardModifier.ShiftModifier:
            self._lasso = [event.position()]
        else:
            self._pan_from = self.centre.copy()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._lasso is not None:
            self._lasso.append(event.position())
            self.update()
        elif self._press is not None and self._pan_from is not None:
            delta = event.position() - self._press
            self.centre = self._pan_from - np.array([delta.x(), -delta.y()]) / self.scale
            self.fitted = False
            self.update()  # a blit of the cache, moved
        else:
            index = self.point_at(event.position().x(), event.position().y())
            if index != self.hover:
                self.hover = index
                self.update()
                if index is not None:
                    self.hovered.emit(index)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if event.button() != Qt.MouseButton.LeftButton or self._press is None:
            return
        moved = (event.position() - self._press).manhattanLength()
        lasso, self._lasso, self._press = self._lasso, None, None
        self._pan_from = None
        if lasso is not None and len(lasso) >= 3:
            polygon = np.array([self.to_map(p.x(), p.y()) for p in lasso])
            self.lassoed.emit(self.geometry_.inside(polygon))
            self.update()
        elif moved < CLICK_PIXELS:
            index = self.point_at(event.position().x(), event.position().y())
            if index is not None:
                self.current = index
                self.update()
                self.clicked.emit(index)
        else:
            self.redraw()  # the pan ended: draw the dots at the new view

    def wheelEvent(self, event: QWheelEvent) -> None:
        steps = event.angleDelta().y() / 120.0
        if not steps:
            return
        anchor = event.position()
        before = self.to_map(anchor.x(), anchor.y())
        self.scale *= 1.25 ** steps
        self.fitted = False
        after = self.to_map(anchor.x(), anchor.y())
        self.centre += before - after  # the point under the pointer stays under it
        self.update()
        self.rest_timer.start()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        direction = ARROWS.get(Qt.Key(event.key()))
        if direction is None or len(self.positions) == 0:
            super().keyPressEvent(event)
            return
        if self.current is None:
            start = self.point_at(self.width() / 2, self.height() / 2)
            target = start if start is not None else int(self.geometry_.tree.query(self.centre)[1])
        else:
            target = self.geometry_.step(self.current, *direction)
        if target is None:
            return
        self.current = target
        self._keep_visible(target)
        self.update()
        self.walked.emit(target)

    def _keep_visible(self, index: int) -> None:
        x, y = self.to_pixels(self.positions[index])[0]
        margin = 24
        if not (margin <= x <= self.width() - margin and margin <= y <= self.height() - margin):
            self.centre = self.positions[index].copy()
            self.redraw()

    def select(self, index: int | None) -> None:
        self.current = index
        self.update()


def pixel_of(canvas: MapCanvas, index: int) -> QPoint:
    """Where a point is drawn, as a QPoint (for tests and tooltips)."""
    x, y = canvas.to_pixels(canvas.positions[index])[0]
    return QPoint(int(round(x)), int(round(y)))
