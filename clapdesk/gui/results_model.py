"""The results table: search hits (or a browsed folder) as a QAbstractTableModel.

Rows are core `Hit`s. `SORT_ROLE` gives raw numbers so the proxy sorts durations and tempos as
numbers, `OBJECT_ROLE` gives the Hit itself, and `mimeData` turns selected rows into file URLs
so that dragging rows into a DAW or a file manager drops the files themselves.
"""

from __future__ import annotations

import math
import os
import urllib.parse
from collections.abc import Callable, Sequence

from PySide6.QtCore import (
    QAbstractTableModel,
    QByteArray,
    QMimeData,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    QUrl,
)
from PySide6.QtGui import QColor, QFont, QPixmap

from clapdesk.core.search.ranking import Hit
from clapdesk.core.store.catalog import FileRecord, display_path

WAVE, NAME, MATCH, DURATION, BPM, KEY, KIND, TAGS, FOLDER = range(9)
HEADERS = ("Wave", "Name", "Match", "Length", "BPM", "Key", "Type", "Tags", "Folder")
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
OBJECT_ROLE = Qt.ItemDataRole.UserRole + 2
SCORE_ROLE = Qt.ItemDataRole.UserRole + 3  # the match bar's length, 0..1
URI_LIST = "text/uri-list"
EDITED_MARK = " ✎"  # beside a tempo or key the producer set (in italics too)
EDITABLE = (BPM, KEY)
# What the Match column says of a sound the model has not heard yet (a first indexing run).
NOT_HEARD = "not heard yet"
NOT_HEARD_TIP = ("Not listened to yet: found by its name, folder, tags, tempo or key. Indexing "
                 "has not reached it; it is ranked by its sound as soon as it has.")

Index = QModelIndex | QPersistentModelIndex


def file_url(path: str) -> QUrl:
    """A file:// URL from the path's exact bytes, so names that are not UTF-8 still drop right."""
    raw = os.fsencode(os.path.abspath(path))
    if os.sep == "\\":  # Windows: QUrl knows drive letters and backslashes
        return QUrl.fromLocalFile(path)
    return QUrl.fromEncoded(QByteArray(b"file://" + urllib.parse.quote_from_bytes(raw).encode()))


def format_duration(seconds: float | None) -> str:
    """One format for every length, so a column of them reads and lines up: "0:06.5", "1:12.0"."""
    if seconds is None or math.isnan(seconds):
        return ""
    tenths = int(round(seconds * 10))
    minutes, rest = divmod(tenths, 600)
    return f"{minutes}:{rest // 10:02d}.{rest % 10}"


