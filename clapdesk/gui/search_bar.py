"""One search field, debounced, with the parsed constraints shown as removable chips.

Typing restarts a 250 ms timer; when it fires, `search_requested(text, parsed)` is emitted with
the query parsed by the core. A chip's × removes that constraint (`ParsedQuery.without`) and
searches again with the same words; editing the text brings constraints back from the words.

A sound can be the query too: a file dropped on the field (from the file manager, another app
or a DAW: text/uri-list, which Qt also fills from the macOS and Windows file drags), Find
similar, or a recording. The field then shows it as the "Sounds like …" chip, and the words
typed beside it steer the sound (`sound_search_requested(words)`) with the amount slider and
the aspect choice under the field; removing the chip goes back to plain text search.

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
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListView,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.search.query import Constraint, ParsedQuery, parse_query
from clapdesk.gui.theme import icon

ASPECT_CHOICES = (("Sounds alike", None), ("Similar in timbre", "timbre"),
                  ("Similar in pitch", "pitch"), ("Similar in rhythm", "rhythm"))
TEXT_PLACEHOLDER = ('Describe a sound: "dark analog bass one-shot", "dusty drum loop at 90 bpm '
                    'in A minor", or drop a sound here')
WORDS_PLACEHOLDER = 'Words steer the sound: "darker", "more punch", "-reverb", "at 120 BPM"'


def dropped_file(mime: object) -> str | None:
    """The local file a drag carries (the first one), or None for text and remote URLs."""
    if mime is None or not mime.hasUrls():  # type: ignore[attr-defined]
        return None
    for url in mime.urls():  # type: ignore[attr-defined]
        if url.isLocalFile():
            return url.toLocalFile()
    return None

DEBOUNCE_MS = 250
HISTORY_ROWS = 8  # the history list's height in rows, at most


class SearchBar(QWidget):
    search_requested = Signal(str, object)  # raw text, ParsedQuery
    cleared = Signal()
    similar_cleared = Signal()  # the "Sounds like …" chip was removed
    sound_dropped = Signal(str)  # a file was dropped on the field
    sound_search_requested = Signal(str)  # the words beside the sound chip (amount, aspect: below)
    record_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.field = QLineEdit(self)
        self.field.setObjectName("search")
        self.field.setClearButtonEnabled(True)
        self.field.setPlaceholderText(TEXT_PLACEHOLDER)
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
        self.record_button = self.field.addAction(icon("record"),
                                                  QLineEdit.ActionPosition.TrailingPosition)
        self.record_button.setToolTip("Record a sound to search with (Ctrl+Shift+R)")
        self.record_button.triggered.connect(self.record_requested)
        self.setAcceptDrops(True)  # the chips row takes a dropped sound as the field does
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
        layout.addWidget(self._sound_tools())

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.fire)
        self.field.textEdited.connect(self._edited)
        self.field.returnPressed.connect(self.fire)
        self.parsed: ParsedQuery = ParsedQuery()
        self._text_of_parsed = ""
        self.similar_to = ""  # the sound's name while a "Sounds like …" search is on show

    def _sound_tools(self) -> QFrame:
        """How far words steer the sound, and which aspect of it counts: shown with the chip."""
        self.tools = QFrame(self)
        self.tools.setObjectName("sound_tools")
        row = QHBoxLayout(self.tools)
        row.setContentsMargins(0, 0, 0, 0)
        self.aspect = QComboBox(self.tools)
        self.aspect.setObjectName("aspect")
        for label, value in ASPECT_CHOICES:
            self.aspect.addItem(label, value)
        self.aspect.setToolTip("Rank by the whole sound, or by its timbre (brightness, loudness), "
                               "pitch (key) or rhythm (tempo, loop or one-shot)")
        self.aspect.currentIndexChanged.connect(lambda _=0: self.fire())
        self.amount_label = QLabel("Words steer 50 %", self.tools)
        self.amount = QSlider(Qt.Orientation.Horizontal, self.tools)
        self.amount.setObjectName("steer_amount")
        self.amount.setRange(0, 100)
        self.amount.setValue(50)
        self.amount.setFixedWidth(160)
        self.amount.setToolTip("How far the words beside the sound move the search: 0 % is the "
                               "sound alone, 100 % turns it furthest toward the words")
        self.amount.valueChanged.connect(self._amount_moved)
        row.addWidget(self.aspect)
        row.addSpacing(12)
        row.addWidget(self.amount_label)
        row.addWidget(self.amount)
        row.addStretch(1)
        self.tools.hide()
        return self.tools

    def _amount_moved(self, value: int) -> None:
        self.amount_label.setText(f"Words steer {value} %")
        if self.similar_to and self.field.text().strip():
            self.timer.start()  # debounced like typing: dragging the slider is one search

    @property
    def steer_amount(self) -> float:
        return self.amount.value() / 100.0

    @property
    def chosen_aspect(self) -> str | None:
        return self.aspect.currentData()

    def set_aspect(self, aspect: str | None) -> None:
        """Show `aspect` as chosen without searching (Find similar in … chose it)."""
        at = next(i for i, (_, value) in enumerate(ASPECT_CHOICES) if value == aspect)
        blocked = self.aspect.blockSignals(True)
        self.aspect.setCurrentIndex(at)
        self.aspect.blockSignals(blocked)

    # -- dropping a sound ---------------------------------------------------------------------
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:  # noqa: N802 - Qt's name
        if dropped_file(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:  # noqa: N802 - Qt's name
        path = dropped_file(event.mimeData())
        if path:
            event.acceptProposedAction()
            self.sound_dropped.emit(path)

    # -- typing -------------------------------------------------------------------------------
    def _edited(self, _text: str) -> None:
        if self.history.isVisible():
            self._filter_history()
        self.timer.start()

    def set_text(self, text: str, search: bool = True) -> None:
        """Put a query in the field (from history or a test) and search at once."""
        self.similar_to = ""  # a remembered query is a text search again
        self.field.setPlaceholderText(TEXT_PLACEHOLDER)
        self.tools.hide()
        self.field.setText(text)
        if search:
            self.fire()

    def text(self) -> str:
        return self.field.text()

    def fire(self) -> None:
        self.timer.stop()
        text = self.field.text().strip()
        if self.similar_to:  # words beside a sound steer it
            self._show_chips()
            self.sound_search_requested.emit(text)
            return
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
        """A "Sounds like NAME" search is on show. A new sound clears the old query and its
        chips; the same sound keeps the words that steer it."""
        if name == self.similar_to:
            return
        self.timer.stop()
        self.field.clear()
        self.parsed, self._text_of_parsed = ParsedQuery(), ""
        self.similar_to = name
        self.field.setPlaceholderText(WORDS_PLACEHOLDER)
        self._show_chips()

    def clear_similar(self) -> None:
        self.similar_to = ""
        self.field.setPlaceholderText(TEXT_PLACEHOLDER)
        self._show_chips()
        self.similar_cleared.emit()

    # -- history ------------------------------------------------------------------------------
    def set_history(self, queries: list[str]) -> None:
        if queries == self.history_model.stringList():
            return  # read again while indexing: an open list keeps its selection
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
        if watched is self.field and event.type() in (QEvent.Type.DragEnter, QEvent.Type.DragMove,
                                                      QEvent.Type.Drop):
            return self._field_drag(event)  # type: ignore[arg-type]
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

    def _field_drag(self, event: QDropEvent) -> bool:
        """A file dragged onto the field is a sound to search with, not text to insert;
        dragged text still goes into the field as Qt does it."""
        path = dropped_file(event.mimeData())
        if not path:
            return False
        event.acceptProposedAction()
        if event.type() == QEvent.Type.Drop:
            self.sound_dropped.emit(path)
        return True

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
        self.tools.setVisible(bool(self.similar_to))
