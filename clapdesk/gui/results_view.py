"""The results table view: rows selected whole, dragged out as files, sized in characters."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, Qt
from PySide6.QtWidgets import QAbstractItemView, QHeaderView, QTableView, QWidget

from clapdesk.core.search.ranking import Hit
from clapdesk.gui.delegates import MatchBarDelegate
from clapdesk.gui.results_model import (
    BPM,
    DURATION,
    FOLDER,
    KEY,
    KIND,
    MATCH,
    NAME,
    NOT_HEARD,
    OBJECT_ROLE,
    TAGS,
    ResultsModel,
    ResultsProxy,
)

# Column widths in characters of the current font, so they stay right at any display scale.
COLUMN_CHARS = ((NAME, 30), (MATCH, 11), (DURATION, 9), (BPM, 7), (KEY, 11), (KIND, 10),
                (FOLDER, 16))


class ResultsView(QTableView):
    def __init__(self, model: ResultsModel, proxy: ResultsProxy,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.results = model
        self.proxy = proxy
        self.setModel(proxy)
        self.sortByColumn(NAME, Qt.SortOrder.AscendingOrder)
        self.setSortingEnabled(True)
        self.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.setDragEnabled(True)  # a plain drag, no modifier: the rows become file URLs
        self.setDragDropMode(QAbstractItemView.DragDropMode.DragOnly)
        self.setDefaultDropAction(Qt.DropAction.CopyAction)
        self.setAlternatingRowColors(True)
        self.setTabKeyNavigation(False)  # Tab moves on to the next control; arrows move rows
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(self.fontMetrics().height() + 10)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(TAGS, QHeaderView.ResizeMode.Stretch)
        # The theme's style sheet sets the table's font: measured before it applies, every
        # column came out a tenth narrower than meant (9 pt against the sheet's 10 pt).
        self.ensurePolished()
        em = self.fontMetrics().horizontalAdvance("0")
        for column, chars in COLUMN_CHARS:
            self.setColumnWidth(column, chars * em)
        # A first run's rows read "not heard yet" there: whole, not cut to "not heard …".
        self.setColumnWidth(MATCH, max(self.columnWidth(MATCH),
                                       self.fontMetrics().horizontalAdvance(NOT_HEARD) + 2 * em))
        self.setItemDelegateForColumn(MATCH, MatchBarDelegate(self))
        self.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        # F2 types a tempo or key into its cell; a double-click stays "play from the start".
        self.setEditTriggers(QAbstractItemView.EditTrigger.EditKeyPressed)

    def current_hit(self) -> Hit | None:
        index = self.currentIndex()
        return index.data(OBJECT_ROLE) if index.isValid() else None

    def selected_hits(self) -> list[Hit]:
        """The selected rows in view order; the current row when nothing is selected."""
        rows = sorted(self.selectionModel().selectedRows(), key=lambda i: i.row())
        hits = [i.data(OBJECT_ROLE) for i in rows]
        current = self.current_hit()
        return hits or ([current] if current is not None else [])

    def select_paths(self, paths: list[str]) -> None:
        """Select these files again after the rows were replaced (the first becomes current)."""
        selection = self.selectionModel()
        flags = QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows
        first = True
        for path in paths:
            row = self.results.row_of(path)
            if row < 0:
                continue
            index = self.proxy.mapFromSource(self.results.index(row, 0))
            if first:
                selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
                first = False
            selection.select(index, flags)
