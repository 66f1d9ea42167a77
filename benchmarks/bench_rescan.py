"""Rescan of a large catalog with nothing changed: walk, compare stamps, touch nothing.

Creates `--files` tiny files on disk (unchanged files are never decoded, so a few bytes each
is enough), writes matching catalog rows, features and vectors in bulk, then times
`Library.rescan()` and, separately, its parts: the folder walk, the catalog's stamps and the
whole plan. Prints one JSON object.

    nice python benchmarks/bench_rescan.py [--files 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import full_model, load_average, quiet_libraries, rss_mb  # noqa: E402

quiet_libraries()

import numpy as np  # noqa: E402

FILES_PER_FOLDER = 250


def make_files(root: Path, count: int) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of `count` small .wav files in packs and sub-folders."""
    out = []
    for i in range(count):
        folder = root / f"Pack {i // 5000:02d}" / f"Kit {i // FILES_PER_FOLDER:04d}"
        if i % FILES_PER_FOLDER == 0:
            folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"sound {i:06d} 120 BPM.wav"
        with open(path, "wb") as handle:
            handle.write(b"RIFF" + i.to_bytes(4, "little"))
        st = os.stat(path)
        out.append((str(path), st.st_size, st.st_mtime_ns))
    return out


def fill_catalog(library, root: Path, files: list[tuple[str, int, int]]) -> None:
    catalog = library.catalog
    root_id = catalog.add_root(str(root))
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((len(files), 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    encoder_key = library.identity.encoder_key
    feature = np.zeros(1024, np.float32).tobytes()  # contents never read by a rescan
    now = time.time()
    with catalog.transaction():
        catalog.db.executemany(
            "INSERT INTO files(id, path, root_id, size, mtime_ns, content_hash, duration, "
            "sample_rate, channels, format, subtype, error, indexed_at, kind) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ((i + 1, os.fsencode(p), root_id, size, mtime, f"{i:040x}", 1.0, 44100, 1, "WAV",
              "PCM_16", None, now, "one-shot") for i, (p, size, mtime) in enumerate(files)))
        catalog.db.executemany(
            "INSERT INTO features(file_id, encoder_key, feature) VALUES (?,?,?)",
            ((i + 1, encoder_key, feature) for i in range(len(files))))
        catalog.db.executemany(
            "INSERT INTO vectors(file_id, model_key, vector) VALUES (?,?,?)",
            ((i + 1, library.model_key, vectors[i].tobytes()) for i in range(len(files))))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--profile", action="store_true", help="add the top functions of one rescan")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="clapdesk-bench-rescan-"))
    os.environ["CLAPDESK_CACHE"] = str(scratch / "cache")
    os.environ["CLAPDESK_CONFIG"] = str(scratch / "config")
    from clapdesk.core.index.indexer import Indexer, IndexReport
    from clapdesk.core.ingest.scan import walk_audio
    from clapdesk.core.library import Library
    from clapdesk.core.store import vector_index

    model_folder = args.model or full_model()
    root = scratch / "samples"
    start = time.perf_counter()
    files = make_files(root, args.files)
    create_seconds = time.perf_counter() - start
    library = Library(root=scratch / "library", model=str(model_folder))
    start = time.perf_counter()
    fill_catalog(library, root, files)
    fill_seconds = time.perf_counter() - start
    # The index is built once from the catalog, as the first search would. A rescan never
    # searches it, only opens and syncs it, so a coarse graph (small M) is built to save minutes.
    vector_index.HNSW_M, vector_index.EF_CONSTRUCTION = 8, 16
    start = time.perf_counter()
    library.vector_index()
    index_build = time.perf_counter() - start
    library.vector_index().save()

    # The first walk after creating the files is served from a warm page cache, as a rescan
    # of a library in daily use is; say so rather than pretend to measure a cold disk.
    totals, reports = [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        report = library.rescan()
        totals.append(time.perf_counter() - start)
        reports.append(report)
    assert all(r.unchanged == len(files) and r.indexed == 0 for r in reports), reports[-1].to_json()
    assert not library.model_loaded, "an unchanged rescan must not load the model"

    walks, stamps, plans = [], [], []
    for _ in range(args.runs):
        start = time.perf_counter()
        found = walk_audio(str(root)).found
        walks.append(time.perf_counter() - start)
        start = time.perf_counter()
        library.catalog.file_stamps(library.catalog.add_root(str(root)))
        stamps.append(time.perf_counter() - start)
        planner = Indexer(library.catalog, library.vector_index(), library.embedder)
        start = time.perf_counter()
        jobs, _vanished = planner._plan([str(root)], IndexReport(), lambda p: None)
        plans.append(time.perf_counter() - start)
        assert not jobs
    result: dict[str, object] = {
        "benchmark": "rescan", "files": len(files), "found": len(found),
        "create_files_seconds": round(create_seconds, 1), "fill_catalog_seconds": round(fill_seconds, 1),
        "index_build_seconds": round(index_build, 1), "index_m_for_this_benchmark": 8,
        "rescan_seconds": round(min(totals), 3), "rescan_runs_seconds": [round(t, 3) for t in totals],
        "walk_seconds": round(min(walks), 3), "file_stamps_seconds": round(min(stamps), 3),
        "plan_seconds": round(min(plans), 3), "rss_mb": round(rss_mb()),
        "page_cache": "warm", "load_average_1min": load_average(),
    }
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        library.rescan()
        profiler.disable()
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(8)
        result["profile_top"] = [line.strip() for line in text.getvalue().splitlines()
                                 if line.strip() and line.strip()[0].isdigit()][:8]
    library.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
