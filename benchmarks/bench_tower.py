"""The audio tower per window, against the matrix-product peak measured first, in the same run.

Model: the larger_clap_* audio tower (HTSAT-base), random weights. For each precision the
benchmark first times the tower's own matrix products (every linear layer's shape at this
batch, through the very kernels the tower calls: oneDNN float32, oneDNN bfloat16, oneDNN int8
on ready int8 inputs) and takes their FLOP rate as that precision's peak. It then times one
window through clapdesk's tower, transformers' stock tower and clapdesk's previous tower (the
stock code with oneDNN linear layers), runs alternated so a busy machine hurts each alike, and
gives each window's share of its peak: (FLOP per window / seconds per window) / peak, FLOP
counted by torch's FLOP counter on the stock tower. Vectors are compared with the stock tower.

    nice python benchmarks/bench_tower.py [--quick] [--batch 4] [--rounds 5] [--no-alternatives]

The full run adds ONNX Runtime and OpenVINO where they are installed (bench_tower_runtimes.py;
skipped with a reason where not; `--quick --alternatives` adds them to a quick run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import full_model, load_average, quiet_libraries  # noqa: E402

quiet_libraries()

import torch  # noqa: E402

PRECISIONS = ("float32", "bfloat16", "int8")


def cpu_flags() -> list[str]:
    """The CPU's instruction-set flags that matter for reduced precision (Linux)."""
    from clapdesk.core.embed.cpu_features import cpu_flags as all_flags

    wanted = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile",
              "avx512_vnni", "avx_vnni", "avx512_fp16")
    return [flag for flag in wanted if flag in all_flags()]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def stock_tower(model_folder: Path):  # noqa: ANN201
    from transformers import ClapModel

    return ClapModel.from_pretrained(model_folder, use_safetensors=True).eval().audio_model


def test_mel(batch: int, seed: int = 0) -> torch.Tensor:
    """Log-mel windows as clapdesk makes them (10 s of noise-like audio at 48 kHz)."""
    import numpy as np
    from transformers import ClapFeatureExtractor

    from clapdesk.core.embed.log_mel import BatchedLogMel

    rng = np.random.default_rng(seed)
    clips = [(0.1 * rng.standard_normal(480_000) * np.exp(-np.linspace(0, 4 + i, 480_000)))
             .astype(np.float32) for i in range(batch)]
    # rand_trunc: the larger_clap_* setting (one view; the fused checkpoint has four).
    return BatchedLogMel(ClapFeatureExtractor(truncation="rand_trunc"))(clips)["input_features"]


def flop_per_window(tower) -> float:  # noqa: ANN001
    from torch.utils.flop_counter import FlopCounterMode

    mel = test_mel(1)
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        tower(input_features=mel, is_longer=torch.zeros((1, 1), dtype=torch.bool))
    return float(counter.get_total_flops())


def product_shapes(fast, batch: int) -> list[tuple[object, int, int, int]]:  # noqa: ANN001
    """(layer, rows, in, out) of every product the fast tower makes for a batch."""
    shapes = []
    for blocks, merge in fast.stages:
        for block in blocks:
            rows = batch * block.windows * block.tokens
            for layer in (block.qkv, block.proj, block.fc1, block.fc2):
                out_features, in_features = _dims(layer)
                shapes.append((layer, rows, in_features, out_features))
        if merge is not None:
            rows = batch * blocks[-1].windows * blocks[-1].tokens // 4
            out_features, in_features = _dims(merge[2])
            shapes.append((merge[2], rows, in_features, out_features))
    return shapes


def _dims(layer) -> tuple[int, int]:  # noqa: ANN001
    if hasattr(layer, "weight"):
        return tuple(layer.weight.shape)  # type: ignore[return-value]
    return layer.out_features, layer.in_features


def product_calls(fast, batch: int) -> tuple[list[object], float]:  # noqa: ANN001
    """The tower's own products through its own kernels, ready to call, and their FLOP."""
    generator = torch.Generator().manual_seed(0)
    calls = []
    flop = 0.0
    for layer, rows, in_features, out_features in product_shapes(fast, batch):
        flop += 2.0 * rows * in_features * out_features
        if fast.precision == "int8":
            # The int8 kernel on ready uint8 inputs: the product alone, as a peak should be
            # (the tower's own time includes quantising its inputs).
            q = torch.randint(0, 256, (rows, in_features), dtype=torch.uint8, generator=generator)
            calls.append(lambda layer=layer, q=q: torch.ops.onednn.qlinear_pointwise(
                q, 0.02, 128, layer._packed, layer._scales, layer._zeros, layer.bias, 1.0, 0,
                torch.float32, "none", [], ""))
        else:
            x = torch.randn(rows, in_features, generator=generator).to(fast.dtype)
            calls.append(lambda layer=layer, x=x: layer(x))
    return calls, flop


