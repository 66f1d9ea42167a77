"""The Settings dialog, built from the declared settings, plus the library folders."""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.embed.hub import DEFAULT_MODEL
from clapdesk.gui import model_notices
from clapdesk.gui.settings import SETTINGS, Setting, Settings


def output_devices() -> list[str]:
    """Names of the audio outputs; empty when PortAudio is missing."""
    try:
        import sounddevice
    except OSError:
        return []
    try:
        return [d["name"] for d in sounddevice.query_devices() if d["max_output_channels"] > 0]
    except Exception:  # noqa: BLE001 - no audio system at all
        return []


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, folders: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.settings = settings
        self.editors: dict[str, QWidget] = {}
        tabs = QTabWidget(self)
        general = QWidget(tabs)
        form = QFormLayout(general)
        for setting in SETTINGS:
            editor = self._editor(setting, settings.get(setting.key))
            editor.setToolTip(setting.help)
            self.editors[setting.key] = editor
            if isinstance(editor, QCheckBox):
                form.addRow("", editor)
            else:
                form.addRow(setting.label, editor)
            if setting.key == "model":
                self.model_info = model_notices.add_model_info(
                    general, form, editor, settings.get("model") or DEFAULT_MODEL)
        tabs.addTab(general, "General")

        library = QWidget(tabs)
        self.folder_list = QListWidget(library)
        self.folder_list.addItems(folders)
        add = QPushButton("Add folder…", library)
        add.clicked.connect(self._add_folder)
        remove = QPushButton("Remove", library)
        remove.clicked.connect(self._remove_folder)
        buttons_row = QHBoxLayout()
        buttons_row.addWidget(add)
        buttons_row.addWidget(remove)
        buttons_row.addStretch(1)
        library_layout = QVBoxLayout(library)
        library_layout.addWidget(self.folder_list)
        library_layout.addLayout(buttons_row)
        tabs.addTab(library, "Library folders")

        box = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                               | QDialogButtonBox.StandardButton.Cancel, self)
        box.accepted.connect(self.accept)
        box.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(tabs)
        layout.addWidget(box)

    def _editor(self, setting: Setting, value: Any) -> QWidget:
        if isinstance(setting.default, bool):
            box = QCheckBox(setting.label, self)
            box.setChecked(bool(value))
            return box
        if isinstance(setting.default, int):
            spin = QSpinBox(self)
            spin.setRange(int(setting.minimum), int(setting.maximum or 1_000_000))
            spin.setValue(int(value))
            return spin
        if setting.choices or setting.key == "audio_output":
            combo = QComboBox(self)
            choices = list(setting.choices)
            if setting.key == "audio_output":
                choices = ["", *output_devices()]
                combo.setEditable(True)
            combo.addItems([c or "System default" for c in choices])
            combo.setProperty("choices", choices)
            if value in choices:
                combo.setCurrentIndex(choices.index(value))
            elif value:
                combo.setEditText(str(value))
            return combo
        line = QLineEdit(str(value), self)
        line.setPlaceholderText(str(setting.default) or setting.help)
        return line

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a library folder")
        if folder and not self.folder_list.findItems(folder, Qt.MatchFlag.MatchExactly):
            self.folder_list.addItem(folder)

    def _remove_folder(self) -> None:
        for item in self.folder_list.selectedItems():
            self.folder_list.takeItem(self.folder_list.row(item))

    def folders(self) -> list[str]:
        return [self.folder_list.item(i).text() for i in range(self.folder_list.count())]

    def chosen(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, editor in self.editors.items():
            if isinstance(editor, QCheckBox):
                out[key] = editor.isChecked()
            elif isinstance(editor, QSpinBox):
                out[key] = editor.value()
            elif isinstance(editor, QComboBox):
                choices = editor.property("choices") or []
                at = editor.currentIndex()
                text = editor.currentText()
                out[key] = choices[at] if 0 <= at < len(choices) and editor.itemText(at) == text \
                    else text
            elif isinstance(editor, QLineEdit):
                out[key] = editor.text().strip()
        return out

    def save(self) -> None:
        for key, value in self.chosen().items():
            self.settings.set(key, value)
        self.settings.sync()
