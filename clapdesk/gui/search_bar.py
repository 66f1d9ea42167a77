"""One search field, debounced, with the parsed constraints shown as removable chips.

Typing restarts a 250 ms timer; when it fires, `search_requested(text, parsed)` is emitted with
the query parsed by the core. A chip's × removes that constraint (`ParsedQuery.without`) and
searches again with the same words; editing the text brings constraints back from the words.

Search history offers and never captures: it is a list shown in place under the field (it
pushes the results down rather than covering their header), opened on demand (Alt+Down or the
history button) and closed by Esc. Typing never opens it and Down from the field always goes to
the results, so a remembered query can never take the place of the best match.
"""

from __future__ import annotations

from PySide6.QtCore import (
    QEvent,
    QModelIndex,
    QObject,
    QSortFilterProxyModel,
    QStringListModel,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.search.query import Constraint, ParsedQuery, parse_query
from clapdesk.gui.theme import icon

DEBOUNCE_MS = 250
HISTORY_ROWS = 8  # the history list's height in rows, at most


class SearchBar(QWidget):
    search_requested = Signal(str, object)  # raw text, ParsedQuery
    cleared = Signal()
    similar_cleared = Signal()  # the "Sounds like …" chip was removed

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = QLineEdit(self)
        self.field.setObjectName("search")
        self.field.setClearButtonEnabled(True)
        self.field.setPlaceholderText(
            'Describe a sound: "dark analog bass one-shot", "dusty drum loop at 90 bpm in A minor"')
        self.field.addAction(icon("search"), QLineEdit.ActionPosition.LeadingPosition)
        self.field.setToolTip("Search (Ctrl+F). Tempo, key, loop/one-shot, length and "
                              "'no …' words become filters shown below.")
        self.history_model = QStringListModel(self)
        self.history_filter = QSortFilterProxyModel(self)
        self.history_filter.setSourceModel(self.history_model)
        self.history_filter.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.history_button = self.field.addAction(icon("history"),
                                                   QLineEdit.ActionPosition.TrailingPosition)
        self.history_button.setToolTip("Search history (Alt+Down)")
        self.history_button.triggered.connect(self.toggle_history)
        self.history = QListView(self)
        self.history.setObjectName("history")
        self.history.setModel(self.history_filter)
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.setUniformItemSizes(True)
        self.history.clicked.connect(self._history_chosen)
        self.history.activated.connect(self._history_chosen)
        self.history.hide()
        self.field.installEventFilter(self)
        self.history.installEventFilter(self)

        self.chips = QFrame(self)
        self.chips.setObjectName("chips")
        self.chip_layout = QHBoxLayout(self.chips)
        self.chip_layout.setContentsMargins(0, 0, 0, 0)
        self.chip_layout.addStretch(1)
        self.chips.hide()

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        layout.addWidget(self.field)
        # Where the search box is, what stops text search (a model whose text tower failed
        # its health check), so the producer reads it where they typed, not in a status bar.
        self.notice = QLabel(self)
        self.notice.setObjectName("search_notice")
        self.notice.setWordWrap(True)
        self.notice.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.notice.hide()
        layout.addWidget(self.notice)
        layout.addWidget(self.history)
        layout.addWidget(self.chips)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.fire)
        self.field.textEdited.connect(self._edited)
        self.field.returnPressed.connect(self.fire)
        self.parsed: ParsedQuery = ParsedQuery()
        self._text_of_parsed = ""
        self.similar_to = ""  # the file name of a "Sounds like …" search on show

    # -- typing -------------------------------------------------------------------------------
    def _edited(self, _text: str) -> None:
        self.similar_to = ""
        if self.history.isVisible():
            self._filter_history()
        self.timer.start()

    def set_text(self, text: str, search: bool = True) -> None:
        """Put a query in the field (from history or a test) and search at once."""
        self.similar_to = ""
        self.field.setText(text)
        if search:
            self.fire()

    def text(self) -> str:
        return self.field.text()

    def fire(self) -> None:
        self.timer.stop()
        self.similar_to = ""
        text = self.field.text().strip()
        if text != self._text_of_parsed:
            self.parsed = parse_query(text)
            self._text_of_parsed = text
        self._show_chips()
        if not text:
            self.cleared.emit()
            return
        self.search_requested.emit(text, self.parsed)

    def remove_chip(self, chip: Constraint) -> None:
        self.parsed = self.parsed.without(chip)
        self._show_chips()
        self.search_requested.emit(self._text_of_parsed, self.parsed)

    def show_similar(self, name: str) -> None:
        """A "Sounds like NAME" search is on show: the old query and its chips go."""
        self.timer.stop()
        self.field.clear()
        self.parsed, self._text_of_parsed = ParsedQuery(), ""
        self.similar_to = name
        self._show_chips()

    def clear_similar(self) -> None:
        self.similar_to = ""
        self._show_chips()
        self.similar_cleared.emit()

    # -- history ------------------------------------------------------------------------------
    def set_history(self, queries: list[str]) -> None:
        self.history_model.setStringList(queries)
        if self.history.isVisible():
            self._filter_history()

    def show_history(self) -> None:
        """Offer the remembered queries that contain the field's words (all of them when empty)."""
        self._filter_history()
        if self.history_filter.rowCount():
            self.history.show()

    def hide_history(self) -> None:
        if self.history.isVisible():
            self.history.hide()
            if self.history.hasFocus():
                self.field.setFocus()

    def toggle_history(self) -> None:
        if self.history.isVisible():
            self.hide_history()
        else:
            self.show_history()
            self.history.setFocus()
            self.history.setCurrentIndex(self.history_filter.index(0, 0))

    def _filter_history(self) -> None:
        self.history_filter.setFilterFixedString(self.field.text().strip())
        rows = min(HISTORY_ROWS, max(1, self.history_filter.rowCount()))
        self.history.setFixedHeight(rows * self.history.sizeHintForRow(0) + 4
                                    if self.history_filter.rowCount() else 0)
        if not self.history_filter.rowCount():
            self.history.hide()

    def _history_chosen(self, index: QModelIndex) -> None:
        text = index.data()
        self.hide_history()
        self.field.setFocus()
        if text:
            self.set_text(str(text))

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if watched not in (self.field, self.history) or not isinstance(event, QKeyEvent):
            return super().eventFilter(watched, event)
        key, alt = event.key(), bool(event.modifiers() & Qt.KeyboardModifier.AltModifier)
        if event.type() == QEvent.Type.ShortcutOverride:
            # Esc is also the window's Stop shortcut: while the history is open it closes that.
            if key == Qt.Key.Key_Escape and self.history.isVisible():
                event.accept()
                return True
            return False
        if event.type() != QEvent.Type.KeyPress:
            return False
        if key == Qt.Key.Key_Escape and self.history.isVisible():
            self.hide_history()
            return True
        if alt and key == Qt.Key.Key_Down:
            self.toggle_history()
            return True
        if watched is self.history and key == Qt.Key.Key_Up and \
                self.history.currentIndex().row() <= 0:
            self.field.setFocus()
            return True
        return False

    # -- chips --------------------------------------------------------------------------------
    def show_notice(self, text: str) -> None:
        self.notice.setText(text)
        self.notice.show()

    def clear_notice(self) -> None:
        self.notice.clear()
        self.notice.hide()

    def chip_labels(self) -> list[str]:
        similar = [f"Sounds like {self.similar_to}"] if self.similar_to else []
        return similar + [c.label for c in self.parsed.constraints()]

    def _show_chips(self) -> None:
        while self.chip_layout.count() > 1:
            item = self.chip_layout.takeAt(0)
            widget = item.widget() if item else None
            if widget is not None:
                widget.deleteLater()
        constraints = self.parsed.constraints() if self._text_of_parsed else []
        for at, chip in enumerate(constraints):
            button = QToolButton(self.chips)
            button.setObjectName("chip")
            button.setText(f"{chip.label}  ×")
            button.setToolTip(f"Remove the filter '{chip.label}'")
            button.setAutoRaise(True)
            button.clicked.connect(lambda _=False, c=chip: self.remove_chip(c))
            self.chip_layout.insertWidget(at, button)
        if self.similar_to:
            button = QToolButton(self.chips)
            button.setObjectName("chip")
            button.setText(f"Sounds like {self.similar_to}  ×")
            button.setToolTip("Back to browsing")
            button.setAutoRaise(True)
            button.clicked.connect(lambda _=False: self.clear_similar())
            self.chip_layout.insertWidget(0, button)
        self.chips.setVisible(bool(constraints) or bool(self.similar_to))