class ResultsModel(QAbstractTableModel):
    def __init__(self, parent: object | None = None,
                 edit_cell: Callable[[Hit, int, str], bool] | None = None) -> None:
        super().__init__(parent)  # type: ignore[arg-type]
        # Typing into a BPM or Key cell hands (hit, column, text) to this; it writes the
        # correction and says whether it took (the core is the window's to reach, not the model's).
        self.edit_cell = edit_cell
        self._hits: list[Hit] = []
        self._scored = False
        self._best = 1.0
        self._worst = 0.0
        self.thumbnail: Callable[[str], QPixmap | None] | None = None  # set by the window
        self.drag_paths: Callable[[list[FileRecord]], list[str]] | None = None  # project_audition
        self._sort_column = -1
        self._sort_order = Qt.SortOrder.AscendingOrder

    # -- filling ------------------------------------------------------------------------------
    def not_heard(self) -> int:
        """Rows the model has not heard yet (found by name during a first indexing run)."""
        return sum(1 for hit in self._hits if not hit.heard)

    def set_hits(self, hits: Sequence[Hit], scored: bool = True) -> None:
        """Replace every row (a model reset: views keep nothing stale), in the current order."""
        self.beginResetModel()
        self._hits = list(hits)
        if self._sort_column >= 0:
            self._hits.sort(key=lambda h: self._key(h, self._sort_column),
                            reverse=self._sort_order == Qt.SortOrder.DescendingOrder)
        self._scored = scored and bool(self._hits)
        scores = [h.score for h in self._hits]
        self._best = max(scores) if scores else 1.0
        self._worst = min(scores) if scores else 0.0
        self.endResetModel()

    def hits(self) -> list[Hit]:
        return list(self._hits)

    def hit(self, row: int) -> Hit:
        return self._hits[row]

    def row_of(self, path: str) -> int:
        for row, hit in enumerate(self._hits):
            if hit.file.path == path:
                return row
        return -1

    def refresh_column(self, column: int, path: str | None = None) -> None:
        """Repaint one column (a thumbnail arrived) without a reset; one row when a path is given."""
        if not self._hits:
            return
        if path is not None:
            row = self.row_of(path)
            if row >= 0:
                at = self.index(row, column)
                self.dataChanged.emit(at, at, [Qt.ItemDataRole.DecorationRole])
            return
        self.dataChanged.emit(self.index(0, column), self.index(len(self._hits) - 1, column))

    def update_tags(self, tags_by_id: dict[int, list[str]]) -> None:
        """New tags for some files (edited by the user): those rows' Tags column repaints."""
        for row, hit in enumerate(self._hits):
            if hit.file.id in tags_by_id:
                hit.tags = list(tags_by_id[hit.file.id])
                at = self.index(row, TAGS)
                self.dataChanged.emit(at, at)

    def update_files(self, records: Sequence[FileRecord]) -> None:
        """Files re-read after their tempo or key was corrected: those rows' cells repaint."""
        by_id = {r.id: r for r in records}
        for row, hit in enumerate(self._hits):
            if hit.file.id in by_id:
                hit.file = by_id[hit.file.id]
                self.dataChanged.emit(self.index(row, BPM), self.index(row, KEY))

    @property
    def scored(self) -> bool:
        return self._scored

    # -- the table ----------------------------------------------------------------------------
    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._hits)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(HEADERS)

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and 0 <= section < len(HEADERS):
            if role == Qt.ItemDataRole.DisplayRole:
                return HEADERS[section]
            if role == Qt.ItemDataRole.ToolTipRole and section == MATCH:
                return ("How well the sound matches the search: how far it stands above your "
                        "library's typical sound for this query (0 % is typical)")
        return None

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or not 0 <= index.row() < len(self._hits):
            return None
        hit = self._hits[index.row()]
        column = index.column()
        if role == OBJECT_ROLE:
            return hit
        if role == Qt.ItemDataRole.DisplayRole:
            return self._display(hit, column)
        if role == Qt.ItemDataRole.EditRole and column in EDITABLE:
            f = hit.file
            return (f"{f.bpm:g}" if f.bpm is not None else "") if column == BPM else (f.key or "")
        if role == Qt.ItemDataRole.FontRole and self._edited(hit, column):
            font = QFont()
            font.setItalic(True)
            return font
        if role == SORT_ROLE:
            return self._sort_value(hit, column)
        if role == SCORE_ROLE and column == MATCH:
            if not self._scored or not hit.heard:
                return None
            if hit.match is not None:  # calibrated per query over the library (search/match.py)
                return hit.match / 100.0
            # Too few files to calibrate against: the bar is relative to this list alone.
            span = self._best - self._worst
            return 1.0 if span <= 1e-9 else 0.15 + 0.85 * (hit.score - self._worst) / span
        if role == Qt.ItemDataRole.ToolTipRole:
            if column == MATCH and not hit.heard:
                return NOT_HEARD_TIP
            if column in (NAME, FOLDER):
                return display_path(hit.file.path)
            if column in EDITABLE:
                return self._tempo_tip(hit, column)
            if column == TAGS and hit.tags:
                return ", ".join(hit.tags)
        if role == Qt.ItemDataRole.ForegroundRole and column == MATCH and not hit.heard:
            return QColor(Qt.GlobalColor.gray)
        if role == Qt.ItemDataRole.DecorationRole and column == WAVE and self.thumbnail:
            return self.thumbnail(hit.file.path)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (DURATION, BPM, MATCH):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def _display(self, hit: Hit, column: int) -> str | None:
        f = hit.file
        if column == NAME:
            return display_path(f.name)
        if column == MATCH:
            # The readable match ("78 %"), never CLAP's raw cosine, which means nothing to a
            # person (0.13 can be the best match there is, -0.01 a fair one).
            if not hit.heard:
                return NOT_HEARD
            return hit.match_text if self._scored else ""
        if column == DURATION:
            return format_duration(f.duration)
        if column == BPM:
            if f.bpm is None:
                return ""
            mark = EDITED_MARK if f.bpm_edited else ""
            return f"{f.bpm:.0f}" + (f" ({hit.note})" if hit.note else "") + mark
        if column == KEY:
            return (f.key or "") + (EDITED_MARK if f.key and f.key_edited else "")
        if column == KIND:
            return {"loop": "Loop", "one-shot": "One-shot"}.get(f.kind or "", f.kind or "")
        if column == TAGS:
            return ", ".join(hit.tags[:6])
        if column == FOLDER:
            return display_path(os.path.basename(os.path.dirname(f.path)))
        return None

    def _sort_value(self, hit: Hit, column: int) -> object:
        f = hit.file
        if column == MATCH:
            # Sounds not heard yet after every ranked one, in the order search gave them.
            return float(hit.score) if hit.heard else -10.0
        if column == DURATION:
            return float(f.duration if f.duration is not None else -1.0)
        if column == BPM:
            return float(f.bpm if f.bpm is not None else -1.0)
        if column == KEY:
            return (f.key or "").lower()  # not the edited mark
        if column == WAVE:
            return float(f.peak_db if f.peak_db is not None else -200.0)
        value = self._display(hit, column)
        return (value or "").lower()

    @staticmethod
    def _edited(hit: Hit, column: int) -> bool:
        return (column == BPM and hit.file.bpm_edited) or (column == KEY and hit.file.key_edited)

    @staticmethod
    def _tempo_tip(hit: Hit, column: int) -> str:
        f = hit.file
        how = "F2 or Ctrl+K to correct it"
        if column == BPM:
            note = f"; matches at {hit.note} time" if hit.note else ""
            if f.bpm_edited:
                was = f"{f.analysed_bpm:g} BPM" if f.analysed_bpm is not None else "none"
                return f"Your tempo (analysis: {was}){note}. {how}, or empty it to go back"
            source = {"audio": "from the audio", "filename": "from the file name"}.get(
                f.bpm_source or "", "")
            return f"Tempo {source}{note}. {how}" if f.bpm is not None else f"No tempo found. {how}"
        if f.key_edited:
            return f"Your key (analysis: {f.analysed_key or 'none'}). {how}, or empty it to go back"
        source = {"audio": "from the audio", "filename": "from the file name"}.get(f.key_source or "", "")
        return f"Key {source}. {how}" if f.key else f"No key found. {how}"

    def setData(self, index: Index, value: object, role: int = Qt.ItemDataRole.EditRole) -> bool:
        """A BPM or Key cell typed into: the window writes the correction (empty clears it)."""
        if (role != Qt.ItemDataRole.EditRole or not index.isValid() or index.column() not in EDITABLE
                or self.edit_cell is None or not 0 <= index.row() < len(self._hits)):
            return False
        return bool(self.edit_cell(self._hits[index.row()], index.column(), str(value or "")))

    # -- sorting ------------------------------------------------------------------------------
    def _key(self, hit: Hit, column: int) -> tuple[int, object]:
        value = self._sort_value(hit, column)
        return (0, value) if isinstance(value, float) else (1, value)

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        """Sort the rows themselves: one Python sort, instead of a proxy asking data() per compare.

        A proxy comparing through data() costs about a second for 5,000 rows; this costs
        milliseconds. Persistent indexes (the selection, the current row) follow their rows.
        """
        self._sort_column, self._sort_order = column, order
        if column < 0 or not self._hits:
            return
        self.layoutAboutToBeChanged.emit()
        before = self.persistentIndexList()
        rows_before = [(i.row(), i.column()) for i in before]
        tagged = sorted(enumerate(self._hits), key=lambda pair: self._key(pair[1], column),
                        reverse=order == Qt.SortOrder.DescendingOrder)
        new_row = {old: new for new, (old, _) in enumerate(tagged)}
        self._hits = [hit for _, hit in tagged]
        after = [self.index(new_row[row], col) for row, col in rows_before]
        self.changePersistentIndexList(before, after)
        self.layoutChanged.emit()

    # -- dragging out -------------------------------------------------------------------------
    def flags(self, index: Index) -> Qt.ItemFlag:
        base = super().flags(index)
        if index.isValid():
            editable = Qt.ItemFlag.ItemIsEditable if (
                index.column() in EDITABLE and self.edit_cell is not None) else Qt.ItemFlag.NoItemFlags
            return base | Qt.ItemFlag.ItemIsDragEnabled | editable
        return base

    def mimeTypes(self) -> list[str]:
        return [URI_LIST, "text/plain"]

    def supportedDragActions(self) -> Qt.DropAction:
        return Qt.DropAction.CopyAction

    def mimeData(self, indexes: Sequence[QModelIndex]) -> QMimeData:
        rows = sorted({i.row() for i in indexes if i.isValid() and i.model() is self})
        paths = [self._hits[r].file.path for r in rows if 0 <= r < len(self._hits)]
        if self.drag_paths is not None:  # with a lock on: the rendered files (what is heard)
            paths = self.drag_paths([self._hits[r].file for r in rows if 0 <= r < len(self._hits)])
        data = QMimeData()
        data.setUrls([file_url(p) for p in paths])
        data.setText("\n".join(display_path(p) for p in paths))
        return data

    def paths(self, rows: Sequence[int]) -> list[str]:
        return [self._hits[r].file.path for r in rows if 0 <= r < len(self._hits)]


class ResultsProxy(QSortFilterProxyModel):
    """The view's model: filtering stays with the proxy, sorting is done by the results model."""

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        source = self.sourceModel()
        if source is not None:
            source.sort(column, order)
