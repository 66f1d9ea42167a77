"""Indexing from the app: one run at a time on the general pool, progress, cancel, watching.

Library folders (and their subfolders, up to a cap) are watched with QFileSystemWatcher; a
change starts a debounced incremental run over the folders that changed. The core skips files
whose size and modification time are unchanged, so such a run only reads what is new. Nothing
is rescanned at start-up. Directory watches see files added, removed and renamed; a file
rewritten in place under the same name is picked up by Library > Update library (F5).
"""

from __future__ import annotations

import logging
import os
import time

from PySide6.QtCore import QFileSystemWatcher, QObject, QTimer, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from clapdesk.core.index.indexer import IndexReport, Progress
from clapdesk.core.index.report import CHOOSING_PRECISION
from clapdesk.core.library import Library, LibraryBusy
from clapdesk.gui.results_model import NOT_HEARD_TIP
from clapdesk.gui.theme import icon
from clapdesk.gui.wording import counted
from clapdesk.gui.workers import TaskRunner, Worker

log = logging.getLogger(__name__)

WATCH_MAX_FOLDERS = 2000  # inotify watches are a shared, limited resource
WATCH_DEBOUNCE_MS = 2000  # a copy of a whole pack fires many events: wait for quiet
PROGRESS_MIN_INTERVAL = 0.05  # seconds between progress repaints
# Why the first files of a first indexing go a little slower: said, not left to guesswork.
CHOOSING_TIP = ("On the first files of this library, clapdesk also times float32 against a "
                "faster precision, and goes on in the faster one only if search results stay "
                "the same. Until then the time left is a range: from the faster precision's "
                "pace to float32's. This happens once per library and computer; Settings › "
                "Model precision skips it.")


