"""The window during a first indexing run: a search answers by name while the model loads, and
the sounds the model has not heard yet say so, in the table and beside the progress bar."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from conftest import family_sound, write_sound
from PySide6.QtCore import Qt

from clapdesk.gui.results_model import MATCH, NAME, NOT_HEARD

from .test_main_window import MAX_UI_GAP_S, GapMeter


def _kicks_and_pads(tmp_path: Path) -> Path:
    folder = tmp_path / "samples"
    for i in range(3):
        write_sound(folder / "Drums" / f"Kick {i} Punchy.wav", family_sound("kick", i))
        write_sound(folder / "Pads" / f"Warm Pad {i}.wav", family_sound("pad", i))
    return folder


def _started_with_the_model_held(qtbot, make_window, monkeypatch, before_start=None):  # noqa: ANN001, ANN202
    """The window started, its library's model load held until the returned event is set."""
    window = make_window(start=False)
    if before_start is not None:
        before_start(window.library)
    release = threading.Event()
    real_embedder = window.library.embedder

    def held_model():  # noqa: ANN202
        assert release.wait(120), "the test never let the model load"
        return real_embedder()

    monkeypatch.setattr(window.library, "embedder", held_model)
    window.start()
    qtbot.waitUntil(lambda: window.model_ctl.state != "checking", timeout=30000)
    return window, release


def test_a_search_while_the_model_loads_lists_sounds_not_heard_yet(
        qtbot, make_window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = tmp_path / "samples"
    for i in range(3):
        write_sound(folder / "Drums" / f"Kick {i} Punchy.wav", family_sound("kick", i))
        write_sound(folder / "Pads" / f"Warm Pad {i}.wav", family_sound("pad", i))
    window = make_window(start=False)
    library = window.library
    release = threading.Event()
    real_embedder = library.embedder

    def held_model():  # noqa: ANN202 - the model's load, held until the test has looked
        assert release.wait(120), "the test never let the model load"
        return real_embedder()

    monkeypatch.setattr(library, "embedder", held_model)
    import torch  # noqa: F401 - torch's import is start-up's cost, not this test's

    window.start()
    qtbot.waitUntil(lambda: window.model_ctl.state != "checking", timeout=30000)
    meter = GapMeter()
    meter.start()
    try:
        window.indexing.index([str(folder)])
        qtbot.waitUntil(lambda: "6 not heard yet" in window.progress.label.text(), timeout=60000)
        assert library.model_loading and not library.model_loaded
        window.search.set_text("punchy kick")
        qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=30000)
        largest = meter.stop()
        assert not library.model_loaded  # answered without waiting for the model
        assert "while the model loads" in window.title.text()
        rows = range(window.proxy.rowCount())
        assert {window.proxy.index(r, NAME).data() for r in rows} == {
            f"Kick {i} Punchy.wav" for i in range(3)}
        assert all(window.proxy.index(r, MATCH).data() == NOT_HEARD for r in rows)
        tip = window.proxy.index(0, MATCH).data(Qt.ItemDataRole.ToolTipRole)
        assert "Not listened to yet" in tip
        assert largest < MAX_UI_GAP_S, f"the UI thread was blocked for {largest * 1000:.0f} ms"
    finally:
        release.set()
    with qtbot.waitSignal(window.indexing.finished, timeout=120000):
        pass
    # Indexed: the same search ranks by sound, and nothing reads "not heard yet" any more.
    qtbot.waitUntil(lambda: window.model.rowCount() > 0 and window.model.not_heard() == 0
                    and "while the model loads" not in window.title.text(), timeout=60000)
    shown = [window.proxy.index(r, MATCH).data() for r in range(window.proxy.rowCount())]
    assert NOT_HEARD not in shown


def test_rows_not_heard_yet_say_so_and_sort_after_the_ranked_ones() -> None:
    from clapdesk.core.search.ranking import Hit
    from clapdesk.core.store.catalog import FileRecord
    from clapdesk.gui.results_model import SCORE_ROLE, SORT_ROLE, ResultsModel

    def record(i: int, name: str) -> FileRecord:
        return FileRecord(i, f"/s/{name}", 1, 1, 1, None, 1.0, 44100, 1, "WAV", "PCM_16", None, 0.0)

    ranked = Hit(record(1, "kick a.wav"), 0.02, match=40.0)
    unheard = Hit(record(2, "kick b.wav"), 0.0, heard=False)
    model = ResultsModel()
    model.set_hits([unheard, ranked], scored=True)
    rows = {model.index(r, NAME).data(): r for r in range(2)}
    assert model.index(rows["kick b.wav"], MATCH).data() == NOT_HEARD
    assert model.index(rows["kick b.wav"], MATCH).data(SCORE_ROLE) is None  # no match bar
    assert model.index(rows["kick a.wav"], MATCH).data() == "40 %"
    assert model.index(rows["kick b.wav"], MATCH).data(SORT_ROLE) < \
        model.index(rows["kick a.wav"], MATCH).data(SORT_ROLE)
    assert model.not_heard() == 1


