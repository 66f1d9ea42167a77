"""The Map view beside the results table: the library laid out by sound.

Hover a dot to hear it (through the window's AuditionController, so the auto-play delay,
tempo and key lock and the transport all apply), click to play and select it, walk with the
arrow keys to the nearest sound in that direction, Shift-drag a lasso to list a region in the
results table (from where it drags out as usual). The table's current search lights its hits
up by score and dims the rest. Layouts run through the window's TaskRunner, with progress.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.map import library_map
from clapdesk.core.map.layout import LayoutCancelled
from clapdesk.core.map.picture import PALETTE, colour_codes
from clapdesk.core.search.ranking import Hit
from clapdesk.core.store import map_positions
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.map_positions import MapRows
from clapdesk.core.store.user_tags import tags_for_display
from clapdesk.gui.map_canvas import MapCanvas

if TYPE_CHECKING:
    from clapdesk.gui.main_window import MainWindow

COLOUR_BY = (("Type", "kind"), ("Key", "key"), ("Folder", "folder"), ("Tag", "tag"))
SHORTCUT = "Ctrl+Shift+M"


# -- jobs for the worker pool (no Qt) ---------------------------------------------------------
def load_map(catalog_path: Path, model_key: str, relayout: bool = False,
             progress: Callable[[float], None] | None = None,
             cancel: threading.Event | None = None) -> tuple[MapRows, dict[int, str]]:
    """The map as it should be shown (laid out the first time or on request, new files placed
    by their neighbours), with each file's first tag for colouring by tag."""
    catalog = Catalog(catalog_path)
    try:
        if relayout:
            library_map.relayout(catalog, model_key, progress, cancel)
        rows = library_map.current_map(catalog, model_key, progress, cancel)
        return rows, map_positions.first_tags(catalog, rows.file_ids.tolist())
    finally:
        catalog.close()


def load_hits(catalog_path: Path, file_ids: list[int]) -> list[Hit]:
    catalog = Catalog(catalog_path)
    try:
        records = [r for r in catalog.files(file_ids) if r.error is None]
        tags = tags_for_display(catalog, [r.id for r in records])
        return [Hit(r, 0.0, None, tags.get(r.id, [])) for r in records]
    finally:
        catalog.close()


