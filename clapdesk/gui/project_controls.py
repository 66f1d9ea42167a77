"""The transport bar's project controls: tempo (typed or tapped), key, tempo and key lock, Link.

Widgets only; project_audition.py connects them to the player, the settings and Link.
"""

from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QToolButton, QWidget

from clapdesk.core.analysis.names import format_key_short
from clapdesk.core.audition.plan import TEMPO_MAX, TEMPO_MIN, TapTempo, key_choices

NO_KEY = "No key"


class ProjectControls(QWidget):
    tempo_changed = Signal(float)
    key_changed = Signal(object)  # a canonical key ("A minor") or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tempo = QDoubleSpinBox(self)
        self.tempo.setRange(TEMPO_MIN, TEMPO_MAX)
        self.tempo.setDecimals(2)
        self.tempo.setSuffix(" BPM")
        self.tempo.setValue(120.0)
        self.tempo.setKeyboardTracking(False)  # one change when typing ends, not per digit
        self.tempo.setToolTip("The project's tempo: loops play at it with Tempo lock on")
        self.tap = QToolButton(self)
        self.tap.setText("Tap")
        self.tap.setToolTip("Tap the tempo (Ctrl+Shift+B)")
        self.key = QComboBox(self)
        self.key.addItem(NO_KEY, None)
        for name in key_choices():  # shown as a producer writes it ("F#m"), the full name on hover
            self.key.addItem(format_key_short(name), name)
            self.key.setItemData(self.key.count() - 1, name, Qt.ItemDataRole.ToolTipRole)
        # Sized by a fixed number of characters, not by measuring every item on each layout.
        self.key.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.key.setMinimumContentsLength(6)
        self.key.setToolTip("The project's key: sounds are shifted to it with Key lock on")
        self.tempo_lock = self._toggle("Tempo lock", "Play loops stretched to the project "
                                       "tempo; off plays every file as it is")
        self.key_lock = self._toggle("Key lock", "Shift loops to the project key and tonal "
                                     "one-shots to its nearest note; off plays them as they are")
        self.link = self._toggle("Link", "Follow the tempo and beat of Ableton Link apps on "
                                 "this network (your DAW); previews start on its next bar")
        self.peers = QLabel("", self)
        self.taps = TapTempo()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for widget in (self.tempo, self.tap, self.key, self.tempo_lock, self.key_lock,
                       self.link, self.peers):
            layout.addWidget(widget)
        layout.addStretch(1)
        self.tempo.valueChanged.connect(self.tempo_changed.emit)
        self.key.currentIndexChanged.connect(lambda _: self.key_changed.emit(self.key_value()))
        self.tap.clicked.connect(lambda: self.tap_at(time.perf_counter()))

    def _toggle(self, text: str, tip: str) -> QToolButton:
        button = QToolButton(self)
        button.setText(text)
        button.setCheckable(True)
        button.setToolTip(tip)
        return button

    def key_value(self) -> str | None:
        return self.key.currentData()

    def set_key(self, key: str | None) -> None:
        index = self.key.findData(key) if key else 0
        self.key.setCurrentIndex(max(0, index))

    def tap_at(self, at: float) -> None:
        tempo = self.taps.tap(at)
        if tempo is not None:
            self.tempo.setValue(tempo)

    def show_peers(self, enabled: bool, peers: int) -> None:
        self.peers.setText((f"{peers} peer" + ("" if peers == 1 else "s")) if enabled else "")
