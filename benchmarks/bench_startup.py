"""Seconds from process start to a shown, responsive window with the library browsable.

A catalog of N analysed rows is written first (no model needed to browse), then a fresh Python
process starts the app offscreen. The child reports, against the parent's clock at spawn:
when the window was shown and the event loop turned (responsive), when the library rows were
in the table (browsable), when the model was ready in the background, and the longest the GUI
thread went without processing a 10 ms timer while torch and the model loaded. Prints one JSON
object:

    python benchmarks/bench_startup.py [--files 5000] [--full]

--full builds the full larger_clap_music architecture with random weights (slow to build)
instead of the tiny test model. Target: window shown and responsive in under 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

CHILD = r"""
import json, os, sys, time
spawned = float(os.environ["CLAPDESK_BENCH_SPAWNED"])
def since() -> float:
    return time.time() - spawned
from PySide6.QtCore import QTimer
from clapdesk.gui.app import application, create_window
app = application()
window = create_window(model=os.environ["CLAPDESK_BENCH_MODEL"])
out = {"window_created_s": round(since(), 3),
       "torch_imported_when_shown": "torch" in sys.modules}
gap = {"last": time.perf_counter(), "largest": 0.0}
def tick():
    now = time.perf_counter()
    gap["largest"] = max(gap["largest"], now - gap["last"])
    gap["last"] = now
def responsive():
    out["responsive_s"] = round(since(), 3)
    out["window_visible"] = window.isVisible()
def poll():
    if "browsable_s" not in out and window.model.rowCount() > 0:
        out["browsable_s"] = round(since(), 3)
        out["rows"] = window.model.rowCount()
    if window.model_ctl.state in ("ready", "unavailable") and "browsable_s" in out:
        out["model_state"] = window.model_ctl.state
        out["model_ready_s"] = round(since(), 3)
        out["largest_ui_gap_while_model_loads_ms"] = round(gap["largest"] * 1000, 1)
        print(json.dumps(out), flush=True)
        window.close()
        app.quit()
ticker = QTimer(); ticker.setInterval(10); ticker.timeout.connect(tick); ticker.start()
poller = QTimer(); poller.setInterval(5); poller.timeout.connect(poll); poller.start()
QTimer.singleShot(0, responsive)
QTimer.singleShot(120000, app.quit)
app.exec()
"""


def write_catalog(library: Path, count: int) -> None:
    from clapdesk.core.store.catalog import Catalog

    catalog = Catalog(library / "catalog.sqlite3")
    root = catalog.add_root("/samples")
    kinds = ("one-shot", "loop")
    with catalog.transaction():
        for i in range(count):
            file_id = catalog.upsert_file(f"/samples/pack{i // 200:03d}/sound_{i:06d}.wav", root,
                                          1000 + i, i, f"hash{i}", duration=0.5 + i % 8,
                                          bpm=None if i % 2 else 80.0 + i % 80,
                                          kind=kinds[i % 2], format="WAV")
            catalog.set_tags(file_id, [("drum", 1.0), ("dark", 0.4)], "auto")
    catalog.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=5000)
    parser.add_argument("--full", action="store_true")
    args = parser.parse_args()
    from modelfactory import build_clap

    with tempfile.TemporaryDirectory(prefix="clapdesk-bench-startup-") as tmp:
        base = Path(tmp)
        model = build_clap(base / "model", full=args.full)
        write_catalog(base / "library", args.files)
        env = dict(os.environ, CLAPDESK_LIBRARY=str(base / "library"),
                   CLAPDESK_CONFIG=str(base / "config"), CLAPDESK_CACHE=str(base / "cache"),
                   CLAPDESK_BENCH_MODEL=str(model), HF_HUB_OFFLINE="1",
                   QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
        env["CLAPDESK_BENCH_SPAWNED"] = repr(time.time())
        started = time.perf_counter()
        child = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True,
                               text=True, timeout=300)
        wall = time.perf_counter() - started
        lines = [line for line in child.stdout.splitlines() if line.startswith("{")]
        if not lines:
            print(json.dumps({"error": "the app did not report", "stderr": child.stderr[-2000:]}))
            sys.exit(1)
        result = json.loads(lines[-1])
        result.update(files=args.files, full_model=args.full, process_wall_s=round(wall, 3),
                      target_responsive_s=1.5,
                      meets_target=result.get("responsive_s", 99) < 1.5)
        print(json.dumps(result))


if __name__ == "__main__":
    main()
