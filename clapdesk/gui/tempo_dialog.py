"""Edit tempo and key…: the producer's own tempo and key for the selected sounds.

Each field shows what the sound has now and where that came from (the audio, the file name or
you); typing a value makes it yours, "Use analysis" clears it back to what clapdesk found. A
value that cannot be read says why under its field, and OK waits until both fields are right.
With several sounds selected, a field left as it is leaves each sound's own value alone.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.analysis.names import KEY_NAMES
from clapdesk.core.search.ranking import Hit
from clapdesk.core.store import user_tempo
from clapdesk.core.store.catalog import Catalog, FileRecord, display_path

SOURCE_WORDS = {"audio": "from the audio", "filename": "from the file name", "user": "yours"}


def describe_bpm(value: float | None, source: str | None) -> str:
    if value is None:
        return "none found"
    return f"{value:g} BPM ({SOURCE_WORDS.get(source or '', source or 'unknown')})"


def describe_key(value: str | None, source: str | None) -> str:
    if not value:
        return "none found"
    return f"{value} ({SOURCE_WORDS.get(source or '', source or 'unknown')})"


class TempoDialog(QDialog):
    def __init__(self, catalog: Catalog, hits: Sequence[Hit], parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.ids = [h.file.id for h in hits]
        records = catalog.files(self.ids)  # as stored now, not as the results were listed
        self.records: list[FileRecord] = records or [h.file for h in hits]
        self.setWindowTitle("Edit tempo and key")
        first = self.records[0]
        single = len(self.records) == 1

        layout = QVBoxLayout(self)
        what = display_path(first.name) if single else f"{len(self.records)} sounds"
        layout.addWidget(QLabel(f"Tempo and key of <b>{what}</b>:", self))
        form = QFormLayout()
        layout.addLayout(form)

        self.bpm = QLineEdit(self)
        self.bpm.setPlaceholderText("e.g. 120")
        self.bpm_cleared = False
        self.bpm_error = QLabel("", self)
        self.bpm_reset = QPushButton("Use analysis", self)
        self.bpm_reset.setToolTip("Forget your tempo: clapdesk's own reading counts again")
        self.key = QComboBox(self)
        self.key.setEditable(True)
        self.key.addItem("")
        self.key.addItems(list(KEY_NAMES))
        self.key.lineEdit().setPlaceholderText("e.g. A minor, F#m, Gb")
        self.key_cleared = False
        self.key_error = QLabel("", self)
        self.key_reset = QPushButton("Use analysis", self)
        self.key_reset.setToolTip("Forget your key: clapdesk's own reading counts again")
        for error in (self.bpm_error, self.key_error):
            error.setStyleSheet("color: #d9534f")
            error.setWordWrap(True)

        if single:
            if first.bpm_edited and first.bpm is not None:
                self.bpm.setText(f"{first.bpm:g}")
            if first.key_edited and first.key:
                self.key.setCurrentText(first.key)
        self.bpm_now = QLabel(self._now("bpm"), self)
        self.key_now = QLabel(self._now("key"), self)
        for field, reset, now, error, label in (
                (self.bpm, self.bpm_reset, self.bpm_now, self.bpm_error, "&Tempo (BPM):"),
                (self.key, self.key_reset, self.key_now, self.key_error, "&Key:")):
            row = QHBoxLayout()
            row.addWidget(field, 1)
            row.addWidget(reset)
            buddy = QLabel(label, self)
            buddy.setBuddy(field)  # Alt+T / Alt+K go to the field
            form.addRow(buddy, row)
            form.addRow("", now)
            form.addRow("", error)
        self.bpm_reset.setEnabled(any(r.bpm_edited for r in self.records))
        self.key_reset.setEnabled(any(r.key_edited for r in self.records))

        self.buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.bpm.textEdited.connect(self._bpm_typed)
        self.key.editTextChanged.connect(self._key_typed)
        self.bpm_reset.clicked.connect(self._clear_bpm)
        self.key_reset.clicked.connect(self._clear_key)
        self._validate()
        self.resize(460, 0)

    def _now(self, field: str) -> str:
        first = self.records[0]
        if len(self.records) > 1:
            edited = sum(1 for r in self.records if (r.bpm_edited if field == "bpm" else r.key_edited))
            return f"{edited} of {len(self.records)} set by you" if edited else "as analysed"
        if field == "bpm":
            now = f"Now: {describe_bpm(first.bpm, first.bpm_source)}"
            if first.bpm_edited:
                now += f"; analysis: {describe_bpm(first.analysed_bpm, first.analysed_bpm_source)}"
            return now
        now = f"Now: {describe_key(first.key, first.key_source)}"
        if first.key_edited:
            now += f"; analysis: {describe_key(first.analysed_key, first.analysed_key_source)}"
        return now

    # -- editing ------------------------------------------------------------------------------
    def _bpm_typed(self, _text: str) -> None:
        self.bpm_cleared = False
        self._validate()

    def _key_typed(self, _text: str) -> None:
        self.key_cleared = False
        self._validate()

    def _clear_bpm(self) -> None:
        self.bpm.clear()
        self.bpm_cleared = True
        self.bpm_now.setText("Back to the analysis when you press OK")
        self._validate()

    def _clear_key(self) -> None:
        self.key.setCurrentText("")
        self.key_cleared = True
        self.key_now.setText("Back to the analysis when you press OK")
        self._validate()

    def changes(self) -> dict[str, object]:
        """What OK writes: {"bpm": value or None to clear, "key": ...}; raises CorrectionError."""
        out: dict[str, object] = {}
        bpm_text, key_text = self.bpm.text().strip(), self.key.currentText().strip()
        if bpm_text:
            out["bpm"] = user_tempo.parse_bpm(bpm_text)
        elif self.bpm_cleared or (len(self.records) == 1 and self.records[0].bpm_edited):
            out["bpm"] = None  # emptied: the analysis counts again
        if key_text:
            out["key"] = user_tempo.parse_key(key_text)
        elif self.key_cleared or (len(self.records) == 1 and self.records[0].key_edited):
            out["key"] = None
        return out

    def _validate(self) -> None:
        ok = True
        for text, error, parse in ((self.bpm.text(), self.bpm_error, user_tempo.parse_bpm),
                                   (self.key.currentText(), self.key_error, user_tempo.parse_key)):
            message = ""
            if text.strip():
                try:
                    parse(text)
                except user_tempo.CorrectionError as exc:
                    message, ok = str(exc), False
            error.setText(message)
            error.setVisible(bool(message))
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(ok)

    # -- writing ------------------------------------------------------------------------------
    def apply(self) -> list[int]:
        """Write the changes through the core; returns the ids of the sounds edited."""
        change = self.changes()
        if change:
            user_tempo.set_correction(self.catalog, self.ids, **change)
        return list(self.ids) if change else []
