"""The project's tempo and key in the window: settings, locks, Link, tap and drag-out wired up.

    project = ProjectAudition.for_window(window)   # after the window's AuditionController

The transport bar's ProjectControls (project_controls.py) edit the tempo, the key and the
locks; StretchAudition (stretch_audition.py) plays what they ask for; Link (core/audition/
link.py), once the producer turns it on, sets the tempo and the moment previews start (the
session's next bar or beat) and stops the preview when the DAW stops. With a lock on, dragging
rows out drops the rendered WAVs, written to the export folder (Settings > Region exports).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer
from PySide6.QtWidgets import QApplication

from clapdesk.core.audition.link import LinkSession, LinkUnavailable
from clapdesk.core.audition.plan import plan_for
from clapdesk.core.audition.render import export_rendered, render_key
from clapdesk.core.store.catalog import FileRecord
from clapdesk.core.store.paths import default_exports_dir
from clapdesk.gui.settings import Settings
from clapdesk.gui.stretch_audition import StretchAudition

LINK_POLL_MS = 20  # tempo, peers and transport of the session: 50 times a second is plenty
REPLAY_DELAY_MS = 150  # a tempo being typed or tapped re-renders once it settles


class ProjectAudition(QObject):
    def __init__(self, stretch: StretchAudition, controls: Any, controller: Any,
                 settings: Settings, waveform: Any = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.stretch, self.controls, self.controller = stretch, controls, controller
        self.settings, self.waveform = settings, waveform
        self.player = stretch.player
        self.link: LinkSession | None = None
        self._link_playing = False
        self._from_link = False
        controller.source = stretch
        self._restore()
        controls.tempo_changed.connect(self._tempo_edited)
        controls.key_changed.connect(self._key_edited)
        controls.tempo_lock.toggled.connect(lambda on: self._lock("tempo_lock", on))
        controls.key_lock.toggled.connect(lambda on: self._lock("key_lock", on))
        controls.link.toggled.connect(self.set_link)
        stretch.rendered.connect(self._show_render)
        self.replay_timer = QTimer(self)
        self.replay_timer.setSingleShot(True)
        self.replay_timer.setInterval(REPLAY_DELAY_MS)
        self.replay_timer.timeout.connect(self._replay)
        self.link_timer = QTimer(self)
        self.link_timer.setInterval(LINK_POLL_MS)
        self.link_timer.timeout.connect(self.poll_link)
        if stretch.locked:
            stretch.warm()

    @classmethod
    def for_window(cls, window: Any) -> ProjectAudition:
        # The lane thread reads the catalog through its own connection (Library.catalog).
        stretch = StretchAudition(window.player, lambda p: window.library.catalog.file_by_path(p),
                                  window.runner, parent=window)
        project = cls(stretch, window.transport.project, window.audition, window.settings,
                      window.waveform, window)
        window.model.drag_paths = project.drag_paths  # (Tap tempo is a window command)
        QApplication.instance().aboutToQuit.connect(project.close)  # helpers and Link end too
        return project

    # ------------------------------------------------------------------ state and settings
    def _value(self, name: str, default: Any) -> Any:
        value = self.settings.store.value(f"transport/{name}")
        if value is None:
            return default
        if isinstance(default, bool):
            return str(value).lower() in ("1", "true")
        try:
            return type(default)(value)
        except (TypeError, ValueError):
            return default

    def _save(self, name: str, value: Any) -> None:
        self.settings.store.setValue(f"transport/{name}", value)

    def _restore(self) -> None:
        stretch, controls = self.stretch, self.controls
        stretch.tempo = self._value("tempo", 120.0)
        stretch.key = self._value("key", "") or None
        stretch.tempo_lock = self._value("tempo_lock", False)
        stretch.key_lock = self._value("key_lock", False)
        for widget, value in ((controls.tempo, stretch.tempo),
                              (controls.tempo_lock, stretch.tempo_lock),
                              (controls.key_lock, stretch.key_lock)):
            widget.blockSignals(True)
            widget.setValue(value) if hasattr(widget, "setValue") else widget.setChecked(value)
            widget.blockSignals(False)
        controls.key.blockSignals(True)
        controls.set_key(stretch.key)
        controls.key.blockSignals(False)

    def _tempo_edited(self, tempo: float) -> None:
        self.stretch.tempo = float(tempo)
        self._save("tempo", float(tempo))
        if self.link is not None and self.link.enabled and not self._from_link:
            self.link.set_tempo(tempo)  # the app's field proposes a tempo to the session
        if self.stretch.tempo_lock:
            self.replay_timer.start()

    def _key_edited(self, key: str | None) -> None:
        self.stretch.key = key
        self._save("key", key or "")
        if self.stretch.key_lock:
            self.replay_timer.start()

    def _lock(self, name: str, on: bool) -> None:
        setattr(self.stretch, name, bool(on))
        self._save(name, bool(on))
        if on:
            self.stretch.warm()
        self._replay()  # a toggle is heard at once: on renders, off returns to the original

    def tap(self) -> None:
        """The shortcut's tap: timed now (a button's animated click would come 100 ms late)."""
        self.controls.tap_at(time.perf_counter())

    def _replay(self) -> None:
        """The sound playing now, again with the new tempo, key or lock, from the start."""
        path = self.player.current_path
        if path is not None and self.player.is_playing:
            self.stretch.play(path)
        if path is not None and not self.stretch.locked and self.waveform is not None:
            self.waveform.set_file(path)  # back to the original's waveform

    def _show_render(self, path: str, data: Any, rate: int) -> None:
        if self.waveform is not None and self.player.current_path == path:
            self.waveform.set_audio(data, rate, path)  # the stretched length, as heard

    # ------------------------------------------------------------------ Link
    def set_link(self, on: bool) -> None:
        """Join or leave the Link session (off at every start: Link talks to the network)."""
        if on and self.link is None:
            try:
                self.link = LinkSession(self.stretch.tempo)
            except LinkUnavailable as exc:
                self.player.error.emit(str(exc))
                self.controls.link.setChecked(False)
                return
        if self.link is None:
            return
        self.link.enable(on)
        self._link_playing = on and self.link.playing
        self.stretch.start_time = self._next_start if on else None
        if on:
            self.link_timer.start()
        else:
            self.link_timer.stop()
        self.controls.show_peers(on, self.link.peers if on else 0)

    def _next_start(self) -> float:
        assert self.link is not None
        unit = self.settings.get("link_start")
        return self.link.next_start("beat" if unit == "beat" else "bar")[1]

    def poll_link(self) -> None:
        link = self.link
        if link is None or not link.enabled:
            return
        self.controls.show_peers(True, link.peers)
        tempo = round(link.tempo, 2)
        if abs(tempo - self.controls.tempo.value()) >= 0.01:
            self._from_link = True
            try:
                self.controls.tempo.setValue(tempo)
            finally:
                self._from_link = False
        playing = link.playing
        if self._link_playing and not playing:
            self.controller.stop()  # start/stop sync: the DAW stopped, so does the preview
        self._link_playing = playing

    # ------------------------------------------------------------------ drag-out
    def export_folder(self) -> Path:
        folder = self.settings.get("export_folder")
        return Path(folder).expanduser() if folder else default_exports_dir()

    def drag_paths(self, files: list[FileRecord]) -> list[str]:
        """What a drag of these rows drops: with a lock on, each file as heard (rendered,
        written to the export folder), else the files themselves."""
        if not self.stretch.locked:
            return [f.path for f in files]
        out = []
        for record in files:
            stretch = self.stretch
            plan = plan_for(record.kind, record.bpm, record.key, stretch.tempo, stretch.key,
                            stretch.tempo_lock, stretch.key_lock)
            if plan.is_identity:
                out.append(record.path)
                continue
            try:
                heard = stretch.rendered_for(record.path)
                if heard is not None and heard[2] == plan:
                    data, rate = heard[0], heard[1]
                else:
                    decoded = self.player.load(record.path)
                    data, rate = stretch.renderer.render(render_key(record.path, plan),
                                                         decoded[0], decoded[1], plan)
                out.append(str(export_rendered(record.path, plan, data, rate,
                                               self.export_folder())))
            except Exception as exc:  # noqa: BLE001 - the original is dropped instead, and told
                self.player.error.emit(f"Could not render {record.name} for the drag ({exc}); "
                                       "dropping the original")
                out.append(record.path)
        return out

    def close(self) -> None:
        self.link_timer.stop()
        if self.link is not None:
            self.link.close()
        self.stretch.close()
