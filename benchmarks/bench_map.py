"""The map of the library: layout speed, memory and neighbours kept; placing new files; frames.

Prints one JSON object:
- layout: per method (openTSNE, and UMAP when umap-learn is importable) and size, the seconds
  (wall and CPU), peak resident memory and the fraction of each point's 10 nearest neighbours
  in 512-d kept among its 10 nearest on the map, on clustered 512-d vectors (PCA to 50 first).
  Each layout runs in its own process, so its peak memory is its own;
- placing 1,000 new files among 100k laid-out ones by their neighbours (the app's way), and
  openTSNE's own `transform` of 1,000 points into a 10k layout for comparison;
- frame times while panning 100k points: blitting the app's cached image, and drawing every
  point each frame with QPainter.drawPoints on a QWidget and on a QOpenGLWidget; plus the time
  to draw the cache again when a gesture rests. Under Xvfb with xcb when Xvfb is installed.

    python benchmarks/bench_map.py [--sizes 10000,100000] [--methods tsne,umap] [--no-frames]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average  # noqa: E402

DIM = 512
NEW_FILES = 1000
FRAME_POINTS = 100_000
FRAMES = 90


def clustered(n: int, seed: int = 0, families: int = 50) -> np.ndarray:
    """Families of sounds: each family varies along a few directions of its own, plus a little
    noise, normalised like CLAP vectors (isotropic noise alone would leave no neighbourhoods
    worth keeping, in 512-d or on any map)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((families, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    spread = rng.standard_normal((families, DIM, 4)).astype(np.float32) * (0.7 / np.sqrt(DIM))
    labels = rng.integers(0, families, n)
    out = np.empty((n, DIM), np.float32)
    for at in range(0, n, 10000):  # in blocks: (n, 512, 4) at once is 800 MB at 100k
        part = labels[at: at + 10000]
        latent = rng.standard_normal((len(part), 4)).astype(np.float32)
        out[at: at + 10000] = centres[part] + np.einsum("ndk,nk->nd", spread[part], latent)
    out += rng.standard_normal((n, DIM)).astype(np.float32) * (0.05 / np.sqrt(DIM))
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


# -- one layout, in a child process ---------------------------------------------------------------
def child_layout(method: str, n: int, transform: bool) -> dict:
    from clapdesk.core.map.layout import fit_projection, lay_out, neighbours_kept

    vectors = clustered(n)
    started_cpu, started = time.process_time(), time.perf_counter()
    reduced = fit_projection(vectors).apply(vectors)
    if method == "tsne":
        positions = lay_out(reduced)
    else:
        import umap

        positions = umap.UMAP(n_neighbors=15, n_jobs=2).fit_transform(reduced).astype(np.float32)
    out = {"method": method, "n": n, "seconds": round(time.perf_counter() - started, 1),
           "cpu_seconds": round(time.process_time() - started_cpu, 1),
           "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
           "neighbours_kept_k10": round(neighbours_kept(vectors, positions), 3)}
    if transform and method == "tsne":
        out["opentsne_transform_1000_s"] = _opentsne_transform(reduced)
    return out


def _opentsne_transform(reduced: np.ndarray) -> float:
    """openTSNE's own placement of new points (needs the fitted embedding kept in memory)."""
    from openTSNE import TSNE

    known, new = reduced[:-NEW_FILES].astype(np.float64), reduced[-NEW_FILES:].astype(np.float64)
    embedding = TSNE(n_jobs=2, random_state=0).fit(known)
    started = time.perf_counter()
    embedding.transform(new)
    return round(time.perf_counter() - started, 2)


def run_child(args: list[str], timeout: float) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1:] or ["failed"]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- placing new files ----------------------------------------------------------------------------
def placing(n: int = 100_000) -> dict:
    from clapdesk.core.map.layout import fit_projection, neighbours_kept, place_by_neighbours

    vectors = clustered(n + NEW_FILES, seed=3)
    known, new = vectors[:n], vectors[n:]
    projection = fit_projection(known)
    known_reduced = projection.apply(known)
    positions = known_reduced[:, :2].copy()  # the timing does not depend on the layout's shape
    started, started_cpu = time.perf_counter(), time.process_time()
    placed = place_by_neighbours(known_reduced, positions, projection.apply(new))
    seconds, cpu = time.perf_counter() - started, time.process_time() - started_cpu
    # How well the PCA-50 space, where placing looks for neighbours, keeps the 512-d ones.
    sample = known[:20000]
    kept = neighbours_kept(sample, projection.apply(sample), sample=500)
    return {"known": n, "new": NEW_FILES, "seconds": round(seconds, 3),
            "cpu_seconds": round(cpu, 3),
            "placed": len(placed), "pca50_neighbours_kept_k10": round(kept, 3)}


# -- frames while panning -------------------------------------------------------------------------
def frames() -> dict:
    from PySide6.QtCore import QPointF
    from PySide6.QtGui import QColor, QPainter, QPen, QPolygonF
    from PySide6.QtOpenGLWidgets import QOpenGLWidget
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication, QWidget

    from clapdesk.core.map.picture import PALETTE
    from clapdesk.gui.map_canvas import MapCanvas

    app = QApplication.instance() or QApplication([])
    rng = np.random.default_rng(0)
    positions = rng.standard_normal((FRAME_POINTS, 2)) * 20
    codes = rng.integers(0, len(PALETTE), FRAME_POINTS)
    out: dict = {"platform": app.platformName(), "points": FRAME_POINTS, "frames": FRAMES}

    canvas = MapCanvas()
    canvas.resize(1200, 800)
    canvas.show()
    QTest.qWaitForWindowExposed(canvas)
    canvas.set_points(positions, codes)
    redraws = []
    for _ in range(10):
        started = time.perf_counter()
        canvas.redraw()
        redraws.append(time.perf_counter() - started)
    out["cache_redraw_ms"] = _stats(redraws)
    start = canvas.centre.copy()
    out["cached_image_pan_ms"] = _stats(_pan(app, canvas, lambda i: setattr(
        canvas, "centre", start + np.array([i * 0.05, 0.0]))))
    canvas.close()

    groups = [QPolygonF([QPointF(x, y) for x, y in positions[codes == c] * 15 + (600, 400)])
              for c in range(len(PALETTE))]

    def paint(widget: QWidget, offset: list[float]) -> None:
        painter = QPainter(widget)
        painter.fillRect(widget.rect(), QColor(24, 26, 30))
        painter.translate(offset[0], 0)
        for c, polygon in enumerate(groups):
            painter.setPen(QPen(QColor(*PALETTE[c]), 2))
            painter.drawPoints(polygon)
        painter.end()

    class Points(QWidget):
        offset = [0.0]

        def paintEvent(self, _event: object) -> None:
            paint(self, self.offset)

    class GLPoints(QOpenGLWidget):
        offset = [0.0]

        def paintGL(self) -> None:
            paint(self, self.offset)

    for name, kind in (("drawpoints_qwidget_ms", Points), ("drawpoints_qopenglwidget_ms", GLPoints)):
        widget = kind()
        widget.resize(1200, 800)
        widget.show()
        QTest.qWaitForWindowExposed(widget)
        try:
            out[name] = _stats(_pan(app, widget, lambda i, w=widget: w.offset.__setitem__(0, i)))
        except Exception as exc:  # noqa: BLE001 - no GL at all: say so, keep the other figures
            out[name] = f"failed: {exc}"
        widget.close()
    return out


def _pan(app: object, widget: object, move: object) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of each frame (on a loaded machine the CPU time is the fairer one:
    the wall time includes waiting for a core)."""
    times, cpu = [], []
    for i in range(FRAMES):
        move(i)  # type: ignore[operator]
        started, started_cpu = time.perf_counter(), time.process_time()
        widget.repaint()  # type: ignore[attr-defined]
        app.processEvents()  # type: ignore[attr-defined]
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return times, cpu


def _stats(seconds: list[float] | tuple[list[float], list[float]]) -> dict:
    if isinstance(seconds, tuple):
        wall, cpu = _stats(seconds[0]), _stats(seconds[1])
        return {**wall, "cpu_p50": cpu["p50"], "cpu_p95": cpu["p95"]}
    ms = np.array(seconds) * 1000
    return {"p50": round(float(np.percentile(ms, 50)), 2), "p95": round(float(np.percentile(ms, 95)), 2)}


def frames_in_child(timeout: float) -> dict:
    """Run frames() under Xvfb with xcb when Xvfb is there, offscreen otherwise."""
    env = dict(os.environ)
    xvfb = None
    if shutil.which("Xvfb") and not env.get("DISPLAY"):
        display = ":97"
        xvfb = subprocess.Popen(["Xvfb", display, "-screen", "0", "1600x1000x24", "-nolisten",
                                 "tcp"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
        env.update(DISPLAY=display, QT_QPA_PLATFORM="xcb")
    elif not env.get("DISPLAY"):
        env["QT_QPA_PLATFORM"] = "offscreen"
    try:
        done = subprocess.run([sys.executable, __file__, "--child", "frames"], env=env,
                              capture_output=True, text=True, timeout=timeout)
    finally:
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()
    if done.returncode != 0:
        return {"error": (done.stderr.strip().splitlines() or ["failed"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--methods", default="tsne,umap")
    parser.add_argument("--max-seconds", type=float, default=1800, help="per layout")
    parser.add_argument("--no-frames", action="store_true")
    parser.add_argument("--no-placing", action="store_true")
    parser.add_argument("--child", nargs="*")
    args = parser.parse_args()
    if args.child is not None:
        if args.child[0] == "frames":
            print(json.dumps(frames()))
        else:
            method, n, transform = args.child[0], int(args.child[1]), args.child[2] == "1"
            print(json.dumps(child_layout(method, n, transform)))
        return
    report: dict = {"load_average_at_start": load_average(), "cores": os.cpu_count(),
                    "layout": []}
    for method in filter(None, args.methods.split(",")):
        if method == "umap":
            try:
                import umap  # noqa: F401
            except ImportError:
                report["layout"].append({"method": "umap", "skipped": "umap-learn not installed"})
                continue
        for n in (int(s) for s in args.sizes.split(",")):
            try:
                report["layout"].append(run_child([method, str(n), "1" if n <= 10000 else "0"],
                                                  args.max_seconds))
            except subprocess.TimeoutExpired:
                report["layout"].append({"method": method, "n": n,
                                         "timed_out_after_s": args.max_seconds})
    if not args.no_placing:
        report["placing"] = placing()
    if not args.no_frames:
        report["frames"] = frames_in_child(600)
    report["load_average_at_end"] = load_average()
    print(json.dumps(report))


if __name__ == "__main__":
    main()
