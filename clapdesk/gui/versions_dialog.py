"""Library > Model versions…: every fine-tuned version with its figures on packs it never saw;
activate one, go back to the base model, or delete one.

Switching runs on the model pool (a version made before files were added re-projects their
stored features first); deleting only removes files and rows, so it runs at once.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.finetune import versions
from clapdesk.core.library import Library
from clapdesk.gui.workers import TaskRunner

log = logging.getLogger(__name__)

BASE_ROW = "The base model"
COLUMNS = ("Version", "Made", "Test P@10 before → after", "What changed", "")


def figures_text(info: dict) -> str:
    before, after = info.get("before") or {}, info.get("after") or {}
    if "P@10" not in before or "P@10" not in after:
        return ""
    counts = info.get("counts") or {}
    judged = f" ({counts['test']} test files)" if "test" in counts else ""
    return f"{before['P@10']:.2f} → {after['P@10']:.2f}{judged}"


def change_text(info: dict) -> str:
    summary = info.get("summary") or []
    return summary[0] if summary else ""


class VersionsDialog(QDialog):
    """Emits `modelChanged(model_key)` once a switch is done."""

    modelChanged = Signal(str)  # noqa: N815 - Qt signal naming

    def __init__(self, library: Library, runner: TaskRunner | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.runner = runner if runner is not None else TaskRunner(self)
        self.busy = False
        self.setWindowTitle("Model versions")
        layout = QVBoxLayout(self)
        self.status = QLabel()
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(list(COLUMNS))
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.setWordWrap(True)
        layout.addWidget(self.table, 1)
        row = QHBoxLayout()
        self.activate_button = QPushButton("Search with this version")
        self.revert_button = QPushButton("Back to the base model")
        self.delete_button = QPushButton("Delete version")
        self.activate_button.clicked.connect(self.activate_selected)
        self.revert_button.clicked.connect(self.revert)
        self.delete_button.clicked.connect(self.delete_selected)
        for button in (self.activate_button, self.revert_button, self.delete_button):
            row.addWidget(button)
        row.addStretch(1)
        layout.addLayout(row)
        close = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        close.rejected.connect(self.reject)
        layout.addWidget(close)
        self.resize(820, 360)
        self.refresh()

    # -- the list ------------------------------------------------------------------------------
    def refresh(self) -> None:
        active = self.library.active_version
        listed = versions.list_versions(self.library.paths.models,
                                        self.library.identity.encoder_key, active)
        self.names: list[str | None] = [None, *(v.name for v in reversed(listed))]
        self.table.setRowCount(len(self.names))
        self._set_row(0, [BASE_ROW, "", "", "as it came, before any fine-tuning",
                          "in use" if active is None else ""])
        for r, v in enumerate(reversed(listed), start=1):
            self._set_row(r, [v.name, v.to_json()["created"], figures_text(v.info),
                              change_text(v.info), "in use" if v.active else ""])
        self.table.resizeRowsToContents()
        self.status.setText(
            "Search uses the base model." if active is None else
            f"Search uses your fine-tuned version “{active}”. Figures are from packs each "
            "version never saw.")
        self._update_buttons()

    def _set_row(self, row: int, cells: list[str]) -> None:
        for col, text in enumerate(cells):
            item = QTableWidgetItem(text)
            item.setToolTip(text)
            if col == len(cells) - 1:
                item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
            self.table.setItem(row, col, item)

    def selected(self) -> str | None:
        """The selected version's name; None for the base row or nothing selected."""
        rows = self.table.selectionModel().selectedRows()
        return self.names[rows[0].row()] if rows else None

    def select(self, name: str | None) -> None:
        self.table.selectRow(self.names.index(name))

    def _update_buttons(self) -> None:
        name, active = self.selected(), self.library.active_version
        self.activate_button.setEnabled(not self.busy and name is not None and name != active)
        self.revert_button.setEnabled(not self.busy and active is not None)
        self.delete_button.setEnabled(not self.busy and name is not None and name != active)

    # -- the actions ---------------------------------------------------------------------------
    def activate_selected(self) -> None:
        name = self.selected()
        if name is None or self.busy:
            return
        self._switch(f"Switching to “{name}”…", versions.activate, self.library, name)

    def revert(self) -> None:
        if self.library.active_version is None or self.busy:
            return
        self._switch("Going back to the base model…", versions.revert, self.library)

    def _switch(self, message: str, fn: object, *args: object) -> None:
        self.busy = True
        self.status.setText(message)
        self._update_buttons()
        self.runner.submit(fn, *args, pool="model", name="model version",  # type: ignore[arg-type]
                           on_result=self._switched, on_error=self._failed)

    def _switched(self, model_key: str) -> None:
        self.busy = False
        self.refresh()
        self.modelChanged.emit(model_key)

    def _failed(self, exc: BaseException) -> None:
        self.busy = False
        self.refresh()
        if not isinstance(exc, versions.VersionError):
            log.error("switching versions failed", exc_info=(type(exc), exc, exc.__traceback__))
        self.status.setText(f"Could not switch: {exc}")

    def delete_selected(self, confirm: bool = True) -> None:
        name = self.selected()
        if name is None or self.busy or name == self.library.active_version:
            return
        if confirm and QMessageBox.question(
                self, "Delete version", f"Delete the fine-tuned version “{name}”? The base "
                "model and your other versions are kept.") != QMessageBox.StandardButton.Yes:
            return
        try:
            versions.delete(self.library, name)
        except versions.VersionError as exc:
            self.status.setText(str(exc))
            return
        self.refresh()

    def wait(self, timeout_ms: int = 30000) -> bool:
        return self.runner.wait("model", timeout_ms)
