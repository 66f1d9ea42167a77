"""One search field, debounced, with the parsed constraints shown as removable chips.

Typing restarts a 250 ms timer; when it fires, `search_requested(text, parsed)` is emitted with
the query parsed by the core. A chip's × removes that constraint (`ParsedQuery.without`) and
searches again with the same words; editing the text brings constraints back from the words.
"""

from __future__ import annotations

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCompleter,
    QFrame,
    QHBoxLayout,
    QLineEdit,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.search.query import Constraint, ParsedQuery, parse_query
from clapdesk.gui.theme import icon

DEBOUNCE_MS = 250


class SearchBar(QWidget):
    search_requested = Signal(str, object)  # raw text, ParsedQuery
    cleared = Signal()

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
        completer = QCompleter(self.history_model, self)
        completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        completer.setFilterMode(Qt.MatchFlag.MatchContains)
        self.field.setCompleter(completer)

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
        layout.addWidget(self.chips)

        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(DEBOUNCE_MS)
        self.timer.timeout.connect(self.fire)
        self.field.textEdited.connect(self._edited)
        self.field.returnPressed.connect(self.fire)
        self.parsed: ParsedQuery = ParsedQuery()
        self._text_of_parsed = ""

    # -- typing -------------------------------------------------------------------------------
    def _edited(self, _text: str) -> None:
        self.timer.start()

    def set_text(self, text: str, search: bool = True) -> None:
        """Put a query in the field (from history or a test) and search at once."""
        self.field.setText(text)
        if search:
            self.fire()

    def text(self) -> str:
        return self.field.text()

    def fire(self) -> None:
        self.timer.stop()
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

    def set_history(self, queries: list[str]) -> None:
        self.history_model.setStringList(queries)

    # -- chips --------------------------------------------------------------------------------
    def chip_labels(self) -> list[str]:
        return [c.label for c in self.parsed.constraints()]

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
        self.chips.setVisible(bool(constraints))
