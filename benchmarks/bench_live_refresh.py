"""What the window's live refresh costs while indexing a large library, and how often it runs.

While an indexing run goes on, the window re-reads the side panel's overview and the browsed
place (up to 5,000 rows) every few seconds. This fills a catalog of --files files (bench_search's
rows: tags, vectors, analysis; one in 200 failed, one in 50 with an identical twin, a long
history), opens the real window over it (offscreen; the model is not loaded, the reads do not
need it) and runs --refreshes live refreshes one after the other, each to its end. It reports
per refresh: the reads' CPU time on the worker threads, the redraw's time on the window's
thread, and the interval LivePace chose from them; and the share of one core the refreshes take
at that interval against the fixed 3 s of before.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_live_refresh.py [--files 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import full_model, load_average, quiet_libraries  # noqa: E402

quiet_libraries()

import numpy as np  # noqa: E402


def fill(library, files: int) -> None:  # noqa: ANN001
    from bench_search import fill_catalog

    fill_catalog(library, np.zeros((files, 4), np.float32))
    catalog = library.catalog
    with catalog.transaction():
        catalog.db.executemany("UPDATE files SET error = 'could not decode' WHERE id = ?",
                               [(i,) for i in range(1, files, 200)])
        catalog.db.executemany("UPDATE files SET content_hash = ? WHERE id = ?",
                               [(f"{i // 2:040x}", i) for i in range(1, files, 50)])
        catalog.db.executemany(
            "INSERT INTO history(kind, value, file_id, at) VALUES (?, ?, ?, ?)",
            [("audition", None, i % files + 1, float(i)) for i in range(20_000)]
            + [("query", f"query {i % 3000}", None, float(i)) for i in range(20_000)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--refreshes", type=int, default=8)
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    scratch = Path(tempfile.mkdtemp(prefix="clapdesk-bench-live-"))
    for name in ("CLAPDESK_CACHE", "CLAPDESK_CONFIG", "CLAPDESK_DATA"):
        os.environ[name] = str(scratch / name.lower())

    from PySide6.QtWidgets import QApplication

    from clapdesk.core.library import Library
    from clapdesk.gui import listening
    from clapdesk.gui.main_window import MainWindow
    from clapdesk.gui.settings import Settings

    model = str(full_model())
    library = Library(root=scratch / "library", model=model)
    started = time.perf_counter()
    fill(library, args.files)
    fill_seconds = time.perf_counter() - started
    library.close()

    app = QApplication([])
    window = MainWindow(Library(root=scratch / "library", model=model, allow_download=False),
                        Settings())
    window._model_started = True  # the reads are measured, not the model: it is never loaded
    window.show()
    window.browse()
    window.runner.wait("general")
    app.processEvents()

    measured: list[float] = []
    spent_here: list[float] = []
    real_add = window.live_pace.add
    window.live_pace.add = lambda seconds: (measured.append(seconds), real_add(seconds))[1]
    costs, intervals = [], []
    for _ in range(args.refreshes + 1):
        measured.clear()
        listening.live_refresh(window)  # sets the interval from the previous refresh's cost
        intervals.append(window.live_timer.interval())
        window.runner.wait("general")
        began = time.perf_counter()
        app.processEvents()  # the results are shown on this thread
        spent_here.append(time.perf_counter() - began)
        costs.append(sum(measured))
    intervals = intervals[1:]  # each chosen from the refresh before it
    costs = costs[:-1]
    cost = statistics.median(costs)
    interval = statistics.median(intervals) / 1000
    window.close()
    window.shutdown()
    print(json.dumps({
        "benchmark": "live_refresh", "files": args.files, "rows_browsed": window.model.rowCount(),
        "fill_seconds": round(fill_seconds, 1), "refreshes": args.refreshes,
        "cost_ms_per_refresh": round(cost * 1000, 1),
        "cost_ms_per_refresh_all": [round(c * 1000, 1) for c in costs],
        "window_thread_ms_per_refresh": round(statistics.median(spent_here) * 1000, 1),
        "interval_s": round(interval, 1),
        "share_of_a_core": round(cost / interval, 4),
        "share_of_a_core_at_3s": round(cost / (listening.LIVE_REFRESH_MS / 1000), 4),
        "load_average_1min": load_average(),
    }))


if __name__ == "__main__":
    main()
