"""Indexing throughput: clapdesk's indexer against a file-at-a-time pipeline, side by side.

Same generated files, same model (the full larger_clap_music architecture, random weights),
same torch thread count, runs alternated (baseline, float32, int8, baseline, float32, int8...)
so a busy machine hurts every contender alike. Prints one JSON object:
- baseline: decode the whole file, resample to 48 kHz (soundfile + soxr), the processor on that
  one file, model.get_audio_features on that one file, as the public examples do, with the model
  exactly as transformers loads it;
- clapdesk float32 and int8: Library.index_folders on a fresh library (decoding, analysis,
  auto-tags and catalog writes included; the model is loaded before the clock starts, for
  every contender);
- with --openvino: clapdesk's indexer with OpenVINO's float32 tower in place of its own (the
  result's `clapdesk_openvino_float32`; bench_tower_runtimes.py converts it);
- the ceiling: the audio tower alone on ready-made log-mel batches of the same windows;
- peak RSS per contender (this process, and the decoder processes apart), top-10 overlap of int8 against float32, and a torch.compile trial
  (in a subprocess with a time limit, since compiling can take minutes).

    nice python benchmarks/bench_index.py [--quick] [--files 48] [--rounds 2] [--threads N] [--no-compile]
                                          [--openvino]

It also reports what the automatic precision choice takes on these files, and that choice's
speed against the baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import (  # noqa: E402
    PeakRss,
    children_rss_mb,
    full_model,
    load_average,
    make_library,
    quiet_libraries,
    rss_mb,
)

quiet_libraries()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402

# torch is imported inside the functions that use it: the indexer's decoder processes import
# this script again as their main module, and must not load torch for nothing.

BASELINE_RATE = 48_000
TEXT_QUERIES = ("punchy kick", "dark pad", "bright hihat", "deep bass loop", "noise riser",
                "soft piano", "aggressive snare", "airy vocal", "lo-fi drum loop", "metal impact")


# -- the contenders ------------------------------------------------------------------------------
def baseline_pass(model, processor, paths: list[Path]) -> float:
    """One file at a time: whole-file decode at 48 kHz, processor, model. Returns seconds."""
    import torch

    start = time.perf_counter()
    for path in paths:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        mono = data.mean(axis=1)
        if rate != BASELINE_RATE:
            mono = soxr.resample(mono, rate, BASELINE_RATE)
        inputs = processor(audio=mono, sampling_rate=BASELINE_RATE, return_tensors="pt")
        with torch.inference_mode():
            model.get_audio_features(input_features=inputs["input_features"],
                                     is_longer=inputs.get("is_longer"))
    return time.perf_counter() - start


def stock_clap(model_folder: Path) -> tuple[object, object]:
    """The model and processor exactly as transformers ships them, for the baseline."""
    from transformers import ClapModel, ClapProcessor

    model = ClapModel.from_pretrained(model_folder, use_safetensors=True).eval()
    return model, ClapProcessor.from_pretrained(model_folder)


def clapdesk_pass(embedder, model_folder: Path, folder: Path, root: Path) -> tuple[float, dict]:
    """Index `folder` into a fresh library with an already loaded model. Returns seconds, report."""
    from clapdesk.core.library import Library

    library = Library(root=root, model=str(model_folder))
    library._embedder = embedder  # the benchmark shares one loaded model between runs
    library.vector_index()  # an empty index: nothing to do, but keep it out of the clock
    calls = _count_windows(embedder)
    start = time.perf_counter()
    report = library.index_folders([str(folder)])
    seconds = time.perf_counter() - start
    library.close()
    out = report.to_json()
    out["windows_embedded"] = calls.restore()
    return seconds, out


class _count_windows:
    """Counts the windows sent to the model (identical files must not be sent twice)."""

    def __init__(self, embedder) -> None:
        self.embedder, self.count = embedder, 0
        real = type(embedder).features_for

        def spy(windows):
            self.count += len(windows)
            return real(embedder, windows)

        embedder.features_for = spy

    def restore(self) -> int:
        del self.embedder.features_for
        return self.count


def ceiling_pass(embedder, windows: list[np.ndarray], batch: int) -> float:
    """The audio tower alone on ready-made log-mel batches of the given windows. Returns seconds."""
    batches = [embedder._fast_mel(windows[i:i + batch]) if embedder._fast_mel is not None
               else embedder.feature_extractor(windows[i:i + batch], sampling_rate=48000,
                                               return_tensors="pt")
               for i in range(0, len(windows), batch)]
    start = time.perf_counter()
    for inputs in batches:
        embedder.encode_mel(inputs)
    return time.perf_counter() - start


# -- int8 against float32 ------------------------------------------------------------------------
def top10_overlap(model_folder: Path, roots: dict[str, Path], embedders: dict[str, object],
                  paths: list[Path], other: str = "int8") -> dict[str, float]:
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import search_similar, search_text

    libraries = {}
    for name, root in roots.items():
        if name not in ("float32", other):
            continue
        library = Library(root=root, model=str(model_folder))
        library._embedder = embedders[name]
        # Random weights fail the text tower's health check, which would refuse text search;
        # what is compared here is int8's ranking against float32's, so let it through.
        health = library._embedder.text_health
        library._embedder.text_health = dataclasses.replace(health, text_ok=True)
        libraries[name] = library

    def ranked(name: str, query) -> list[str]:
        return [hit.file.path for hit in query(libraries[name]).hits]

    def overlap(query) -> float:
        a, b = ranked("float32", query), ranked(other, query)
        return len(set(a) & set(b)) / max(1, len(a))

    text = [overlap(lambda lib, q=q: search_text(lib, q, k=10)) for q in TEXT_QUERIES]
    similar = [overlap(lambda lib, p=p: search_similar(lib, str(p), k=10)) for p in paths[:12]]
    for library in libraries.values():
        library.close()
    return {"text_queries": round(float(np.mean(text)), 3),
            "similar_file_queries": round(float(np.mean(similar)), 3),
            "queries": len(text) + len(similar)}


# -- torch.compile trial, in its own process -----------------------------------------------------
def compile_trial(model_folder: Path, batch: int) -> dict:
    """torch.compile of the stock audio tower (clapdesk's oneDNN layers are opaque to dynamo),
    against the stock tower eager and clapdesk's tower eager."""
    import torch

    from clapdesk.core.embed.embedder import ClapEmbedder
    from clapdesk.core.embed.hub import resolve_model

    embedder = ClapEmbedder(resolve_model(str(model_folder)), device="cpu")
    stock, _ = stock_clap(model_folder)
    rng = np.random.default_rng(0)
    clips = [0.1 * rng.standard_normal(48000 * 3).astype(np.float32) for _ in range(batch)]
    inputs = embedder._fast_mel(clips)

    def timed(fn, repeats: int) -> float:
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            with torch.inference_mode():
                fn(input_features=inputs["input_features"], is_longer=inputs["is_longer"])
            best = min(best, time.perf_counter() - start)
        return best

    eager = timed(stock.audio_model, 3)
    ours = timed(embedder.model.audio_model, 3)
    compiled_tower = torch.compile(stock.audio_model)
    start = time.perf_counter()
    timed(compiled_tower, 1)
    first = time.perf_counter() - start
    compiled = timed(compiled_tower, 3)
    return {"stock_eager_batch_seconds": round(eager, 3),
            "clapdesk_eager_batch_seconds": round(ours, 3),
            "compile_first_call_seconds": round(first, 1),
            "stock_compiled_batch_seconds": round(compiled, 3),
            "compile_speedup_over_stock": round(eager / compiled, 3),
            "clapdesk_speedup_over_compiled": round(compiled / ours, 3)}


def run_compile_trial(model_folder: Path, batch: int, limit: float) -> dict:
    command = [sys.executable, __file__, "--compile-trial", "--model", str(model_folder),
               "--batch", str(batch)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    except subprocess.TimeoutExpired:
        return {"error": f"did not finish compiling and measuring within {limit:.0f} s"}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}


# -- the run ---------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="24 files, one round, no torch.compile trial (a few minutes idle)")
    parser.add_argument("--files", type=int, default=None, help="default 48 (24 with --quick)")
    parser.add_argument("--duplicates", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=None, help="default 2 (1 with --quick)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--no-int8", action="store_true")
    parser.add_argument("--no-bf16", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--openvino", action="store_true",
                        help="add OpenVINO's float32 tower as a contender (pip install -e .[runtimes])")
    parser.add_argument("--compile-limit", type=float, default=420.0)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--batch", type=int, default=None)
    parser.add_argument("--compile-trial", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.files = args.files or (24 if args.quick else 48)
    args.rounds = args.rounds or (1 if args.quick else 2)
    args.no_compile = args.no_compile or args.quick
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    model_folder = args.model or full_model()
    from clapdesk.core.index import indexer

    batch = args.batch or indexer.BATCH_WINDOWS
    if args.compile_trial:
        print(json.dumps(compile_trial(model_folder, batch)))
        return

    scratch = Path(tempfile.mkdtemp(prefix="clapdesk-bench-index-"))
    os.environ["CLAPDESK_CACHE"] = str(scratch / "cache")
    os.environ["CLAPDESK_CONFIG"] = str(scratch / "config")
    os.environ["CLAPDESK_LIBRARY"] = str(scratch / "unused-library")
    from clapdesk.core.embed.embedder import ClapEmbedder
    from clapdesk.core.embed.hub import resolve_model
    from clapdesk.core.index import decoding
    from clapdesk.core.ingest import audio
    from clapdesk.core.ingest.scan import content_hash

    folder = scratch / "samples"
    paths = make_library(folder, args.files, args.duplicates)
    identity = resolve_model(str(model_folder))
    rss_start = rss_mb()
    start = time.perf_counter()
    f32 = ClapEmbedder(identity, device="cpu", precision="float32")
    load_seconds = time.perf_counter() - start
    stock_model, stock_processor = stock_clap(model_folder)
    contenders: dict[str, object] = {"float32": f32}
    if not args.no_int8:
        contenders["int8"] = ClapEmbedder(identity, device="cpu", precision="int8")
    if not args.no_bf16:
        contenders["bfloat16"] = ClapEmbedder(identity, device="cpu", precision="bfloat16")
    if args.openvino:
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            parser.error("--openvino needs OpenVINO: pip install -e '.[runtimes]'")
        # clapdesk's indexer with OpenVINO's float32 tower in place of its own (README:
        # "Precision and the audio tower"): converted for every batch size before any clock.
        from bench_tower_runtimes import OpenVinoTower

        contenders["openvino_float32"] = ClapEmbedder(identity, device="cpu", precision="float32")
        contenders["openvino_float32"].fast_tower = OpenVinoTower(stock_model.audio_model)

    # Windows clapdesk embeds: one set per distinct content.
    unique, seen = [], set()
    for path in paths:
        digest = content_hash(str(path))
        if digest not in seen:
            seen.add(digest)
            unique.append(path)
    windows = [w for p in unique for w in audio.decode_for_index(str(p), f32.sampling_rate).windows]

    # Warm both paths once (first-call set-up of the kernels) before any clock runs. The
    # decoder processes are started too: the app starts them while it scans and loads the model.
    baseline_pass(stock_model, stock_processor, paths[:1])
    for embedder in contenders.values():
        for size in range(1, batch + 1):  # every batch size a run ends on
            embedder.features_for(windows[:size])
    decoders = decoding.shared_pool()
    decoders.warm()
    [decoders.submit(os.getpid).result() for _ in range(decoders.workers)]

    times: dict[str, list[float]] = {"baseline": [], **{k: [] for k in contenders}}
    ceilings: dict[str, list[float]] = {k: [] for k in contenders}
    peaks: dict[str, float] = {k: 0.0 for k in times}
    decoder_peak = 0.0
    reports: dict[str, dict] = {}
    roots: dict[str, Path] = {}
    for round_no in range(args.rounds):
        with PeakRss() as peak:
            times["baseline"].append(baseline_pass(stock_model, stock_processor, paths))
        peaks["baseline"] = max(peaks["baseline"], peak.peak)
        for name, embedder in contenders.items():
            root = scratch / f"library-{name}-{round_no}"
            with PeakRss() as peak, PeakRss(children_rss_mb) as decoder_rss:
                seconds, report = clapdesk_pass(embedder, model_folder, folder, root)
            times[name].append(seconds)
            peaks[name] = max(peaks[name], peak.peak)
            decoder_peak = max(decoder_peak, decoder_rss.peak)
            reports[name], roots[name] = report, root
            ceilings[name].append(ceiling_pass(embedder, windows, batch))

    def rate(seconds: list[float]) -> dict[str, object]:
        per_run = [len(paths) / s for s in seconds]
        return {"files_per_s": round(max(per_run), 3), "files_per_s_median": round(statistics.median(per_run), 3),
                "runs_files_per_s": [round(r, 3) for r in per_run]}

    base = rate(times["baseline"])
    result: dict[str, object] = {
        "benchmark": "index", "files": len(paths), "duplicates": args.duplicates,
        "distinct_files": len(unique), "windows": len(windows),
        "seconds_audio": round(sum(sf.info(str(p)).duration for p in paths), 1),
        "torch_threads": torch.get_num_threads(), "batch_windows": batch,
        "decode_workers": decoders.workers, "decoder_processes_peak_rss_mb": round(decoder_peak),
        "rounds": args.rounds, "model_load_seconds": round(load_seconds, 2),
        "rss_before_models_mb": round(rss_start), "load_average_1min": load_average(),
        "baseline": {**base, "peak_rss_mb": round(peaks["baseline"])},
    }
    for name in contenders:
        mine = rate(times[name])
        ceiling = [len(paths) / s for s in ceilings[name]]
        result[f"clapdesk_{name}"] = {
            **mine, "peak_rss_mb": round(peaks[name]),
            "ratio_to_baseline": round(mine["files_per_s"] / base["files_per_s"], 3),
            "ratio_to_baseline_median": round(mine["files_per_s_median"] / base["files_per_s_median"], 3),
            "ceiling_files_per_s": round(max(ceiling), 3),
            "fraction_of_ceiling": round(mine["files_per_s"] / max(ceiling), 3),
            # Each round's run against the ceiling measured right after it: this machine's speed
            # drifts by 10-20 % between minutes, which pairing cancels out.
            "fraction_of_ceiling_median": round(statistics.median(
                (len(paths) / s) / c for s, c in zip(times[name], ceiling)), 3),
            "runs_fraction_of_ceiling": [round((len(paths) / s) / c, 3)
                                         for s, c in zip(times[name], ceiling)],
            "windows_embedded": reports[name]["windows_embedded"],
            "duplicates_reused": reports[name]["duplicates"],
            "failed": len(reports[name]["failed"]),
        }
    if "openvino_float32" in contenders:
        entry = result["clapdesk_openvino_float32"]
        entry["convert_seconds_every_batch_size"] = round(  # type: ignore[index]
            contenders["openvino_float32"].fast_tower.convert_seconds, 1)
        entry["speed_against_clapdesk_float32"] = round(  # type: ignore[index]
            entry["files_per_s"] / result["clapdesk_float32"]["files_per_s"], 3)  # type: ignore[index]
        entry["speed_against_clapdesk_float32_median"] = round(  # type: ignore[index]
            entry["files_per_s_median"] / result["clapdesk_float32"]["files_per_s_median"], 3)  # type: ignore[index]
    if "int8" in contenders:
        result["int8_vs_float32_top10_overlap"] = top10_overlap(model_folder, roots, contenders, unique)
        f, i = result["clapdesk_float32"], result["clapdesk_int8"]
        result["int8_speedup_over_float32"] = round(i["files_per_s"] / f["files_per_s"], 3)  # type: ignore[index]
    if "bfloat16" in contenders:
        result["bfloat16_vs_float32_top10_overlap"] = top10_overlap(
            model_folder, roots, contenders, unique, other="bfloat16")
    # What the automatic choice takes on these files (precision_choice.py), and its speed.
    from clapdesk.core.index.precision_trial import choose_on_files

    choice = choose_on_files(f32, [str(p) for p in unique])
    if choice is not None:
        chosen = result.get(f"clapdesk_{choice.precision}", {})
        result["automatic_choice"] = {"precision": choice.precision, "reason": choice.reason,
                                      "figures": choice.figures,
                                      "ratio_to_baseline": chosen.get("ratio_to_baseline")}
    if not args.no_compile:
        contenders.clear()
        result["torch_compile_trial"] = run_compile_trial(model_folder, batch, args.compile_limit)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