def test_the_side_panel_follows_a_first_run_before_it_ends(
        qtbot, make_window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """The model held back: the folder and its six catalogued sounds show in the side panel
    while the run goes on (they waited for its end), and a selected folder stays selected."""
    folder = _kicks_and_pads(tmp_path)
    window, release = _started_with_the_model_held(qtbot, make_window, monkeypatch)
    library = window.library
    try:
        window.indexing.index([str(folder)])
        qtbot.waitUntil(lambda: "6 not heard yet" in window.progress.label.text(), timeout=60000)
        side = window.side
        qtbot.waitUntil(lambda: side.library.text(0) == "All sounds (6)", timeout=15000)
        assert side.folder_paths() == [str(folder)]
        assert window.indexing.running and not library.model_loaded
        side.tree.setCurrentItem(side.folders.child(0))
        ticks = []
        window.live_timer.timeout.connect(lambda: ticks.append(1))
        qtbot.waitUntil(lambda: len(ticks) >= 2, timeout=15000)
        qtbot.wait(200)  # the overview read on those ticks has been shown
        assert side.tree.currentItem() is side.folders.child(0)  # not rebuilt under the hand
    finally:
        release.set()
    with qtbot.waitSignal(window.indexing.finished, timeout=120000):
        pass


def test_a_query_typed_before_the_files_were_catalogued_finds_them_while_the_model_loads(
        qtbot, make_window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = _kicks_and_pads(tmp_path)
    window, release = _started_with_the_model_held(qtbot, make_window, monkeypatch)
    library = window.library
    window.search.set_text("punchy kick")  # nothing in the library yet
    window.search.fire()
    assert window.model.rowCount() == 0
    try:
        window.indexing.index([str(folder)])
        # Read again every few seconds while the model still loads: the kicks show by name.
        qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=20000)
        assert library.model_loading and not library.model_loaded
        assert "while the model loads" in window.title.text()
    finally:
        release.set()
    with qtbot.waitSignal(window.indexing.finished, timeout=120000):
        pass


def _catalogue_many(library, count: int) -> None:  # noqa: ANN001
    """`count` files already in the catalog, each with tags and a vector, as a large library."""
    catalog = library.catalog
    root_id = catalog.add_root("/elsewhere/large library")
    with catalog.transaction():
        catalog.db.executemany(
            "INSERT INTO files(path, root_id, size, mtime_ns, content_hash, duration, "
            "sample_rate, channels, format, subtype, indexed_at, kind) "
            "VALUES (?, ?, 1000, 1, ?, 1.5, 44100, 2, 'WAV', 'PCM_16', 0, 'one-shot')",
            [(f"/elsewhere/large library/pack {i // 500:03d}/hit {i:05d}.wav".encode(), root_id,
              f"{i:040x}") for i in range(count)])
        catalog.db.execute("INSERT INTO tags(file_id, tag, source, score) "
                           "SELECT id, 'kick', 'auto', 0.5 FROM files")


def test_the_live_refresh_waits_longer_where_it_costs_more(
        qtbot, make_window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    """20,000 files catalogued: each live refresh reads the overview and 5,000 rows again and
    redraws them. What the first one cost sets how long the next waits: long enough that the
    refreshes stay within LIVE_SHARE of a core (about 4 s here, where they cost about 0.2 s)."""
    from clapdesk.gui import listening

    folder = _kicks_and_pads(tmp_path)
    window, release = _started_with_the_model_held(
        qtbot, make_window, monkeypatch, before_start=lambda lib: _catalogue_many(lib, 20_000))
    pace = window.live_pace
    consumed: list[float] = []
    real_next = pace.next_refresh

    def next_refresh() -> None:
        consumed.append(pace._cost)  # what the refreshes since the last one cost
        real_next()

    monkeypatch.setattr(pace, "next_refresh", next_refresh)
    ticks: list[int] = []
    window.live_timer.timeout.connect(lambda: ticks.append(window.live_timer.interval()))
    try:
        window.indexing.index([str(folder)])
        qtbot.waitUntil(lambda: len(ticks) >= 2, timeout=30000)
        assert consumed[0] == 0.0 and ticks[0] == listening.LIVE_REFRESH_MS
        # The first refresh's reads and redraw were measured, and they set the next interval.
        assert consumed[1] > 0.0
        wanted = int(consumed[1] / listening.LIVE_SHARE * 1000)
        assert ticks[1] == max(listening.LIVE_REFRESH_MS,
                               min(listening.LIVE_REFRESH_LONGEST_MS, wanted))
        assert window.model.rowCount() == 5000  # and it still refreshed the rows
    finally:
        release.set()
    with qtbot.waitSignal(window.indexing.finished, timeout=120000):
        pass


def test_live_pace_keeps_the_refreshes_within_their_share_of_the_time(qtbot) -> None:  # noqa: ANN001
    from PySide6.QtCore import QTimer

    from clapdesk.gui.listening import (
        LIVE_REFRESH_LONGEST_MS,
        LIVE_REFRESH_MS,
        LIVE_SHARE,
        LivePace,
    )

    timer = QTimer()
    pace = LivePace(timer)
    pace.next_refresh()
    assert timer.interval() == LIVE_REFRESH_MS  # cheap: as often as before
    read, show = pace.measured(lambda n: sum(i * i for i in range(n)), lambda _: None)
    began = time.thread_time()
    show(read(10_000_000))  # CPU time on this thread, as a worker's read
    spent = time.thread_time() - began
    pace.next_refresh()
    assert abs(timer.interval() - max(LIVE_REFRESH_MS, spent / LIVE_SHARE * 1000)) <= 0.1 * timer.interval()
    pace.add(60.0)  # a refresh that took a minute: still at least every 30 s
    pace.next_refresh()
    assert timer.interval() == LIVE_REFRESH_LONGEST_MS
    pace.next_refresh()  # what was measured is spent: back to the floor
    assert timer.interval() == LIVE_REFRESH_MS
