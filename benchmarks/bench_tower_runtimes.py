"""Other runtimes for the audio tower: ONNX Runtime and OpenVINO, same windows, same vectors.

Used by bench_tower.py (its `alternatives` entry); runs on its own too. Each runtime is
measured only where its package is installed (`pip install -e .[runtimes]` pins the versions
measured); otherwise its entry says it was skipped and why. Neither is a clapdesk dependency.

- ONNX Runtime: the stock tower exported to ONNX; float32, and int8 by ONNX Runtime's own
  dynamic quantisation (int8 weights, int8 inputs per call, as clapdesk's int8). Its CPU
  provider has no bfloat16 path for these operators, so no bfloat16 figure.
- OpenVINO: the stock tower converted from torch; float32 (precision hint f32: on CPUs with
  AMX OpenVINO runs bf16 unless told otherwise) and bfloat16 (hint bf16). Its int8 needs a
  separate quantisation package (NNCF), not measured here.

    nice python benchmarks/bench_tower_runtimes.py [--batch 4] [--rounds 3]
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import load_average, quiet_libraries  # noqa: E402

quiet_libraries()

import numpy as np  # noqa: E402
import torch  # noqa: E402

# Where an alternative would have to beat clapdesk's own tower to be worth adopting.
ADOPT_IF_FASTER = 1.15


def installed(*names: str) -> bool:
    return all(importlib.util.find_spec(name) is not None for name in names)


class _PooledTower(torch.nn.Module):
    """The stock tower as a graph from log-mel windows to pooled features (no fusion flag)."""

    def __init__(self, tower: torch.nn.Module) -> None:
        super().__init__()
        self.tower = tower

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        longer = torch.zeros((mel.shape[0], 1), dtype=torch.bool)
        return self.tower(input_features=mel, is_longer=longer).pooler_output


def _timed(run: Any, rounds: int, windows: int) -> dict[str, float]:
    run()  # first call: the runtime's own set-up
    seconds = []
    for _ in range(rounds):
        start = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - start)
    return {"ms_per_window": round(1000 * min(seconds) / windows, 1)}


def _compare(got: np.ndarray, reference: torch.Tensor) -> dict[str, float]:
    ref = reference.numpy()
    cosine = np.sum(got * ref, axis=1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(ref, axis=1))
    return {"max_abs_difference_to_transformers": float(f"{np.abs(got - ref).max():.3g}"),
            "least_cosine_to_transformers": round(float(cosine.min()), 6)}


def onnxruntime_figures(tower: torch.nn.Module, mel: torch.Tensor, reference: torch.Tensor,
                        rounds: int, scratch: Path) -> dict[str, Any]:
    if not installed("onnxruntime", "onnx"):
        return {"skipped": "onnxruntime and onnx are not installed (pip install -e .[runtimes])"}
    import onnxruntime as ort
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out: dict[str, Any] = {"version": ort.__version__}
    path = scratch / "tower.onnx"
    start = time.perf_counter()
    try:
        with torch.inference_mode():
            torch.onnx.export(_PooledTower(tower).eval(), (mel,), str(path), input_names=["mel"],
                              output_names=["pooled"], dynamic_axes={"mel": {0: "batch"}},
                              opset_version=17, dynamo=False)
    except Exception as exc:  # an exporter that cannot take this model is a figure too
        return {**out, "error": f"export failed: {str(exc).splitlines()[0][:300]}"}
    out["export_seconds"] = round(time.perf_counter() - start, 1)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    quantised = scratch / "tower-int8.onnx"
    start = time.perf_counter()
    quantize_dynamic(str(path), str(quantised), weight_type=QuantType.QInt8, per_channel=True)
    out["int8_quantise_seconds"] = round(time.perf_counter() - start, 1)
    feed = {"mel": mel.numpy()}
    for name, model in (("float32", path), ("int8", quantised)):
        session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        got = session.run(None, feed)[0]
        out[name] = {**_timed(lambda s=session: s.run(None, feed), rounds, len(mel)),
                     **_compare(got, reference)}
    out["bfloat16"] = {"skipped": "the CPU execution provider has no bfloat16 path for this graph"}
    return out


def openvino_figures(tower: torch.nn.Module, mel: torch.Tensor, reference: torch.Tensor,
                     rounds: int) -> dict[str, Any]:
    if not installed("openvino"):
        return {"skipped": "openvino is not installed (pip install -e .[runtimes])"}
    import openvino as ov

    out: dict[str, Any] = {"version": ov.__version__}
    start = time.perf_counter()
    try:
        with torch.no_grad():
            model = ov.convert_model(_PooledTower(tower).eval(), example_input=mel)
    except Exception as exc:
        return {**out, "error": f"conversion failed: {str(exc).splitlines()[0][:300]}"}
    out["convert_seconds"] = round(time.perf_counter() - start, 1)
    core = ov.Core()
    threads = str(torch.get_num_threads())
    data = mel.numpy()
    for name, hint in (("float32", "f32"), ("bfloat16", "bf16")):
        start = time.perf_counter()
        try:
            compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                         "INFERENCE_NUM_THREADS": threads})
        except Exception as exc:
            out[name] = {"error": str(exc).splitlines()[0][:300]}
            continue
        compile_seconds = round(time.perf_counter() - start, 1)
        request = compiled.create_infer_request()
        got = np.asarray(request.infer({0: data})[compiled.output(0)])
        out[name] = {**_timed(lambda r=request: r.infer({0: data}), rounds, len(mel)),
                     **_compare(got, reference), "compile_seconds": compile_seconds}
    out["int8"] = {"skipped": "OpenVINO's int8 needs NNCF post-training quantisation (another "
                              "package); not measured"}
    return out


class OpenVinoTower:
    """The stock tower compiled by OpenVINO, callable as clapdesk's fast tower is, for
    bench_index's indexing comparison. One compiled model per batch size (static shapes:
    1.20x against 1.14x for one model with a dynamic batch, alternated runs on the AVX2 EPYC),
    each converted and compiled on its first call; `prepare` does that out of any clock."""

    def __init__(self, tower: torch.nn.Module) -> None:
        import openvino as ov

        self._ov, self._core, self._tower = ov, ov.Core(), _PooledTower(tower).eval()
        self._compiled: dict[int, Any] = {}
        self.convert_seconds = 0.0

    def prepare(self, mel: torch.Tensor) -> None:
        if len(mel) in self._compiled:
            return
        start = time.perf_counter()
        with torch.no_grad():
            model = self._ov.convert_model(self._tower, example_input=mel)
        compiled = self._core.compile_model(model, "CPU", {
            "INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": str(torch.get_num_threads())})
        self._compiled[len(mel)] = (compiled, compiled.create_infer_request())
        self.convert_seconds += time.perf_counter() - start

    def __call__(self, mel: torch.Tensor, is_longer: torch.Tensor | None = None) -> Any:
        from clapdesk.core.embed.fast_tower import TowerOutput

        self.prepare(mel)
        compiled, request = self._compiled[len(mel)]
        pooled = np.array(request.infer({0: mel.numpy()})[compiled.output(0)])
        return TowerOutput(pooler_output=torch.from_numpy(pooled))


def measure_runtimes(tower: torch.nn.Module, mel: torch.Tensor, reference: torch.Tensor,
                     rounds: int, ours: dict[str, float]) -> dict[str, Any]:
    """Both runtimes' figures, and whether either beats clapdesk's tower by ADOPT_IF_FASTER in
    the same precision (`ours`: seconds per window by bench_tower's contender names)."""
    with tempfile.TemporaryDirectory(prefix="clapdesk-runtimes-") as scratch:
        result = {"onnxruntime": onnxruntime_figures(tower, mel, reference, rounds, Path(scratch)),
                  "openvino": openvino_figures(tower, mel, reference, rounds)}
    verdict = {}
    for runtime, figures in result.items():
        for precision in ("float32", "bfloat16", "int8"):
            entry = figures.get(precision)
            mine = ours.get(f"clapdesk_{precision}")
            if isinstance(entry, dict) and "ms_per_window" in entry and mine:
                speedup = 1000 * mine / entry["ms_per_window"]
                entry["speed_against_clapdesk"] = round(speedup, 2)
                verdict[f"{runtime}_{precision}"] = round(speedup, 2)
    result["adopt_threshold"] = ADOPT_IF_FASTER
    result["faster_than_clapdesk_by_threshold"] = sorted(
        k for k, v in verdict.items() if v > ADOPT_IF_FASTER)
    return result


def main() -> None:
    import argparse

    from bench_tower import stock_tower, test_mel
    from common import full_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    load_start = load_average()
    tower = stock_tower(full_model())
    mel = test_mel(args.batch)
    with torch.inference_mode():
        reference = tower(input_features=mel, is_longer=torch.zeros((args.batch, 1),
                                                                    dtype=torch.bool)).pooler_output
    result = measure_runtimes(tower, mel, reference, args.rounds, {})
    result["load_average_1min"] = {"start": load_start, "end": load_average()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
