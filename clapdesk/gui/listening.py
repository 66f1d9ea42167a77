"""The window during a first indexing run: searching before the model has heard every sound.

While the model loads, a text search is answered at once by names, folders, tags, tempo and key
(core/search/unheard.py) on the general pool, since the model's lane is busy loading it; it is
searched again by sound as soon as the model is ready. While indexing goes on, a result list that
shows sounds not heard yet, or nothing, is searched again every few seconds (keeping the scroll
position and the selection), so those sounds take their place in the ranking as their vectors
land, and files catalogued since show at all.

What those refreshes cost grows with the library: on 100,000 files the side panel's overview
and the browsed place (5,000 rows) took 360-435 ms each time, 40-65 ms of it on the window's own
thread (2-core EPYC), so at every 3 s they took 12-14 % of a core from the indexing. LivePace
spaces them so that they take at most LIVE_SHARE of a core: every 7-9 s there, and about every 3 s
on a library of 3,000 files (benchmarks/bench_live_refresh.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from clapdesk.core.search.query import ParsedQuery
from clapdesk.core.search.ranking import Filters, Hit, SearchResponse
from clapdesk.gui import jobs
from clapdesk.gui.model_control import UNAVAILABLE
from clapdesk.gui.wording import counted

if TYPE_CHECKING:
    from PySide6.QtCore import QTimer

    from clapdesk.gui.main_window import MainWindow

LIVE_REFRESH_MS = 3000  # while indexing, the browsed place is re-read this often at most
LIVE_REFRESH_LONGEST_MS = 30_000  # and at least this often, however much it costs
LIVE_SHARE = 0.05  # the share of one core the refreshes' reads and redraws may take


class LivePace:
    """Measures what the live refreshes cost (the reads' CPU time on their worker threads, the
    redraws' time on the window's thread) and spaces the refreshes by it."""

    def __init__(self, timer: QTimer) -> None:
        self.timer = timer
        self._cost = 0.0  # seconds spent since the last refresh began
        self._lock = threading.Lock()  # the reads report from worker threads

    def add(self, seconds: float) -> None:
        with self._lock:
            self._cost += seconds

    def measured(self, job: Callable[..., Any], show: Callable[[Any], None]
                 ) -> tuple[Callable[..., Any], Callable[[Any], None]]:
        """The job and its result's handler, each adding what it costs."""
        def timed_job(*args: Any, **kwargs: Any) -> Any:
            began = time.thread_time()  # CPU time: a read waiting on the indexer costs nothing
            try:
                return job(*args, **kwargs)
            finally:
                self.add(time.thread_time() - began)

        def timed_show(result: Any) -> None:
            began = time.perf_counter()  # the window's thread: its wall time is the stall
            try:
                show(result)
            finally:
                self.add(time.perf_counter() - began)
        return timed_job, timed_show

    def next_refresh(self) -> None:
        """A refresh begins: the one after it waits LIVE_REFRESH_MS, or long enough that what
        the refreshes cost stays within LIVE_SHARE of a core."""
        with self._lock:
            cost, self._cost = self._cost, 0.0
        wanted = int(cost / LIVE_SHARE * 1000)
        self.timer.setInterval(max(LIVE_REFRESH_MS, min(LIVE_REFRESH_LONGEST_MS, wanted)))


def results_title(hits: list[Hit], label: str, response: SearchResponse) -> str:
    """"12 results for “kick”", with what is not heard yet said when it matters."""
    title = f"{counted(len(hits), 'result')} for {label}"
    if response.model_loading:
        return title + " — by name, tags, tempo and key while the model loads"
    if response.not_heard:
        return title + (f" — {counted(response.not_heard, 'sound')} not heard yet: found by "
                        "name until indexing reaches them")
    return title


def search_before_model(window: MainWindow, text: str, parsed: ParsedQuery,
                        filters: Filters) -> None:
    """A text search while the model is not ready: by names now when it is loading (the
    window searches again by sound once it is ready), else the old message."""
    if window.model_ctl.state == UNAVAILABLE:
        window.title.setText(f"Searching for “{text}” needs the model, which is unavailable: "
                             "see the status bar")
        return
    if not window.library.model_loading:
        window.title.setText(f"“{text}” will be searched as soon as the model is ready")
        return
    window.generation += 1
    window.runner.submit(jobs.run_search, window.library, window.generation,
                         lambda: window.generation, text, parsed, window.settings.get("results"),
                         filters, name="search by name", on_result=window._show_search,
                         on_error=window._search_failed)


def live_refresh(window: MainWindow) -> None:
    """Every few seconds while indexing: the side panel's counts and folders, and the browsed
    place read again, or the search run again when it lists sounds not heard yet. (The side
    panel used to wait for the run's end: "All sounds (0)" and no folder for a whole first
    run, while its files were already searchable.) Spaced by what they cost (LivePace)."""
    window.live_pace.next_refresh()
    window.refresh_overview(window.live_pace)
    text = window.search.text().strip()
    if not text and not window.search.similar_to:
        window.browse(keep_scroll=True, pace=window.live_pace)
        return
    if window.search.similar_to:
        return
    # An empty list is read again too: a query typed the moment a folder was added found
    # nothing, and kept "0 results" until the model was ready, though its files were
    # catalogued a second later.
    if window.model.not_heard() == 0 and window.model.rowCount() > 0:
        return
    ready = window.model_ctl.ready
    if not ready and not window.library.model_loading:
        return  # nothing can answer yet: the title says when it will
    window.generation += 1
    kind, value = window.place
    filters = Filters(folder=value) if kind == jobs.FOLDER else Filters()

    def show(outcome: jobs.SearchOutcome) -> None:
        if outcome.response is None or outcome.generation != window.generation:
            return
        label = f"“{outcome.title}”"
        window._set_rows(outcome.response.hits, True,
                         results_title(outcome.response.hits, label, outcome.response),
                         keep_scroll=True)

    search, show = window.live_pace.measured(jobs.run_search, show)
    window.runner.submit(search, window.library, window.generation,
                         lambda: window.generation, text, window.search.parsed,
                         window.settings.get("results"), filters,
                         # While the model loads its lane is busy: by names, on the general one.
                         pool="model" if ready else "general",
                         name="search again", on_result=show, on_error=window._search_failed)
