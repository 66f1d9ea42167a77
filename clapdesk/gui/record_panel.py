"""Record a query: a strip under the search field with a live level meter and the trim line.

Record starts capturing from the input chosen in Settings (core/ingest/recording.py: PortAudio
calls back on its own thread; this strip only polls the level every METER_MS). It stops at
Stop (the same button, or Ctrl+Shift+R again) or after MAX_RECORD_SECONDS. Then silence below the
threshold is trimmed from both ends and `recorded(samples, rate)` asks for the search. The
threshold is a spin box beside the meter, drawn on the meter as a line; changing it after a
recording trims again and searches again. The take can be played and saved; it stays in memory
only (its playback copy is a temporary file removed with the take) unless it is saved.
"""

from __future__ import annotations

import math
import os
import tempfile
import time

import numpy as np
from PySide6.QtCore import QRectF, QTimer, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSpinBox,
    QToolButton,
    QWidget,
)

from clapdesk.core.ingest import recording
from clapdesk.gui.theme import icon

METER_MS = 30
METER_FLOOR_DB = -72.0
LEVEL_FALL_DB_PER_TICK = 1.5  # the meter falls back smoothly rather than flickering


class LevelMeter(QWidget):
    """The input level in dBFS from METER_FLOOR_DB to 0, the take's peak as a tick, and the
    trim threshold as a line."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("level_meter")
        self.setMinimumSize(180, 14)
        self.level_db = METER_FLOOR_DB
        self.peak_db = METER_FLOOR_DB
        self.threshold_db = recording.DEFAULT_THRESHOLD_DB

    def _x(self, db: float) -> float:
        share = (max(METER_FLOOR_DB, min(0.0, db)) - METER_FLOOR_DB) / -METER_FLOOR_DB
        return share * self.width()

    def set_level(self, db: float, peak_db: float | None = None) -> None:
        self.level_db = max(db, self.level_db - LEVEL_FALL_DB_PER_TICK)
        if peak_db is not None:
            self.peak_db = peak_db
        self.setToolTip(f"Input level {self.level_db:.0f} dBFS, peak {self.peak_db:.0f} dBFS; "
                        f"silence below {self.threshold_db:.0f} dBFS is trimmed")
        self.update()

    def reset(self) -> None:
        self.level_db = self.peak_db = METER_FLOOR_DB
        self.update()

    def paintEvent(self, _event: QPaintEvent) -> None:  # noqa: N802 - Qt's name
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("#171a20"))
        colour = "#e05a4f" if self.level_db > -3 else "#f0a030" if self.level_db > -12 \
            else "#5fbf6f"
        painter.fillRect(QRectF(0, 2, self._x(self.level_db), self.height() - 4), QColor(colour))
        if self.peak_db > METER_FLOOR_DB:
            painter.fillRect(QRectF(self._x(self.peak_db) - 2, 2, 2, self.height() - 4),
                             QColor("#e8ebf0"))
        x = self._x(self.threshold_db)
        painter.setPen(QColor("#d5d9e0"))
        painter.drawLine(int(x), 0, int(x), self.height())
        painter.end()


class RecordPanel(QFrame):
    recorded = Signal(object, int)  # trimmed mono float32 samples, rate
    message = Signal(str)  # a line for the status bar

    def __init__(self, settings: object, player: object, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("record_panel")
        self.settings = settings
        self.player = player
        self.recorder: recording.Recorder | None = None
        self.take: np.ndarray | None = None  # everything recorded, untrimmed
        self.rate = 0
        self.trimmed: np.ndarray | None = None
        self.stopped_at = 0.0  # perf_counter when the last take stopped (for the figures)
        self._playback: str | None = None

        self.record_button = QToolButton(self)
        self.record_button.setIcon(icon("record"))
        self.record_button.setObjectName("record")
        self.record_button.clicked.connect(self.toggle)
        self.status = QLabel("", self)
        self.meter = LevelMeter(self)
        self.threshold = QSpinBox(self)
        self.threshold.setObjectName("record_threshold")
        self.threshold.setRange(-90, -6)
        self.threshold.setSuffix(" dBFS")
        self.threshold.setPrefix("trim below ")
        self.threshold.setToolTip("Silence quieter than this is trimmed from both ends")
        self.threshold.setValue(int(settings.get("record_threshold_db")))  # type: ignore[attr-defined]
        self.meter.threshold_db = float(self.threshold.value())
        self.threshold.valueChanged.connect(self._threshold_changed)
        self.play_button = self._tool("play", "Play the recording", self.play)
        self.save_button = self._tool("save", "Save the recording as a WAV file…", self.save)
        self.close_button = self._tool("cancel", "Discard the recording", self.discard)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        for widget in (self.record_button, self.status, self.meter, self.threshold,
                       self.play_button, self.save_button, self.close_button):
            row.addWidget(widget, 1 if widget is self.meter else 0)
        self.timer = QTimer(self)
        self.timer.setInterval(METER_MS)
        self.timer.timeout.connect(self._tick)
        self.hide()

    def _tool(self, name: str, tip: str, slot: object) -> QToolButton:
        button = QToolButton(self)
        button.setIcon(icon(name))
        button.setToolTip(tip)
        button.clicked.connect(lambda _=False: slot())  # type: ignore[operator]
        return button

    @property
    def recording(self) -> bool:
        return self.recorder is not None

    # -- recording ----------------------------------------------------------------------------
    def toggle(self) -> None:
        if self.recording:
            self.stop()
        else:
            self.start()

    def start(self) -> None:
        self.discard(hide=False)
        device = self.settings.get("audio_input") or None  # type: ignore[attr-defined]
        recorder = recording.Recorder(device, recording.MAX_RECORD_SECONDS)
        self.show()
        try:
            recorder.start()
        except recording.RecordingError as exc:
            self.status.setText(f"Cannot record: {exc}. Choose the input in Settings.")
            self._buttons(done=False)
            return
        self.recorder = recorder
        self.meter.reset()
        self.record_button.setIcon(icon("stop"))
        self.record_button.setToolTip("Stop and search (Ctrl+Shift+R)")
        self._buttons(done=False)
        self._tick()
        self.timer.start()

    def _tick(self) -> None:
        recorder = self.recorder
        if recorder is None:
            return
        self.meter.set_level(recorder.level_db, recorder.peak_db)
        self.status.setText(f"Recording {recorder.seconds:4.1f} / "
                            f"{recording.MAX_RECORD_SECONDS:.0f} s")
        if recorder.finished:
            self.stop()

    def stop(self) -> None:
        recorder, self.recorder = self.recorder, None
        if recorder is None:
            return
        self.timer.stop()
        self.record_button.setIcon(icon("record"))
        self.record_button.setToolTip("Record again (Ctrl+Shift+R)")
        self.take, self.rate = recorder.stop(), int(recorder.rate or 0)
        self.stopped_at = time.perf_counter()
        self.meter.set_level(METER_FLOOR_DB, recorder.peak_db)  # the peak stays on show
        if recorder.error:
            self.message.emit(f"Recording: {recorder.error}")
        self._trim_and_search()

    def _trim_and_search(self) -> None:
        if self.take is None or not self.rate:
            return
        self._drop_playback()
        threshold = float(self.threshold.value())
        trimmed = recording.trim_silence(self.take, self.rate, threshold)
        taken = len(self.take) / self.rate
        if trimmed.size == 0:
            self.trimmed = None
            self.status.setText(f"Nothing reached {threshold:.0f} dBFS in {taken:.1f} s: "
                                "record closer, or lower the threshold")
            self._buttons(done=False)
            return
        self.trimmed = trimmed
        self.status.setText(f"Recorded {len(trimmed) / self.rate:.1f} s "
                            f"(trimmed from {taken:.1f} s)")
        self._buttons(done=True)
        self.recorded.emit(trimmed, self.rate)

    def _threshold_changed(self, value: int) -> None:
        self.meter.threshold_db = float(value)
        self.meter.update()
        self.settings.set("record_threshold_db", value)  # type: ignore[attr-defined]
        if not self.recording and self.take is not None:
            self.stopped_at = time.perf_counter()
            self._trim_and_search()

    def _buttons(self, done: bool) -> None:
        self.play_button.setEnabled(done)
        self.save_button.setEnabled(done)

    # -- the take -----------------------------------------------------------------------------
    def playback_path(self) -> str | None:
        """A temporary WAV of the trimmed take for the player (removed with the take)."""
        if self.trimmed is None:
            return None
        if self._playback is None:
            import soundfile as sf

            handle, path = tempfile.mkstemp(prefix="clapdesk-recording-", suffix=".wav")
            os.close(handle)
            sf.write(path, self.trimmed, self.rate, subtype="FLOAT")
            self._playback = path
        return self._playback

    def play(self) -> None:
        path = self.playback_path()
        if path:
            self.player.toggle(path)  # type: ignore[attr-defined]

    def save(self) -> None:
        if self.trimmed is None:
            return
        folder = self.settings.get("export_folder") or os.path.expanduser("~")  # type: ignore[attr-defined]
        suggested = os.path.join(folder, time.strftime("recording-%Y%m%d-%H%M%S.wav"))
        path, _ = QFileDialog.getSaveFileName(self, "Save the recording", suggested,
                                              "WAV audio (*.wav)")
        if path:
            self.save_to(path)

    def save_to(self, path: str) -> str | None:
        """Write the trimmed take as a 24-bit WAV; the status bar says where, or why not."""
        import soundfile as sf

        if self.trimmed is None:
            return None
        if not path.lower().endswith(".wav"):
            path += ".wav"
        peak = float(np.max(np.abs(self.trimmed))) if self.trimmed.size else 0.0
        try:
            # 24-bit PCM keeps a quiet take's detail; a take that clipped is kept as float.
            sf.write(path, self.trimmed, self.rate,
                     subtype="PCM_24" if peak <= 1.0 and not math.isnan(peak) else "FLOAT")
        except (OSError, RuntimeError) as exc:
            self.message.emit(f"The recording was not saved: {exc}")
            return None
        self.message.emit(f"Recording saved as {path}")
        return path

    def discard(self, hide: bool = True) -> None:
        """Forget the take (and stop recording or playing it)."""
        if self.recorder is not None:
            self.timer.stop()
            self.recorder.stop()
            self.recorder = None
            self.record_button.setIcon(icon("record"))
        self._drop_playback()
        self.take, self.trimmed = None, None
        self.status.setText("")
        if hide:
            self.hide()

    def _drop_playback(self) -> None:
        path, self._playback = self._playback, None
        if path is None:
            return
        if getattr(self.player, "current_path", None) == path:
            self.player.stop()  # type: ignore[attr-defined]
        try:
            os.remove(path)
        except OSError:
            pass
