"""Audition in the window: the transport bar and the rules for when a sound plays.

A click plays at once; moving the selection with the arrow keys plays after a short delay, so
scrolling fast stays quiet; the rows below the current one are decoded ahead. The `Player`
(player.py) does the sound; this module only decides what and when.
"""

from __future__ import annotations

import os
from typing import Any

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSlider,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.store.catalog import display_path
from clapdesk.gui.player import Player
from clapdesk.gui.project_controls import ProjectControls
from clapdesk.gui.theme import icon

PREDECODE_ROWS = 4


class TransportBar(QWidget):
    """Play/stop, loop, volume and what is playing; below, the project's tempo and key."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.play = QToolButton(self)
        self.play.setIcon(icon("play"))
        self.play.setToolTip("Play / stop the selected sound (Space)")
        self.loop = QToolButton(self)
        self.loop.setIcon(icon("loop"))
        self.loop.setCheckable(True)
        self.loop.setToolTip("Loop audition (Ctrl+R)")
        self.volume_icon = QLabel(self)
        self.volume_icon.setPixmap(icon("volume").pixmap(18, 18))
        self.volume = QSlider(Qt.Orientation.Horizontal, self)
        self.volume.setRange(0, 100)
        self.volume.setFixedWidth(120)
        self.volume.setToolTip("Volume (Ctrl+Up / Ctrl+Down)")
        self.now = QLabel("Nothing playing", self)
        self.now.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        # A long name gives way (the tooltip keeps it whole), so the bar fits a small window.
        self.now.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.now.setMinimumWidth(60)
        self.time = QLabel("", self)
        rows = QVBoxLayout(self)
        rows.setContentsMargins(4, 2, 4, 2)
        rows.setSpacing(2)
        layout = QHBoxLayout()
        for widget in (self.play, self.loop, self.volume_icon, self.volume):
            layout.addWidget(widget)
        layout.addSpacing(12)
        layout.addWidget(self.now, 1)
        layout.addWidget(self.time)
        rows.addLayout(layout)
        # Second row: the project's tempo, key, locks and Link (project_controls.py); a row of
        # its own so the audition panel still fits beside the side panel in a small window.
        self.project = ProjectControls(self)
        rows.addWidget(self.project)

    def show_playing(self, path: str | None) -> None:
        self.play.setIcon(icon("stop" if path else "play"))
        self.now.setText(display_path(os.path.basename(path)) if path else "Nothing playing")
        self.now.setToolTip(display_path(path) if path else "")
        if not path:
            self.time.setText("")

    def show_position(self, seconds: float) -> None:
        self.time.setText(f"{seconds:5.2f} s")


class AuditionController(QObject):
    """Selection and keys in, Player calls out."""

    auditioned = Signal(str)  # a path that started playing (for history)

    def __init__(self, player: Player, transport: TransportBar, parent: QObject | None = None,
                 delay_ms: int = 120, auto_play: bool = True, waveform: Any = None) -> None:
        super().__init__(parent)
        self.player = player
        self.transport = transport
        self.waveform = waveform  # a waveform.WaveformView, when that module is present
        self.auto_play = auto_play
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(delay_ms)
        self.timer.timeout.connect(self._play_pending)
        self.pending: str | None = None
        self.source: Any = None  # a StretchAudition: plays at the project's tempo and key
        player.started.connect(self._started)
        player.stopped.connect(lambda: transport.show_playing(None))
        player.position.connect(transport.show_position)
        transport.loop.toggled.connect(player.set_loop)
        transport.volume.valueChanged.connect(lambda v: player.set_volume(v / 100.0))
        if waveform is not None:
            player.position.connect(waveform.set_position)
            player.stopped.connect(waveform.clear_position)
            waveform.seek_requested.connect(player.seek)

    def _play(self, path: str) -> None:
        (self.source or self.player).play(path)

    def show_wave(self, path: str | None) -> None:
        """Draw the waveform of what was chosen; called after play() so sound comes first."""
        if self.waveform is not None and path and self.waveform.path != path:
            self.waveform.set_file(path)

    def set_delay(self, delay_ms: int) -> None:
        self.timer.setInterval(max(0, delay_ms))

    def selection_moved(self, path: str | None, ahead: list[str]) -> None:
        """The current row changed (keys or a click): play after the delay, decode what is next."""
        if ahead:
            self.player.predecode(ahead[:PREDECODE_ROWS])
        if path is None or not self.auto_play:
            self.timer.stop()
            self.show_wave(path)
            return
        self.pending = path
        self.timer.start()

    def clicked(self, path: str, was_current: bool) -> None:
        """A click plays at once; a click on the row already playing stops it."""
        self.timer.stop()
        self.pending = None
        if was_current and self.player.is_playing and self.player.current_path == path:
            self.player.stop()
        else:
            self._play(path)
        self.show_wave(path)

    def toggle(self, path: str | None) -> None:
        self.timer.stop()
        if path is None or (self.player.is_playing and self.player.current_path == path):
            self.player.stop()
        else:
            self._play(path)
            self.show_wave(path)

    def stop(self) -> None:
        self.timer.stop()
        self.pending = None
        if self.source is not None:
            self.source.stop()
        self.player.stop()

    def _play_pending(self) -> None:
        if self.pending:
            self._play(self.pending)
            self.show_wave(self.pending)
            self.pending = None

    def _started(self, path: str) -> None:
        self.transport.show_playing(path)
        self.auditioned.emit(path)