def timed_rounds(contenders: dict[str, object], products: dict[str, list[object]],
                 mel: torch.Tensor, rounds: int) -> dict[str, list[float]]:
    """Seconds per window of each contender, and seconds per batch of each precision's
    products, taking turns round after round: the peak is measured beside the tower, so a
    machine whose speed drifts moves both alike."""
    longer = torch.zeros((mel.shape[0], 1), dtype=torch.bool)
    times: dict[str, list[float]] = {name: [] for name in [*contenders, *products]}
    with torch.inference_mode():
        for fn in contenders.values():
            fn(mel, longer)  # first-call set-up of the kernels, out of the clock
        for calls in products.values():
            for call in calls:
                call()
        for _ in range(rounds):
            for name, calls in products.items():
                start = time.perf_counter()
                for call in calls:
                    call()
                times[name].append(time.perf_counter() - start)
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn(mel, longer)
                times[name].append((time.perf_counter() - start) / mel.shape[0])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds (about a minute idle)")
    parser.add_argument("--batch", type=int, default=None, help="windows per call (the indexer's)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-alternatives", action="store_true")
    parser.add_argument("--alternatives", action="store_true", help="measure them under --quick too")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from clapdesk.core.embed.cpu_linear import use_onednn_linears
    from clapdesk.core.embed.fast_tower import build_fast_tower
    from clapdesk.core.index.indexer import BATCH_WINDOWS

    batch = args.batch or BATCH_WINDOWS
    rounds = args.rounds or (3 if args.quick else 7)
    load_start = load_average()
    model_folder = args.model or full_model()
    stock = stock_tower(model_folder)
    flop = flop_per_window(stock)
    towers = {}
    build_seconds = {}
    for precision in PRECISIONS:
        start = time.perf_counter()
        towers[precision] = build_fast_tower(stock, precision)
        build_seconds[precision] = round(time.perf_counter() - start, 2)
    products = {p: product_calls(t, batch) for p, t in towers.items() if t}

    before = stock_tower(model_folder)
    use_onednn_linears(before)  # clapdesk's tower before this change: stock code, oneDNN layers
    contenders: dict[str, object] = {
        "transformers_float32": lambda mel, longer: stock(input_features=mel, is_longer=longer),
        "clapdesk_before_float32": lambda mel, longer: before(input_features=mel, is_longer=longer),
        **{f"clapdesk_{p}": t for p, t in towers.items() if t},
    }
    mel = test_mel(batch)
    times = timed_rounds(contenders, {f"peak_{p}": c for p, (c, _) in products.items()}, mel, rounds)
    peaks = {}
    for precision, (calls, product_flop) in products.items():
        seconds = times.pop(f"peak_{precision}")
        peaks[precision] = {"gflops": round(product_flop / min(seconds) / 1e9, 1),
                            "gflops_median": round(product_flop / statistics.median(seconds) / 1e9, 1),
                            "products": len(calls),
                            "product_gflop_per_window": round(product_flop / batch / 1e9, 2)}

    longer = torch.zeros((batch, 1), dtype=torch.bool)
    with torch.inference_mode():
        reference = stock(input_features=mel, is_longer=longer).pooler_output
        vectors = {p: t(mel, longer).pooler_output for p, t in towers.items() if t}

    result: dict[str, object] = {
        "benchmark": "tower", "cpu": cpu_name(), "cpu_flags": cpu_flags(),
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "batch_windows": batch, "rounds": rounds, "gflop_per_window": round(flop / 1e9, 2),
        "fast_tower_build_seconds": build_seconds, "peak": peaks,
    }
    for name, seconds in times.items():
        best, median = min(seconds), statistics.median(seconds)
        entry: dict[str, object] = {"ms_per_window": round(best * 1000, 1),
                                    "ms_per_window_median": round(median * 1000, 1),
                                    "gflops": round(flop / best / 1e9, 1)}
        precision = name.rsplit("_", 1)[-1]
        if precision in peaks:
            entry["share_of_peak"] = round(flop / best / 1e9 / peaks[precision]["gflops"], 3)
            entry["share_of_peak_median"] = round(
                flop / median / 1e9 / peaks[precision]["gflops_median"], 3)
        if name.startswith("clapdesk_") and precision in vectors:
            got = vectors[precision]
            entry["max_abs_difference_to_transformers"] = float(f"{(got - reference).abs().max().item():.3g}")
            entry["least_cosine_to_transformers"] = round(
                torch.nn.functional.cosine_similarity(got, reference).min().item(), 6)
        result[name] = entry
    base = min(times["transformers_float32"])
    result["speedup_over_transformers"] = {
        name: round(base / min(seconds), 2) for name, seconds in times.items()}
    if not args.no_alternatives and (args.alternatives or not args.quick):
        from bench_tower_runtimes import measure_runtimes

        result["alternatives"] = measure_runtimes(stock, mel, reference, rounds,
                                                  {n: min(s) for n, s in times.items()})
    result["load_average_1min"] = {"start": load_start, "end": load_average()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
