"""Indexing on a GPU (CUDA or Apple's MPS): files per second and how busy the device was.

The full larger_clap_music architecture (random weights), the benchmark's mixed sample library,
Library.index_folders on a fresh library with clapdesk's GPU plan (half precision, batches
sized to the free memory, every core decoding; core/index/device_plan.py), against the same run
at the CPU batch of 4 windows on the same GPU. The device's utilisation is sampled every
0.2 s while indexing: torch.cuda.utilization() where NVML answers, else nvidia-smi, else not
reported (MPS has no such counter). Without a GPU it prints {"skipped": true, "reason": ...}
and exits 0.

    python benchmarks/bench_gpu.py [--files 400] [--quick]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import full_model, load_average, make_library, quiet_libraries  # noqa: E402

quiet_libraries()


def gpu_device() -> tuple[str | None, str]:
    """("cuda" or "mps", its name), or (None, why not)."""
    try:
        import torch
    except ImportError as exc:
        return None, f"torch cannot be imported ({exc})"
    if torch.cuda.is_available():
        return "cuda", torch.cuda.get_device_name(0)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps", "Apple MPS"
    built = "CUDA build" if torch.version.cuda else "CPU-only build"
    return None, f"no CUDA or MPS device here (torch {torch.__version__}, {built})"


class Utilisation:
    """Samples the GPU's utilisation (percent) on a thread while a `with` block runs."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.samples: list[float] = []
        self.source: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-gpu-util", daemon=True)

    def _read(self) -> float | None:
        if not self.device.startswith("cuda"):
            return None
        import torch

        if self.source in (None, "torch.cuda.utilization"):
            try:
                value = float(torch.cuda.utilization())
                self.source = "torch.cuda.utilization"
                return value
            except Exception:  # no NVML bindings: ask nvidia-smi
                self.source = "nvidia-smi" if shutil.which("nvidia-smi") else "none"
        if self.source == "nvidia-smi":
            out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu",
                                  "--format=csv,noheader,nounits", "-i", "0"],
                                 capture_output=True, text=True, timeout=5)
            try:
                return float(out.stdout.strip().splitlines()[0])
            except (ValueError, IndexError):
                return None
        return None

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            value = self._read()
            if value is not None:
                self.samples.append(value)

    def __enter__(self) -> Utilisation:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def to_json(self) -> dict[str, object]:
        if not self.samples:
            return {"source": self.source or "none", "mean_percent": None, "peak_percent": None}
        return {"source": self.source, "mean_percent": round(statistics.fmean(self.samples), 1),
                "peak_percent": max(self.samples), "samples": len(self.samples)}


def index_once(model: Path, folder: Path, device: str, batch: int | None) -> dict[str, object]:
    """A fresh library indexes `folder`; the model is loaded before the clock starts."""
    from clapdesk.core.index.device_plan import plan_for
    from clapdesk.core.index.indexer import Indexer
    from clapdesk.core.library import Library
    from clapdesk.core.store.catalog import Catalog

    with tempfile.TemporaryDirectory() as scratch:
        library = Library(Path(scratch) / "library", model=str(model), device=device,
                          precision="auto")
        embedder = library.embedder()
        chosen = plan_for(embedder)
        catalog = Catalog(library.paths.catalog)
        try:
            indexer = Indexer(catalog, library.vector_index(), library.embedder,
                              batch_windows=batch or chosen.batch_windows)
            with Utilisation(device) as busy:
                began = time.perf_counter()
                report = indexer.run([str(folder)])
                if device.startswith("cuda"):
                    import torch

                    torch.cuda.synchronize()
                seconds = time.perf_counter() - began
        finally:
            catalog.close()
            library.close()
        return {"batch_windows": indexer.batch_windows, "precision": embedder.precision,
                "files": report.indexed, "seconds": round(seconds, 2),
                "files_per_second": round(report.indexed / seconds, 2),
                "utilisation": busy.to_json(), "plan": chosen.to_json()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--quick", action="store_true", help="120 files")
    args = parser.parse_args()
    device, name = gpu_device()
    if device is None:
        print(json.dumps({"benchmark": "gpu", "skipped": True, "reason": name,
                          "load_average": load_average()}))
        return
    count = 120 if args.quick else args.files
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "samples"
        make_library(folder, count=count, duplicates=0)
        model = full_model()
        planned = index_once(model, folder, device, None)
        cpu_batch = index_once(model, folder, device, 4)
    print(json.dumps({"benchmark": "gpu", "skipped": False, "device": device, "name": name,
                      "files": count, "gpu_plan": planned, "cpu_batch_on_gpu": cpu_batch,
                      "speedup_of_the_plan": round(planned["files_per_second"]  # type: ignore[operator]
                                                   / cpu_batch["files_per_second"], 2),
                      "load_average": load_average()}))


if __name__ == "__main__":
    main()
