"""The Settings dialog, built from the declared settings, plus the library folders."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
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
    QLabel,
    QLineEdit,
    QListWidget,
    QMessageBox,
    QPushButton,
    QSpinBox,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.embed.hub import DEFAULT_MODEL, ModelError, check_model_folder
from clapdesk.core.store.paths import default_exports_dir
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


def input_devices() -> list[str]:
    """Names of the devices Record can capture from; empty when PortAudio is missing."""
    from clapdesk.core.ingest.recording import input_devices as devices

    return [d.name for d in devices()]


@lru_cache(maxsize=1)
def gpu_devices() -> tuple[str, ...]:
    """The GPU back-ends torch can use on this computer (torch is imported by the model anyway)."""
    try:
        import torch
    except ImportError:
        return ()
    found = []
    if torch.cuda.is_available():
        found.append("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return tuple(found)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: what makes bfloat16 pay on a CPU (Linux tells; elsewhere, no)."""
    from clapdesk.core.index.precision_choice import native_precisions

    return "bfloat16" in native_precisions()


def offered(setting: Setting, current: Any) -> list[str]:
    """The choices that work here: no cuda or mps without one, no float16 without a GPU,
    bfloat16 only where the CPU or a GPU does it natively. A saved value is always kept."""
    choices = list(setting.choices)
    if setting.key == "device":
        choices = [c for c in choices if c in ("auto", "cpu") or c in gpu_devices()]
    elif setting.key == "precision":
        gpu = bool(gpu_devices())
        choices = [c for c in choices if c not in ("float16", "bfloat16") or gpu
                   or (c == "bfloat16" and cpu_has_native_bf16())]
    if current and current not in choices:
        choices.append(current)
    return choices


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, folders: list[str], parent: QWidget | None = None,
                 model_in_use: str = "") -> None:
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
                # Which model is in use, wherever it came from (command line, CLAPDESK_MODEL,
                # the library), even when this field is empty.
                self.model_in_use = QLabel(f"In use now: {model_in_use or 'not known yet'}"
                                           + _model_source(settings.get("model"), model_in_use),
                                           general)
                self.model_in_use.setWordWrap(True)
                self.model_in_use.setTextInteractionFlags(
                    Qt.TextInteractionFlag.TextSelectableByMouse)
                form.addRow("", self.model_in_use)
                self.model_info = model_notices.add_model_info(
                    general, form, editor, model_in_use or DEFAULT_MODEL)
                if model_in_use and isinstance(editor, QLineEdit):
                    editor.setPlaceholderText(model_in_use)
            elif setting.key == "export_folder" and isinstance(editor, QLineEdit):
                editor.setPlaceholderText(str(default_exports_dir()))
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
        if setting.choices or setting.key in ("audio_output", "audio_input"):
            combo = QComboBox(self)
            choices = offered(setting, value)
            if setting.key in ("audio_output", "audio_input"):
                devices = output_devices() if setting.key == "audio_output" else input_devices()
                choices = ["", *devices]
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

    def accept(self) -> None:
        """A model folder that holds no model is refused here, with why, before it is saved."""
        model = self.chosen().get("model", "")
        if model and _looks_like_a_folder(model):
            try:
                if not os.path.isdir(os.path.expanduser(model)):
                    raise ModelError(f"the model folder '{model}' does not exist")
                check_model_folder(Path(model).expanduser())
            except ModelError as exc:
                QMessageBox.warning(self, "Not a model folder",
                                    f"{exc}\n\nChoose a folder holding a CLAP model (with "
                                    "config.json and model.safetensors), or a Hugging Face id.")
                self.editors["model"].setFocus()
                return
        super().accept()

    def _add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a library folder", str(Path.home()))
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


def _looks_like_a_folder(ref: str) -> bool:
    """A Hugging Face id is "owner/name"; anything else with a slash, or that exists, is a path."""
    return os.path.isdir(os.path.expanduser(ref)) or ref.startswith((".", "/", "~")) \
        or ref.count("/") > 1 or "\\" in ref


def _model_source(saved: str, in_use: str) -> str:
    if not in_use:
        return ""
    if saved and saved == in_use:
        return " (from these settings)"
    if os.environ.get("CLAPDESK_MODEL") == in_use:
        return " (from CLAPDESK_MODEL)"
    return " (this library's model)" if not saved else " (the settings' model applies from the next start)"