def folders_to_watch(roots: list[str], cap: int = WATCH_MAX_FOLDERS) -> list[str]:
    """Roots first, then their subfolders breadth-first, at most `cap` in all (runs off-thread)."""
    out = [r for r in roots if os.path.isdir(r)]
    queue = list(out)
    while queue and len(out) < cap:
        folder = queue.pop(0)
        try:
            with os.scandir(folder) as entries:
                subs = sorted(e.path for e in entries
                              if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
        except OSError:
            continue
        room = cap - len(out)
        out.extend(subs[:room])
        queue.extend(subs[:room])
    return out


def format_eta(seconds: float | None, low: float | None = None) -> str:
    """"3 min 20 s left"; with `low` (while the precision is chosen), "2–4 min left"."""
    if seconds is None:
        return ""
    if low is None or low >= seconds:
        return f"{_duration(seconds)} left"
    fast, slow = _duration(low, rough=True), _duration(seconds, rough=True)
    if fast == slow:
        return f"about {slow} left"
    if fast.endswith(" min") and slow.endswith(" min") and " h " not in slow:
        return f"{fast[:-4]}–{slow} left"
    return f"{fast} – {slow} left"


def _duration(seconds: float, rough: bool = False) -> str:
    """"3 min 20 s", or rounded to the minute ("3 min") for a range's ends."""
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min" if rough else f"{seconds // 60} min {seconds % 60:02d} s"
    minutes = min(59, round(seconds % 3600 / 60)) if rough else seconds % 3600 // 60
    return f"{seconds // 3600} h {minutes:02d} min"


def describe_report(report: IndexReport) -> str:
    """One status-bar line about a finished (or cancelled) run."""
    parts = [f"{counted(report.indexed, 'sound')} indexed"]
    if report.unchanged:
        parts.append(f"{report.unchanged} unchanged")
    if report.failed:
        parts.append(f"{len(report.failed)} could not be read (Ctrl+Shift+E)")
    if report.offline_roots:
        parts.append(f"{counted(len(report.offline_roots), 'folder')} offline")
    verb = "Indexing cancelled" if report.cancelled else "Library updated"
    line = f"{verb}: " + ", ".join(parts)
    if report.precision is not None and report.precision.decided_now:
        line += f". Model {report.precision.note()}"  # once: the run that made the choice
    return line


class IndexProgress(QWidget):
    """done/total, files per second, time left, and a Cancel button, for the status bar."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bar = QProgressBar(self)
        self.bar.setMinimumWidth(220)
        self.label = QLabel(self)
        self.cancel = QToolButton(self)
        self.cancel.setIcon(icon("cancel"))
        self.cancel.setText("Cancel")
        self.cancel.setToolTip("Stop indexing; everything indexed so far is kept")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.label)
        layout.addWidget(self.bar)
        layout.addWidget(self.cancel)
        self.hide()

    def show_progress(self, progress: Progress) -> None:
        self.show()
        if progress.phase == "done":
            self.bar.setRange(0, max(1, progress.total))
            self.bar.setValue(max(1, progress.total))
            self.bar.setFormat("Done")
        elif progress.phase in ("embedding", "scanning") and progress.total:
            self.bar.setRange(0, progress.total)
            self.bar.setValue(progress.done)
            self.bar.setFormat(f"{progress.done} / {progress.total}")
        else:
            self.bar.setRange(0, 0)  # busy: the phase has no count
        parts = [progress.phase.capitalize()]
        if progress.rate:
            parts.append(f"{progress.rate:.1f} files/s")
        if progress.eta is not None:
            parts.append(format_eta(progress.eta, progress.eta_low))
        if progress.not_heard:
            # Already searchable by name, tags, tempo and key; ranked by sound once heard.
            parts.append(f"{progress.not_heard:,} not heard yet")
        if progress.comparing:
            parts.append(CHOOSING_PRECISION)
        self.label.setText(" · ".join(parts))
        tips = [CHOOSING_TIP] if progress.comparing else []
        if progress.not_heard:
            tips.append(NOT_HEARD_TIP)
        self.label.setToolTip("\n\n".join(tips))


class IndexingController(QObject):
    started = Signal()
    progressed = Signal(object)  # Progress
    finished = Signal(object)  # IndexReport, or None after an error
    failed = Signal(str)  # a plain message
    roots_changed = Signal()
    removed = Signal(int)  # how many files a removed folder took with it

    def __init__(self, library: Library, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.runner = runner
        self.worker: Worker | None = None
        self.pending: list[str] = []
        self._last_emit = 0.0
        self.watcher = QFileSystemWatcher(self)
        self.watcher.directoryChanged.connect(self._changed)
        self.changed_roots: set[str] = set()
        self.watch_timer = QTimer(self)
        self.watch_timer.setSingleShot(True)
        self.watch_timer.setInterval(WATCH_DEBOUNCE_MS)
        self.watch_timer.timeout.connect(self._index_changed)
        self.watching = True

    @property
    def running(self) -> bool:
        return self.worker is not None

    def index(self, folders: list[str]) -> None:
        """Add folders (or bring them up to date); queued behind a run in progress."""
        folders = [os.path.abspath(f) for f in folders]
        if self.running:
            self.pending.extend(f for f in folders if f not in self.pending)
            return
        self.worker = self.runner.submit(
            self.library.index_folders, folders, name="index", wants_cancel=True,
            on_progress=self._progress, on_result=self._done, on_error=self._error,
            on_finished=self._finished)
        self.started.emit()

    def cancel(self) -> None:
        if self.worker is not None:
            self.pending.clear()
            self.worker.cancel.set()

    def _progress(self, progress: Progress) -> None:
        now = time.monotonic()
        # Repaint at most every 50 ms: a fast run reports hundreds of files a second.
        if now - self._last_emit >= PROGRESS_MIN_INTERVAL or progress.phase == "done":
            self._last_emit = now
            self.progressed.emit(progress)

    def _done(self, report: IndexReport) -> None:
        self.finished.emit(report)

    def _error(self, exc: BaseException) -> None:
        if isinstance(exc, LibraryBusy):
            message = str(exc)
        else:
            from clapdesk.core.embed.hub import ModelError

            if isinstance(exc, ModelError):
                message = f"Indexing needs the model: {exc}"
            else:
                self.runner.report("index", exc)
                message = f"Indexing stopped: {exc}"
        self.failed.emit(message)
        self.finished.emit(None)

    def _finished(self) -> None:
        self.worker = None
        self.roots_changed.emit()
        self.rewatch()
        if self.pending:
            folders, self.pending = self.pending, []
            self.index(folders)

    def remove(self, folder: str) -> None:
        """Forget a folder (its files stay on disk); `removed` follows, then `roots_changed`."""
        self.runner.submit(self.library.remove_folder, folder, name="remove folder",
                           on_result=self.removed.emit, on_finished=self.roots_changed.emit)

    # -- watching -----------------------------------------------------------------------------
    def rewatch(self) -> None:
        """Watch the library folders again (the list is built off the GUI thread)."""
        if not self.watching:
            return
        roots = [path for _, path in self.library.catalog.roots()]
        self.runner.submit(folders_to_watch, roots, name="watch folders",
                           on_result=self._watch)

    def _watch(self, folders: list[str]) -> None:
        current = set(self.watcher.directories())
        wanted = set(folders)
        if current - wanted:
            self.watcher.removePaths(sorted(current - wanted))
        if wanted - current:
            self.watcher.addPaths(sorted(wanted - current))

    def _changed(self, folder: str) -> None:
        for _, root in self.library.catalog.roots():
            if folder == root or folder.startswith(root.rstrip(os.sep) + os.sep):
                self.changed_roots.add(root)
        self.watch_timer.start()

    def _index_changed(self) -> None:
        roots, self.changed_roots = sorted(self.changed_roots), set()
        if roots:
            log.info("library folders changed: %s", roots)
            self.index(roots)

    def stop_watching(self) -> None:
        self.watching = False
        self.watch_timer.stop()
        if self.watcher.directories():
            self.watcher.removePaths(self.watcher.directories())

