"""How the results table answers the producer's hands: selection that auditions, a click that
plays, arrows from the search field into the results, and the row menu.

Kept apart from main_window.py so that each file reads in one sitting; `ResultRows` is a mixin of
MainWindow and uses its view, search bar and audition controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QItemSelectionModel, QModelIndex, QObject, Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QApplication, QMenu

from clapdesk.core.search.ranking import Hit
from clapdesk.gui.actions import ROW_MENU
from clapdesk.gui.results_model import NAME, OBJECT_ROLE

if TYPE_CHECKING:
    from clapdesk.gui.main_window import MainWindow

    _Base = MainWindow
else:
    _Base = object


class ResultRows(_Base):
    def selected_hits(self) -> list[Hit]:
        return self.view.selected_hits()

    def selected_paths(self) -> list[str]:
        return [h.file.path for h in self.view.selected_hits()]

    def current_hit(self) -> Hit | None:
        return self.view.current_hit()

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid() or self._restoring:
            return
        hit = current.data(OBJECT_ROLE)
        ahead = []
        for offset in range(1, 5):
            below = current.siblingAtRow(current.row() + offset)
            if below.isValid():
                ahead.append(below.data(OBJECT_ROLE).file.path)
        if QApplication.mouseButtons() != Qt.MouseButton.NoButton:
            self.audition.player.predecode(ahead)  # a click plays from `pressed`, at once
            return
        self.audition.selection_moved(hit.file.path, ahead)

    def _pressed(self, index: QModelIndex) -> None:
        if QApplication.keyboardModifiers() != Qt.KeyboardModifier.NoModifier:
            return  # Ctrl/Shift-click builds a selection; it should not blast sounds
        hit = index.data(OBJECT_ROLE)
        if hit is not None:
            self.audition.clicked(hit.file.path, self._current_at_press == hit.file.path)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.view.viewport() and event.type() == QEvent.Type.MouseButtonPress:
            current = self.current_hit()
            self._current_at_press = current.file.path if current else None
        elif watched is self.search.field and event.type() == QEvent.Type.KeyPress:
            key = event.key() if isinstance(event, QKeyEvent) else None
            plain = isinstance(event, QKeyEvent) and not event.modifiers() & (
                Qt.KeyboardModifier.AltModifier | Qt.KeyboardModifier.ControlModifier)
            if plain and key in (Qt.Key.Key_Up, Qt.Key.Key_Down, Qt.Key.Key_PageUp,
                                 Qt.Key.Key_PageDown) and self.proxy.rowCount():
                # Arrowing from the search field goes to the results: Down to the first row,
                # the best match, which plays. Giving the view focus first would make row 0
                # current on its own and the key would then move past it.
                self.search.hide_history()
                if key == Qt.Key.Key_Down:
                    self.go_to_first_row()
                    return True
                self.view.setFocus()
                QApplication.sendEvent(self.view, event)
                return True
        return super().eventFilter(watched, event)

    def go_to_first_row(self) -> None:
        """Select the first row and audition it, as arrowing onto it would."""
        first = self.proxy.index(0, NAME)
        was_current = self.view.currentIndex().row() == 0
        self.view.selectionModel().setCurrentIndex(
            first, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        self.view.setFocus(Qt.FocusReason.OtherFocusReason)
        self.view.scrollTo(first)
        if was_current:  # no currentRowChanged: play it all the same
            self._current_changed(first, first)

    def _row_menu(self, at: object) -> None:
        if self.current_hit() is None:
            return
        menu = QMenu(self)
        for name in ROW_MENU:
            menu.addAction(self.actions_by_name[name])
        menu.popup(self.view.viewport().mapToGlobal(at))  # type: ignore[arg-type]
