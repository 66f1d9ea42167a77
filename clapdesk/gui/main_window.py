"""The main window: search field, places, results, audition, status.

The window only arranges and forwards: indexing lives in indexing.py, the model in
model_control.py, audition rules in audition.py, catalog reads and searches in jobs.py, all run
through one TaskRunner; the menu commands are in commands.py and the table's selection, clicks
and keys in result_rows.py. The window is usable before the model has loaded.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.embed import torch_threads
from clapdesk.core.embed.health import TextSearchOff
from clapdesk.core.embed.hub import ModelError
from clapdesk.core.index.indexer import IndexReport
from clapdesk.core.library import Library
from clapdesk.core.search.query import ParsedQuery
from clapdesk.core.search.ranking import Filters, Hit
from clapdesk.core.store.catalog import display_path
from clapdesk.core.store.user_tags import tags_for_display
from clapdesk.gui import jobs, listening, model_notices
from clapdesk.gui.actions import build_actions
from clapdesk.gui.audition import AuditionController, TransportBar
from clapdesk.gui.commands import WindowCommands
from clapdesk.gui.indexing import IndexingController, IndexProgress, describe_report
from clapdesk.gui.map_view import install_map
from clapdesk.gui.model_control import READY, UNAVAILABLE, DownloadDialog, ModelController
from clapdesk.gui.panels import QUERY, FailuresPanel, SidePanel
from clapdesk.gui.player import Player
from clapdesk.gui.project_audition import ProjectAudition
from clapdesk.gui.result_rows import ResultRows
from clapdesk.gui.results_model import (
    MATCH,
    NAME,
    OBJECT_ROLE,
    SORT_ROLE,
    WAVE,
    ResultsModel,
    ResultsProxy,
)
from clapdesk.gui.results_view import ResultsView
from clapdesk.gui.search_bar import SearchBar
from clapdesk.gui.settings import Settings
from clapdesk.gui.sound_search import install_sound_search
from clapdesk.gui.theme import app_icon
from clapdesk.gui.wording import counted
from clapdesk.gui.workers import TaskRunner

try:  # audition's waveform and row thumbnails (waveform.py); the window works without them
    from clapdesk.gui.waveform import ThumbnailLoader, WaveformView
except ImportError:  # pragma: no cover - a partial install
    ThumbnailLoader = WaveformView = None  # type: ignore[assignment, misc]

log = logging.getLogger(__name__)
THUMB_WIDTH = 96
MODEL_START_LATEST_MS = 1000

QUIT_WAIT_MS = 1500  # at most this long for background jobs to stop when the window closes


class MainWindow(ResultRows, WindowCommands, QMainWindow):
    def __init__(self, library: Library, settings: Settings | None = None,
                 player: Player | None = None) -> None:
        super().__init__()
        self.library = library
        self.settings = settings or Settings()
        self.setWindowTitle("clapdesk")
        self.setWindowIcon(app_icon())
        self.runner = TaskRunner(self)
        self.runner.failed.connect(self._task_failed)
        self.generation = 0  # bumped by every search or browse; older answers are dropped
        self.place: tuple[str, str] = (jobs.ALL, "")
        self.queries: list[str] = []
        self.favourite_ids: set[int] = set()
        self.pending_search: tuple[str, ParsedQuery] | None = None
        self.last_query = ""
        self.query_recorded = True
        self._model_started = False
        self._restoring = False
        self._shut = False  # set by shutdown(), which may run twice (closeEvent, then the app)
        self._build_views()
        self.player = player or Player(self, runner=self.runner)
        self.waveform = None
        if WaveformView is not None:
            self.waveform = WaveformView(self.audition_box, player=self.player, runner=self.runner)
            self.waveform.setMinimumHeight(90)
            self.audition_box.layout().insertWidget(0, self.waveform, 1)
            self.waveform.export_folder = self.settings.get("export_folder")
            self.waveform.region_exported.connect(
                lambda p: self.statusBar().showMessage(f"Region saved as {p}", 6000))
        self.audition = AuditionController(
            self.player, self.transport, self, self.settings.get("auto_play_delay_ms"),
            self.settings.get("auto_play"), self.waveform)
        self.audition.auditioned.connect(self._auditioned)
        self.project = ProjectAudition.for_window(self)  # tempo, key, Link (project_audition.py)
        self.player.error.connect(lambda message: self.statusBar().showMessage(message, 8000))
        self.actions_by_name = build_actions(self)
        self.transport.play.clicked.connect(self.on_play_stop)
        self.transport.loop.toggled.connect(self.actions_by_name["loop"].setChecked)
        self.transport.loop.setChecked(self.settings.get("loop"))
        self.transport.volume.setValue(self.settings.get("volume"))
        self.player.set_device(self.settings.get("audio_output") or None)
        self.model_ctl = ModelController(library, self.runner, self)
        self.model_ctl.state_changed.connect(self._model_state)
        self.model_ctl.download_needed.connect(self._offer_download)
        self.model_ctl.folder_chosen.connect(self._model_folder_chosen)
        self.indexing = IndexingController(library, self.runner, self)
        self.indexing.watching = self.settings.get("watch_folders")
        self.indexing.started.connect(self._index_started)
        self.indexing.progressed.connect(self.progress.show_progress)
        self.indexing.finished.connect(self._index_finished)
        self.indexing.failed.connect(lambda m: self.statusBar().showMessage(m, 15000))
        self.indexing.roots_changed.connect(self.refresh_overview)
        self.indexing.removed.connect(self._folder_removed)
        self.progress.cancel.clicked.connect(self.on_cancel_indexing)
        self.live_timer = QTimer(self)
        self.live_timer.setInterval(listening.LIVE_REFRESH_MS)
        self.live_timer.timeout.connect(self._live_refresh)
        self.live_pace = listening.LivePace(self.live_timer)
        self.map_panel = install_map(self)  # View › Map of the library, beside the table
        self.sound_search = install_sound_search(self)  # drop, record, steer, aspects
        self._restore_layout()

    # -- building -----------------------------------------------------------------------------
    def _build_views(self) -> None:
        self.search = SearchBar(self)
        self.search.search_requested.connect(self._search)
        self.search.cleared.connect(self.browse)
        self.search.similar_cleared.connect(self.browse)
        self.search.field.returnPressed.connect(self._record_query)
        self.search.field.installEventFilter(self)
        self.title = QLabel("", self)
        self.model = ResultsModel(self, edit_cell=self.edit_tempo_cell)
        self.proxy = ResultsProxy(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setSortRole(SORT_ROLE)
        self.view = ResultsView(self.model, self.proxy, self)
        self.thumbnails = ThumbnailLoader(self, self.runner) if ThumbnailLoader is not None else None
        if self.thumbnails is not None:
            self.model.thumbnail = self._thumbnail
            self.thumbnails.ready.connect(lambda path: self.model.refresh_column(WAVE, path))
            self.view.setColumnWidth(WAVE, THUMB_WIDTH + 8)
        else:
            self.view.setColumnHidden(WAVE, True)
        self.view.customContextMenuRequested.connect(self._row_menu)
        self.view.selectionModel().currentRowChanged.connect(self._current_changed)
        self.view.pressed.connect(self._pressed)
        # A double-click's second press never reaches `pressed`: play again from the start.
        self.view.doubleClicked.connect(
            lambda i: self.audition.clicked(i.data(OBJECT_ROLE).file.path, was_current=False))
        self.view.viewport().installEventFilter(self)
        self._current_at_press: str | None = None

        self.transport = TransportBar(self)
        self.audition_box = QWidget(self)
        audition_layout = QVBoxLayout(self.audition_box)
        audition_layout.setContentsMargins(0, 0, 0, 0)
        audition_layout.addWidget(self.transport)

        self.side = SidePanel(self)
        self.side.place_selected.connect(self._place)
        self.side.add_folder_requested.connect(self.on_add_folder)
        self.side.remove_folder_requested.connect(self._remove_folder)
        self.side.rescan_requested.connect(self.on_update_library)

        results = QWidget(self)
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(6, 6, 6, 0)
        results_layout.addWidget(self.search)
        results_layout.addWidget(self.title)
        self.results_split = QSplitter(Qt.Orientation.Vertical, self)
        self.results_split.addWidget(self.view)
        self.results_split.addWidget(self.audition_box)
        self.results_split.setStretchFactor(0, 4)
        results_layout.addWidget(self.results_split, 1)
        self.side_split = QSplitter(Qt.Orientation.Horizontal, self)
        self.side_split.addWidget(self.side)
        self.side_split.addWidget(results)
        # Both sides give way as the window narrows (the results four times as much), so a
        # small window is not one third side panel.
        self.side_split.setStretchFactor(0, 1)
        self.side_split.setStretchFactor(1, 4)
        self.side_split.setSizes([240, 960])
        self.setCentralWidget(self.side_split)

        self.failures = FailuresPanel(self)
        self.failures_dock = QDockWidget("Files that could not be indexed", self)
        self.failures_dock.setObjectName("failures")
        self.failures_dock.setWidget(self.failures)
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.failures_dock)
        self.failures_dock.hide()

        self.progress = IndexProgress(self)
        self.model_label = QLabel("Model: starting…", self)
        self.model_label.setObjectName("modelState")
        self.model_label.linkActivated.connect(lambda _link: self.on_model_options())
        self.statusBar().addPermanentWidget(self.progress)
        self.statusBar().addPermanentWidget(self.model_label)

    def _thumbnail(self, path: str) -> object:
        height = max(12, self.view.verticalHeader().defaultSectionSize() - 6)
        return self.thumbnails.request(path, THUMB_WIDTH, height, self.devicePixelRatioF())

    def _restore_layout(self) -> None:
        geometry = self.settings.layout("geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        else:
            self.resize(1280, 800)
        for name, widget in (("side_split", self.side_split), ("results_split", self.results_split)):
            state = self.settings.layout(name)
            if state is not None:
                widget.restoreState(state)
        state = self.settings.layout("window_state")
        if state is not None:
            self.restoreState(state)
        self.actions_by_name["toggle_side"].setChecked(True)

    def start(self) -> None:
        """After the window is shown: read the library, watch its folders, load the model."""
        model_notices.library_opened(self)  # before the model loads, which may take a while
        self.refresh_overview()
        self.browse()
        self.indexing.rewatch()
        # Importing torch holds the interpreter lock for long stretches: begin once the
        # library is on screen (or after a second at the latest), never before.
        QTimer.singleShot(MODEL_START_LATEST_MS, self._start_model)

    def _start_model(self) -> None:
        if not self._model_started and not self._shut:
            self._model_started = True
            self.model_ctl.start()

    # -- places and browsing ------------------------------------------------------------------
    def refresh_overview(self, pace: listening.LivePace | None = None) -> None:
        read, show = jobs.load_overview, self._show_overview
        if pace is not None:
            read, show = pace.measured(read, show)
        self.runner.submit(read, self.library.paths.catalog, name="read library", on_result=show)

    def _show_overview(self, overview: jobs.Overview) -> None:
        self.side.set_folders(overview.roots, overview.offline)
        self.side.set_counts(overview.total, len(overview.favourites), overview.recent,
                             overview.duplicates)
        self.favourite_ids = set(overview.favourites)
        self.queries = overview.queries
        self.side.set_history(self.queries)
        self.search.set_history(self.queries)
        self.failures.set_failures(overview.failures)
        self.failures_dock.setWindowTitle(f"Files that could not be indexed ({len(overview.failures)})")

    def _place(self, kind: str, value: str) -> None:
        if kind == QUERY:
            self.search.set_text(value)
            return
        self.place = (kind, value)
        self.search.field.clear()
        self.search.fire()  # an empty query browses the place

    def browse(self, keep_scroll: bool = False, pace: listening.LivePace | None = None) -> None:
        self.generation += 1
        generation = self.generation
        kind, value = self.place
        read, show = jobs.load_place, lambda hits: self._show_browse(generation, hits, keep_scroll)
        if pace is not None:  # a live refresh while indexing: what it costs spaces the next
            read, show = pace.measured(read, show)
        self.runner.submit(read, self.library.paths.catalog, kind, value, name="browse",
                           on_result=show)

    def _show_browse(self, generation: int, hits: list[Hit], keep_scroll: bool = False) -> None:
        if not self._model_started:
            QTimer.singleShot(0, self._start_model)
        if generation != self.generation:
            return
        kind, value = self.place
        where = {jobs.ALL: "All sounds", jobs.FAVOURITES: "Favourites",
                 jobs.RECENT: "Recently auditioned",
                 jobs.DUPLICATES: "Duplicates (identical content, side by side)",
                 }.get(kind, display_path(value))
        more = "+" if len(hits) >= jobs.BROWSE_LIMIT else ""
        title = f"{where} — {len(hits):,}{more} sound{'' if len(hits) == 1 and not more else 's'}"
        if not hits and kind == jobs.ALL and not self.indexing.running:
            title = ("Your library is empty: add a folder of samples with Library > Add library "
                     "folder… (Ctrl+L)")
        self._set_rows(hits, scored=False, title=title, keep_scroll=keep_scroll)

    def _set_rows(self, hits: list[Hit], scored: bool, title: str, keep_scroll: bool = False
                  ) -> None:
        keep = self.selected_paths()
        scroll = self.view.verticalScrollBar().value()
        self.model.set_hits(hits, scored)
        if scored:
            self.view.sortByColumn(MATCH, Qt.SortOrder.DescendingOrder)
        elif self.view.horizontalHeader().sortIndicatorSection() == MATCH:
            self.view.sortByColumn(NAME, Qt.SortOrder.AscendingOrder)
        self.title.setText(title)
        self._restoring = True  # the same rows selected again must not play again
        try:
            self.view.select_paths(keep)
        finally:
            self._restoring = False
        if keep_scroll:
            self.view.verticalScrollBar().setValue(scroll)
        pending = self.audition.pending
        if pending and self.model.row_of(pending) < 0:  # its row went: it must not play now
            self.audition.timer.stop()
            self.audition.pending = None
        shown = self.waveform.path if self.waveform is not None else None
        if shown and self.model.row_of(shown) < 0:
            self.waveform.set_file(None)  # a sound no longer listed is no longer drawn

    def _live_refresh(self) -> None:
        listening.live_refresh(self)  # the place read again, or a search listing unheard sounds

    # -- searching ----------------------------------------------------------------------------
    def _search(self, text: str, parsed: ParsedQuery) -> None:
        if self.last_query != text:
            self.last_query, self.query_recorded = text, False
        kind, value = self.place
        filters = Filters(folder=value) if kind == jobs.FOLDER else Filters()
        if parsed.text and self.model_ctl.state != READY:
            # Searched again by sound once the model is ready; by name meanwhile (listening.py).
            self.pending_search = (text, parsed)
            listening.search_before_model(self, text, parsed, filters)
            return
        self.generation += 1
        self.runner.submit(jobs.run_search, self.library, self.generation, lambda: self.generation,
                           text, parsed, self.settings.get("results"), filters, pool="model",
                           name="search", on_result=self._show_search, on_error=self._search_failed)

    def _show_search(self, outcome: jobs.SearchOutcome) -> None:
        if outcome.response is None or outcome.generation != self.generation:
            return  # a newer search or browse has been asked for since
        hits = outcome.response.hits
        similar = bool(outcome.similar_to)
        scored = bool(outcome.response.query and outcome.response.query.text) or similar
        label = outcome.title if similar else f"“{outcome.title}”"
        if similar:  # the field shows what is searched for now, not the query before it
            self.search.show_similar(outcome.similar_to)
        self._set_rows(hits, scored, listening.results_title(hits, label, outcome.response))
        self.view.scrollToTop()  # new results: the best matches are the ones to see

    def _search_failed(self, exc: BaseException) -> None:
        if isinstance(exc, TextSearchOff):
            model_notices.text_search_refused(self, exc)
        elif isinstance(exc, ModelError):
            self.statusBar().showMessage(str(exc), 15000)
        else:
            self.runner.report("search", exc)

    def _record_query(self) -> None:
        text = self.search.text().strip()
        if text and not self.query_recorded:
            self.query_recorded = True
            self.library.catalog.record_history("query", text)
            self.queries = [text, *[q for q in self.queries if q != text]]
            self.side.set_history(self.queries)
            self.search.set_history(self.queries)

    # -- rows ---------------------------------------------------------------------------------
    def refresh_tags(self, file_ids: list[int]) -> None:
        """Tags were edited: the rows show them at once, the producer's own first."""
        self.model.update_tags(tags_for_display(self.library.catalog, file_ids))
        self.statusBar().showMessage(f"Tags saved for {counted(len(file_ids), 'sound')}", 4000)

    # -- model --------------------------------------------------------------------------------
    def _model_state(self, state: str, message: str) -> None:
        if self._shut:
            return  # the model finished loading after the window closed (see shutdown)
        short = {"checking": "Model: looking…", "downloading": "Model: downloading…",
                 "loading": "Model: loading…", READY: "Model ready",
                 UNAVAILABLE: "Model unavailable"}[state]
        # When unavailable the label is a link to what can be done about it.
        self.model_label.setText(f'<a href="options" style="color: inherit">{short}</a>'
                                 if state == UNAVAILABLE else short)
        self.model_label.setToolTip(message)
        self.model_label.setProperty("state", state)
        self.model_label.style().unpolish(self.model_label)
        self.model_label.style().polish(self.model_label)
        if state in (READY, UNAVAILABLE):
            # A model named but not used (see model_switch.py) stays said until dismissed.
            lasting = state == UNAVAILABLE or self.model_ctl.switch_plan is not None
            self.statusBar().showMessage(message, 0 if lasting else 5000)
        if state == READY and self.model_ctl.switch_plan is None and not self.indexing.running \
                and self.library.catalog.files_missing_vectors(self.library.model_key):
            # Sounds without this model's vectors (a model folder chosen instead of a missing
            # one): embed them now, with progress, rather than list nothing until F5.
            self.on_update_library()
        if state in (READY, UNAVAILABLE):
            model_notices.model_settled(self, state == READY)  # the text tower's health
        if state == READY and self.pending_search is not None:
            text, parsed = self.pending_search
            self.pending_search = None
            if text == self.search.text().strip():
                self._search(text, parsed)

    def _model_folder_chosen(self, folder: str) -> None:
        """Saved, so that the model that was missing does not come back at the next start."""
        self.settings.set("model", folder)
        self.settings.sync()

    def _offer_download(self, ref: str) -> None:
        dialog = DownloadDialog(ref, self.model_ctl, self)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.open()
        self.download_dialog = dialog

    # -- indexing -----------------------------------------------------------------------------
    def _index_started(self) -> None:
        self.progress.bar.setRange(0, 0)
        self.progress.show()
        self.live_timer.start()

    def _index_finished(self, report: IndexReport | None) -> None:
        self.live_timer.stop()
        self.progress.hide()
        self.refresh_overview()
        if self.search.text().strip():
            self.search.fire()
        else:
            self.browse(keep_scroll=True)
        if report is not None:
            self.statusBar().showMessage(describe_report(report), 15000)

    def _remove_folder(self, folder: str) -> None:
        answer = QMessageBox.question(
            self, "Remove library folder",
            f"Forget {display_path(folder)} and its sounds? The files themselves stay on disk.")
        if answer == QMessageBox.StandardButton.Yes:
            self.indexing.remove(folder)

    def _folder_removed(self, files: int) -> None:
        self.statusBar().showMessage(f"Folder removed from the library ({files} sounds)", 6000)
        if self.place[0] == jobs.FOLDER:
            self.place = (jobs.ALL, "")
        if self.search.text().strip():
            self.search.fire()
        else:
            self.browse()

    def _task_failed(self, name: str, exc: BaseException) -> None:
        self.statusBar().showMessage(f"Something went wrong ({name}): {exc}", 15000)

    def _auditioned(self, path: str) -> None:
        row = self.model.row_of(path)
        if row >= 0:
            self.library.catalog.record_history("audition", file_id=self.model.hit(row).file.id)
        if self.search.text().strip():
            self._record_query()  # a query good enough to listen to is worth remembering

    # -- closing ------------------------------------------------------------------------------
    def closeEvent(self, event: QCloseEvent) -> None:
        self.settings.set_layout("geometry", self.saveGeometry())
        self.settings.set_layout("window_state", self.saveState())
        self.settings.set_layout("side_split", self.side_split.saveState())
        self.settings.set_layout("results_split", self.results_split.saveState())
        self.settings.set("volume", self.transport.volume.value())
        self.settings.sync()
        self.shutdown()
        super().closeEvent(event)

    def shutdown(self) -> None:
        """Stop everything this window started; safe to call twice."""
        if self._shut:
            return
        self._shut = True
        self.live_timer.stop()
        self.search.timer.stop()
        self.audition.timer.stop()
        self.indexing.stop_watching()
        self.indexing.cancel()
        self.player.close()
        # Loading the model (torch's import, the weights) cannot be interrupted and took 3.7 s
        # to finish when quit mid-way: wait a little, then leave it to the process's exit
        # (app.run_app). Nothing it writes is lost: SQLite keeps each commit whole.
        self.left_running = not self.runner.shutdown(QUIT_WAIT_MS)
        torch_threads.shutdown()  # the query lane: no search runs once the runner is idle
        self.library.close()

