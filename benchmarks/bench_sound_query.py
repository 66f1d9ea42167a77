"""Searching with a sound: from the drop (or the end of a recording) to the results, in ms.

The model is larger_clap_general's real architecture with random weights (built from the shared
configs where present); the library is a catalog of N vectors written in bulk with its HNSW
index, as an indexing run leaves it. Prints one JSON object:

- core: `from_file` + `search_sound` for a file from outside the library of 1, 4 and 10 s
  (decoding at its true rate, resampling, the audio tower, the search), the same for a
  recording held in memory (`from_samples`), and searching the same sound again with words
  (one text encoding plus the search) and with each aspect;
- window: the real MainWindow (offscreen): a file dropped on the search field until its rows
  are on screen, and the end of a recording until its rows are on screen (the record strip's
  own path after the device stops: trimming, the model pool, the rows).

Every figure is the median of `--repeat` runs, with the load average beside it.

    nice python benchmarks/bench_sound_query.py [--files 100000] [--repeat 5] [--quick]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bench_dir, load_average, quiet_libraries  # noqa: E402

quiet_libraries()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

DIM = 512


def model_folder() -> Path:
    from bench_first_start import build_repo

    return build_repo(bench_dir() / "larger-clap-general-random")


def pluck(seconds: float, rate: int = 44100, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = np.sin(2 * np.pi * 220 * t) * np.exp(-t * 3) + 0.01 * rng.standard_normal(t.size)
    return (0.5 * wave).astype(np.float32)


def make_library(root: Path, model: Path, files: int) -> None:
    from bench_search import build, clustered_vectors, fill_catalog

    from clapdesk.core.library import Library
    from clapdesk.core.store import vector_index as vi

    vectors = clustered_vectors(files)
    library = Library(root=root, model=str(model))
    fill_catalog(library, vectors)
    index, _, _ = build(vectors, 600)
    saved = vi.VectorIndex(library.paths.index_file(vi.model_slug(library.model_key)),
                           library.model_key)
    saved.index, saved.dim, saved.live = index.index, DIM, set(index.live)
    saved.seen_row, saved.dirty = library.catalog.max_vector_row(library.model_key), True
    saved.save()
    library.close()


def let_text_through(embedder: object) -> None:
    """Random weights cost what the real model costs, but their text tower fails the health
    check (steering would be refused): let it through, the timing is what is measured."""
    embedder.text_health = dataclasses.replace(embedder.text_health, text_ok=True)  # type: ignore[attr-defined]


def median_ms(samples: list[float]) -> float:
    return round(1000 * statistics.median(samples), 1)


def core_figures(root: Path, model: Path, scratch: Path, repeat: int) -> dict[str, object]:
    from clapdesk.core.library import Library
    from clapdesk.core.search.sound_query import from_file, from_samples, search_sound

    library = Library(root=root, model=str(model))
    library.vector_index()
    let_text_through(library.embedder())
    warm = scratch / "warm.wav"
    sf.write(warm, pluck(1.0), 44100)
    search_sound(library, from_file(library, str(warm)), 50, words="warm up")
    out: dict[str, object] = {}
    for seconds in (1.0, 4.0, 10.0):
        path = scratch / f"outside_{seconds:g}s.wav"
        sf.write(path, pluck(seconds, 48000), 48000, subtype="PCM_24")
        runs, cpu = [], []
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.process_time()
            search_sound(library, from_file(library, str(path)), 50)
            runs.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
        out[f"dropped_file_{seconds:g}s_ms"] = median_ms(runs)
        out[f"dropped_file_{seconds:g}s_cpu_ms"] = median_ms(cpu)
    take = pluck(3.0)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        search_sound(library, from_samples(library, take, 44100, "take"), 50)
        runs.append(time.perf_counter() - start)
    out["recording_3s_ms"] = median_ms(runs)
    sound = from_file(library, str(scratch / "outside_1s.wav"))
    for label, kwargs in (("again_plain", {}), ("again_with_words", {"words": "darker, -reverb"}),
                          ("again_timbre", {"aspect": "timbre"}),
                          ("again_pitch", {"aspect": "pitch"}),
                          ("again_rhythm", {"aspect": "rhythm"})):
        runs = []
        for _ in range(repeat):
            start = time.perf_counter()
            search_sound(library, sound, 50, **kwargs)
            runs.append(time.perf_counter() - start)
        out[f"{label}_ms"] = median_ms(runs)
    library.close()
    return out


def window_figures(root: Path, model: Path, scratch: Path, repeat: int) -> dict[str, object]:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    from clapdesk.core.library import Library
    from clapdesk.gui.main_window import MainWindow
    from clapdesk.gui.model_control import READY
    from clapdesk.gui.settings import Settings

    os.environ["CLAPDESK_CONFIG"] = str(scratch / "config")
    window = MainWindow(Library(root=root, model=str(model), allow_download=False), Settings())
    window.indexing.watching = False
    window.show()
    window.start()

    def wait(condition: object, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
            app.processEvents()
            time.sleep(0.002)
        return bool(condition())  # type: ignore[operator]

    if not wait(lambda: window.model_ctl.state == READY, 600):
        raise SystemExit(f"the model did not load: {window.model_ctl.message}")
    shown: list[float] = []
    window.sound_search.results_shown.connect(shown.append)

    def drop(path: Path) -> None:
        mime = QMimeData()
        mime.setUrls([QUrl.fromLocalFile(str(path))])
        field = window.search.field
        at = field.rect().center()
        QApplication.sendEvent(field, QDragEnterEvent(at, Qt.DropAction.CopyAction, mime,
                                                      Qt.MouseButton.LeftButton,
                                                      Qt.KeyboardModifier.NoModifier))
        QApplication.sendEvent(field, QDropEvent(QPoint(at), Qt.DropAction.CopyAction, mime,
                                                 Qt.MouseButton.LeftButton,
                                                 Qt.KeyboardModifier.NoModifier))

    drops, records = [], []
    panel = window.sound_search.panel
    for i in range(repeat + 1):  # the first of each warms up
        path = scratch / f"drop_{i}.wav"
        sf.write(path, pluck(1.5, 44100, seed=i), 44100)
        count = len(shown)
        drop(path)
        wait(lambda count=count: len(shown) > count, 120)
        drops.append(shown[-1])
        # The device has stopped: from here on it is the strip's own path.
        panel.take = np.concatenate([np.zeros(22050, np.float32), pluck(2.0, seed=50 + i),
                                     np.zeros(22050, np.float32)])
        panel.rate = 44100
        count = len(shown)
        panel.stopped_at = time.perf_counter()
        panel._trim_and_search()
        wait(lambda count=count: len(shown) > count, 120)
        records.append(shown[-1])
    window.shutdown()
    return {"drop_to_results_ms": round(statistics.median(drops[1:]), 1),
            "end_of_recording_to_results_ms": round(statistics.median(records[1:]), 1),
            "rows": window.model.rowCount()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="10k files, 3 runs each")
    args = parser.parse_args()
    files, repeat = (10_000, 3) if args.quick else (args.files, args.repeat)
    import torch

    model = model_folder()
    with tempfile.TemporaryDirectory(prefix="clapdesk-bench-sound-") as folder:
        scratch = Path(folder)
        root = scratch / "library"
        start = time.perf_counter()
        make_library(root, model, files)
        result: dict[str, object] = {
            "library_files": files, "repeat": repeat, "torch_threads": torch.get_num_threads(),
            "library_build_seconds": round(time.perf_counter() - start, 1),
            "load_average_before": load_average()}
        result["core"] = core_figures(root, model, scratch, repeat)
        result["window"] = window_figures(root, model, scratch, repeat)
        result["load_average_after"] = load_average()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
