"""Cluster indexing: the Ray path against local indexing, importing shards, and GPU sizing.

Prints one JSON object:
- ray_vs_local: the same generated files indexed locally (Library.index_folders) and through
  `clapdesk cluster index` on a private local Ray with 2 CPUs, then imported; files per second,
  CPU seconds of every process involved, and where the Ray path's time goes (Ray's start, the
  model's load in each actor, and the seconds each stage spent);
- import: N synthetic shard rows (real shards, written by clapdesk's shard writer) merged into a
  fresh library: seconds to read, merge into the catalog and add to the vector index;
- on_paper: the audio tower built from /work/shared/clap-configs (larger_clap_general, random
  weights): measured CPU seconds and floating-point operations per window (torch's FLOP
  counter), the measured decode cost per file, and from those, files per second and hours for
  2M files on N GPUs, under the GPU assumption stated in the output.

    nice python benchmarks/bench_cluster.py [--quick] [--files 32] [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray on 127.0.0.1 only
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import full_model, load_average, make_library, quiet_libraries  # noqa: E402

quiet_libraries()

import numpy as np  # noqa: E402

CONFIGS = Path(os.environ.get("CLAPDESK_CLAP_CONFIGS", "/work/shared/clap-configs"))
ARCHIVE_FILES = 2_000_000
# Datasheet peaks (dense, no sparsity), in TFLOPS: NVIDIA A100 SXM (FP32 19.5, FP16/BF16 tensor
# 312) and H100 SXM (FP32 67, FP16/BF16 tensor 989). clapdesk's float32 runs FP32 matrix
# products on a GPU (torch leaves TF32 off for them by default); --precision float16 runs on
# the tensor cores.
GPU_PEAKS = {"A100 float32": 19.5, "A100 float16": 312.0, "H100 float32": 67.0,
             "H100 float16": 989.0}
# The assumption: the audio tower in calls of 4 windows sustains this share of the peak. Not
# measured (no GPU here): small Swin-transformer batches typically reach a third or less.
GPU_UTILISATION = 0.30


def cpu_seconds_of_tree() -> float:
    """User + system seconds of this process and all its descendants, alive now."""
    import psutil

    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def ray_vs_local(model: Path, files: int, work: Path) -> dict[str, object]:
    import resource

    import ray

    from clapdesk.core.cluster.importer import import_shards
    from clapdesk.core.cluster.pipeline import cluster_index
    from clapdesk.core.library import Library

    archive = work / "archive"
    make_library(archive, count=files, duplicates=2)
    library = Library(work / "local", model=str(model))
    clock = time.monotonic()
    library.embedder()  # loaded before the clock starts; the Ray actors' load is counted apart
    local_load = time.monotonic() - clock
    cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
    children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    local = library.index_folders([str(archive)])
    local_wall = time.monotonic() - wall0
    cpu1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    library.close()
    local_cpu = (cpu1.ru_utime - cpu0.ru_utime + cpu1.ru_stime - cpu0.ru_stime
                 + children1.ru_utime - children0.ru_utime + children1.ru_stime - children0.ru_stime)
    load = load_average()
    # The Ray path: a private Ray with 2 CPUs and 2 model actors of one core each (decoding
    # asks half a core, so it fits beside them).
    before = cpu_seconds_of_tree()
    wall0 = time.monotonic()
    ray.init(num_cpus=3, include_dashboard=False, _node_ip_address="127.0.0.1",
             configure_logging=False, log_to_driver=False)
    started = time.monotonic() - wall0
    ray.data.DataContext.get_current().enable_progress_bars = False
    report = cluster_index([str(archive)], str(work / "shards"), model=str(model), workers=2,
                           cpus_per_worker=1, files_per_shard=4)
    ray_wall = time.monotonic() - wall0
    ray_cpu = cpu_seconds_of_tree() - before
    ray.shutdown()
    home = Library(work / "imported", model=str(model))
    imported = import_shards(home, [str(work / "shards")])
    home.close()
    stages = dict(report.stage_seconds)
    stages["ray_start"] = round(started, 2)
    return {
        "files": local.indexed + len(local.failed), "load_average": load,
        "local": {"seconds": round(local_wall, 2), "files_per_s": round(files / local_wall, 2),
                  "cpu_seconds": round(local_cpu, 1), "model_load_seconds": round(local_load, 2)},
        "ray": {"seconds": round(ray_wall, 2), "files_per_s": round(files / ray_wall, 2),
                "cpu_seconds": round(ray_cpu, 1),
                "stage_seconds": {k: round(v, 2) for k, v in stages.items()},
                "shards": report.written, "workers": 2},
        "ray_over_local_wall": round(ray_wall / local_wall, 2),
        "import_seconds": round(imported.seconds, 3),
        "load_average_after": load_average(),
    }


def synthetic_shards(folder: Path, rows: int, identity, per_shard: int = 2000) -> None:
    from bench_search import clustered_vectors

    from clapdesk.core.cluster import shards

    rng = np.random.default_rng(0)
    clustered = clustered_vectors(rows)
    manifest = shards.Manifest(max(1, rows // per_shard), identity.encoder_key, identity.revision)
    folder.mkdir(parents=True, exist_ok=True)
    for start in range(0, rows, per_shard):
        n = min(per_shard, rows - start)
        batch = [{"path": f"/mnt/archive/pack_{(start + i) // 500:04d}/sound_{start + i:07d}.wav",
                  "root": "/mnt/archive", "size": 100_000 + i, "mtime_ns": 1_700_000_000 * 10**9,
                  "digest": f"{start + i:040x}", "status": shards.EMBEDDED,
                  "analysis": {"duration": 1.5, "sample_rate": 44100, "channels": 2,
                               "format": "WAV", "subtype": "PCM_24", "bpm": None, "kind": "one-shot",
                               "peak_db": -1.0, "loudness_db": -14.0, "brightness": 0.4},
                  "auto_tags": [["kick", 0.4], ["808", 0.2]]} for i in range(n)]
        feats = rng.standard_normal((n, 1024)).astype(np.float32)
        # Loosely clustered, as sounds of one kind are (uniform noise is the ANN graph's worst
        # case, and no library looks like it).
        vectors = clustered[start:start + n]
        data = shards.shard_bytes(batch, feats, vectors, manifest)
        shards.write_atomic(*shards.open_folder(str(folder)), f"shard-{start // per_shard:05d}-"
                            f"{start:016x}.parquet", data)


def import_rows(model: Path, rows: int, work: Path) -> dict[str, object]:
    from clapdesk.core.cluster.importer import import_shards
    from clapdesk.core.library import Library

    library = Library(work / "import-library", model=str(model))
    synthetic_shards(work / "synthetic", rows, library.identity)
    load = load_average()
    cpu = time.process_time()
    report = import_shards(library, [str(work / "synthetic")])
    cpu = time.process_time() - cpu
    library.close()
    return {"rows": rows, "load_average": load, "seconds": round(report.seconds, 2),
            "cpu_seconds": round(cpu, 2),
            "note": "index: hnswlib's insertion (M=32, ef_construction=200, all cores), the "
                    "cost local indexing pays per batch; merge: the catalog transaction",
            "timings": {k: round(v, 2) for k, v in report.timings.items()},
            "rows_per_s": round(rows / report.seconds), "added": report.added}


def on_paper(model: Path, work: Path, windows_per_file: float) -> dict[str, object]:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import ClapAudioModel, ClapConfig

    from clapdesk.core.embed.embedder import ClapEmbedder
    from clapdesk.core.embed.hub import resolve_model
    from clapdesk.core.index import decoding
    from clapdesk.core.index.indexer import BATCH_WINDOWS

    source = CONFIGS / "larger_clap_general" / "config.json"
    if source.is_file():
        config = ClapConfig.from_pretrained(source.parent).audio_config
        built_from = str(source)
    else:  # without the shared configs: the same shape, built by the benchmarks' factory
        config = ClapConfig.from_pretrained(model).audio_config
        built_from = str(model / "config.json")
    torch.manual_seed(0)
    tower = ClapAudioModel(config).eval()
    mel = torch.randn(BATCH_WINDOWS, 1, 1001, 64)
    is_longer = torch.zeros(BATCH_WINDOWS, 1, dtype=torch.bool)
    with torch.inference_mode():
        tower(input_features=mel, is_longer=is_longer)  # warm-up
        counter = FlopCounterMode(display=False)
        with counter:
            tower(input_features=mel, is_longer=is_longer)
        flops_per_window = counter.get_total_flops() / BATCH_WINDOWS
    # The CPU cost as indexing pays it: clapdesk's embedder on real windows (log-mel included).
    embedder = ClapEmbedder(resolve_model(str(model)))
    rng = np.random.default_rng(0)
    windows = [0.1 * rng.standard_normal(embedder.sampling_rate * 10).astype(np.float32)
               for _ in range(BATCH_WINDOWS)]
    embedder.features_for(windows)
    rounds, started, cpu0 = 3, time.monotonic(), time.process_time()
    for _ in range(rounds):
        embedder.features_for(windows)
    cpu_window = (time.monotonic() - started) / (rounds * BATCH_WINDOWS)
    cpu_window_cpu_s = (time.process_time() - cpu0) / (rounds * BATCH_WINDOWS)
    # Decoding, hashing and analysis per file (one core), on the benchmark's library.
    paths = sorted((work / "archive").rglob("*.wav"))
    t0 = time.process_time()
    for path in paths:
        st = path.stat()
        decoding.decode_file(decoding.DecodeRequest(str(path), st.st_size, st.st_mtime_ns,
                                                    embedder.sampling_rate))
    decode_per_file = (time.process_time() - t0) / max(1, len(paths))
    gpus: dict[str, object] = {}
    for name, peak in GPU_PEAKS.items():
        per_window = flops_per_window / (peak * 1e12 * GPU_UTILISATION)
        per_gpu = 1.0 / (per_window * windows_per_file)
        gpus[name] = {
            "seconds_per_window": round(per_window, 6), "files_per_s_per_gpu": round(per_gpu, 1),
            "cpu_cores_to_feed_one_gpu": round(per_gpu * decode_per_file, 1),
            "hours_for_2M_files": {str(n): round(ARCHIVE_FILES / (n * per_gpu) / 3600, 2)
                                   for n in (1, 4, 8, 32)}}
    return {
        "architecture": built_from, "load_average": load_average(),
        "gflops_per_window": round(flops_per_window / 1e9, 1),
        "cpu_seconds_per_window_wall": round(cpu_window, 3),
        "cpu_seconds_per_window_cpu": round(cpu_window_cpu_s, 3),
        "cpu_threads": torch.get_num_threads(),
        "decode_cpu_seconds_per_file": round(decode_per_file, 4),
        "windows_per_file": round(windows_per_file, 3),
        "this_cpu_files_per_s": round(1 / (cpu_window * windows_per_file), 2),
        "gpu_assumption": (f"per-window time = measured FLOPs / ({GPU_UTILISATION:.0%} of the "
                           "datasheet peak: NVIDIA A100 SXM FP32 19.5 / FP16 tensor 312 TFLOPS, "
                           "H100 SXM FP32 67 / FP16 tensor 989 TFLOPS, dense); the utilisation "
                           "is assumed, not measured here"),
        "gpus": gpus,
    }


def mean_windows(folder: Path, rate: int) -> float:
    from clapdesk.core.ingest import audio

    counts = []
    for path in sorted(folder.rglob("*.wav")):
        counts.append(len(audio.decode_for_index(str(path), rate).windows))
    return float(np.mean(counts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, about a minute")
    parser.add_argument("--files", type=int, default=None)
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args()
    files = args.files or (12 if args.quick else 32)
    rows = args.rows or (20_000 if args.quick else 100_000)
    model = full_model()
    with tempfile.TemporaryDirectory(prefix="clapdesk-bench-cluster-") as scratch:
        work = Path(scratch)
        result: dict[str, object] = {"quick": args.quick}
        result["ray_vs_local"] = ray_vs_local(model, files, work)
        result["import"] = import_rows(model, rows, work)
        result["on_paper"] = on_paper(model, work, mean_windows(work / "archive", 48_000))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