class MapPanel(QWidget):
    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)
        self.window_ = window
        self.rows: MapRows | None = None
        self.tags: dict[int, str] = {}
        self.loading = False
        self.lasso_ids: set[int] | None = None  # the rows the table shows came from a lasso
        self.canvas = MapCanvas(self)
        self.colour = QComboBox(self)
        for label, key in COLOUR_BY:
            self.colour.addItem(label, key)
        self.colour.setToolTip("What the dots' colours show")
        self.colour.currentIndexChanged.connect(lambda _i: self._apply_colours())
        self.relayout_button = QPushButton("Lay out again", self)
        self.relayout_button.setToolTip("Lay the whole library out anew (new files are placed "
                                        "among their neighbours without this)")
        self.relayout_button.clicked.connect(lambda: self.load(relayout=True))
        self.status = QLabel("", self)
        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.progress.setMaximumWidth(160)
        self.progress.hide()
        self.legend = QLabel("", self)
        self.legend.setWordWrap(True)
        top = QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QLabel("Colour by", self))
        top.addWidget(self.colour)
        top.addWidget(self.relayout_button)
        top.addWidget(self.progress)
        top.addWidget(self.status, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.legend)
        self.canvas.hovered.connect(self._hovered)
        self.canvas.clicked.connect(self._clicked)
        self.canvas.walked.connect(self._hovered)  # arrowing plays as arrowing the table does
        self.canvas.lassoed.connect(self._lassoed)

    # -- loading ----------------------------------------------------------------------------
    def load(self, relayout: bool = False) -> None:
        if self.loading:
            return
        window = self.window_
        try:
            model_key = window.library.model_key
        except Exception as exc:  # noqa: BLE001 - a model that cannot be resolved: say why
            self.status.setText(f"The map needs the model: {exc}")
            return
        self.loading = True
        self.relayout_button.setEnabled(False)
        self.status.setText("Laying out the map…" if relayout or self.rows is None
                            else "Updating the map…")
        window.runner.submit(load_map, window.library.paths.catalog, model_key, relayout,
                             name="map", wants_cancel=True, on_progress=self._progress,
                             on_result=self._loaded, on_error=self._failed,
                             on_finished=self._finished)

    def _progress(self, fraction: float) -> None:
        self.progress.show()
        self.progress.setValue(int(round(100 * fraction)))

    def _finished(self) -> None:
        self.loading = False
        self.relayout_button.setEnabled(True)
        self.progress.hide()

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, LayoutCancelled):
            self.status.setText("Map layout cancelled")
        else:
            self.status.setText(f"The map could not be made: {exc}")
            self.window_.runner.report("map", exc)

    def _loaded(self, loaded: tuple[MapRows, dict[int, str]]) -> None:
        self.rows, self.tags = loaded
        placed = int(self.rows.placed.sum())
        self.status.setText(
            f"{len(self.rows)} sounds" + (f" ({placed} placed since the layout)" if placed else "")
            if len(self.rows) else "No sounds with vectors yet: index a folder first")
        self.canvas.set_points(self.rows.positions, self._codes())
        self._apply_colours()
        self.results_changed()

    # -- colours and light ------------------------------------------------------------------
    def _values(self) -> list[str | None]:
        rows = self.rows
        assert rows is not None
        by = self.colour.currentData()
        if by == "key":
            return rows.keys
        if by == "folder":
            return [Path(f).name for f in rows.folders()]
        if by == "tag":
            return [self.tags.get(int(i)) for i in rows.file_ids]
        return rows.kinds

    def _codes(self) -> np.ndarray:
        return colour_codes(self._values())[0] if self.rows is not None else np.zeros(0, np.int64)

    def _apply_colours(self) -> None:
        if self.rows is None:
            return
        codes, names = colour_codes(self._values())
        self.canvas.set_codes(codes)
        swatches = [f'<span style="color: rgb{tuple(int(c) for c in PALETTE[i])}">●</span> {n}'
                    for i, n in enumerate(names)]
        self.legend.setText("  ".join(swatches) + ("  <span style='color: gray'>● other</span>"
                                                   if names else ""))

    def results_changed(self) -> None:
        """The table's rows changed: a search lights its hits by score, a place its files."""
        if self.rows is None:
            return
        model = self.window_.model
        hits = model.hits()
        if model.scored:
            self.lasso_ids = None
            scores = {h.file.id: h.score for h in hits}
        elif self.lasso_ids is not None or self.window_.place[0] != "all":
            scores = {h.file.id: 1.0 for h in hits}
        else:
            self.canvas.set_light(None)  # the whole library: nothing to pick out
            return
        self.canvas.set_light(library_map.light_by_score(self.rows.file_ids, scores))

    # -- hearing and choosing ---------------------------------------------------------------
    def path_of(self, index: int) -> str:
        assert self.rows is not None
        return self.rows.paths[index]

    def _hovered(self, index: int) -> None:
        # The same path as arrowing the table: the auto-play delay debounces a sweep of the
        # pointer over many dots, so only the one it rests on plays.
        self.window_.audition.selection_moved(self.path_of(index), [])

    def _clicked(self, index: int) -> None:
        audition = self.window_.audition
        path = self.path_of(index)
        audition.clicked(path, was_current=audition.player.current_path == path)

    def _lassoed(self, indices: np.ndarray) -> None:
        if self.rows is None or len(indices) == 0:
            return
        ids = [int(self.rows.file_ids[i]) for i in indices]
        window = self.window_
        window.generation += 1  # answers to an earlier search or browse are dropped
        generation = window.generation
        self.status.setText(f"{len(ids)} sounds chosen")

        def show(hits: list[Hit]) -> None:
            if generation != window.generation:
                return
            self.lasso_ids = {h.file.id for h in hits}
            window._set_rows(hits, scored=False, title=f"{len(hits)} sounds chosen on the map")

        window.runner.submit(load_hits, window.library.paths.catalog, ids, name="map selection",
                             on_result=show)


def install_map(window: MainWindow) -> MapPanel:
    """Put the map beside the results table, behind View › Map of the library (Ctrl+Shift+M)."""
    panel = MapPanel(window)
    split = QSplitter(Qt.Orientation.Horizontal, window)
    split.setObjectName("map_split")
    at = window.results_split.indexOf(window.view)
    window.results_split.replaceWidget(at, split)
    split.addWidget(window.view)
    split.addWidget(panel)
    split.setStretchFactor(0, 1)
    split.setStretchFactor(1, 1)
    panel.hide()
    action = QAction("&Map of the library", window)
    action.setCheckable(True)
    action.setShortcut(QKeySequence(SHORTCUT))
    action.setToolTip("Every sound as a dot, similar sounds close together: hover to hear")

    def toggled(on: bool) -> None:
        panel.setVisible(on)
        if on:
            panel.load()  # the first time a layout; later only new files are placed
            panel.canvas.setFocus()

    action.toggled.connect(toggled)
    window.addAction(action)
    for menu_action in window.menuBar().actions():
        if menu_action.text().replace("&", "") == "View" and menu_action.menu() is not None:
            menu_action.menu().addAction(action)
    window.model.modelReset.connect(panel.results_changed)
    window.indexing.finished.connect(lambda _report: panel.load() if panel.isVisible() else None)
    window.map_action = action
    return panel
