"""How an indexing run uses a GPU (CUDA or Apple's MPS): precision, batch size, decoders.

On a GPU the audio tower runs in half precision (float16: the tensor cores' native format,
about twice the speed of float32 and half its memory; CLAP's vectors keep a cosine above 0.999
to float32's), the batches are as large as the device's free memory allows (a GPU is only busy
with dozens of windows at once, where a CPU does best with four), and every core decodes, since
the model no longer needs them: the decoders, not the model, are then the pipeline's limit, and
the read-ahead holds two batches so the GPU never waits for a decoded window.

Every decision here is a function of figures passed in (free memory, bytes per window, cores)
so it is tested without a GPU; only `probe_*` ask the device.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Windows per model call on a CPU (indexer.BATCH_WINDOWS). Measured on a quiet 2-core CPU with
# torch 2.13 (benchmarks/bench_index.py): batches of 4 cost the least per window (about 0.12 s
# float32, 0.065 s int8), 2 about 25 % more and 8 about 5-10 % more (the activations leave the
# cache).
CPU_BATCH_WINDOWS = 4
# Bounds of a GPU batch. The upper one is host memory: each 10-second window waits decoded as
# about 1.9 MB of float32 samples, and two batches are read ahead (2 x 128 x 1.9 MB = 490 MB).
GPU_MIN_BATCH = 8
GPU_MAX_BATCH = 128
# Share of the free device memory a batch may take: the rest is left to the allocator's
# fragmentation, cuDNN's workspaces and whatever else runs on the GPU (a DAW's plug-ins can).
MEMORY_SHARE = 0.6
HALF = "float16"


def is_gpu(device: str) -> bool:
    return device.startswith("cuda") or device == "mps"


def precision_for(device: str, requested: str | None) -> str:
    """The audio tower's precision: what the producer asked for, or with "auto" (or nothing
    asked) half precision on a GPU and float32 on a CPU."""
    if requested and requested != "auto":
        return requested
    return HALF if is_gpu(device) else "float32"


def batch_for_memory(free_bytes: int, window_bytes: int, share: float = MEMORY_SHARE,
                     low: int = GPU_MIN_BATCH, high: int = GPU_MAX_BATCH) -> int:
    """Windows per model call that fit in `share` of `free_bytes`, at `window_bytes` each
    (the peak memory one more window costs). A multiple of 8 (the tensor cores' tile) between
    `low` and `high`; `low` even when memory is short, since fewer windows gain nothing."""
    if window_bytes <= 0:
        raise ValueError("a window's memory must be positive")
    fits = int(max(0, free_bytes) * share // window_bytes)
    if fits >= 8:
        fits -= fits % 8
    return max(low, min(high, fits))


def estimate_window_bytes(audio_config: Any, dtype_bytes: int) -> int:
    """Peak activation memory of one window in the HTSAT audio tower, from its configuration:
    the largest stage's tokens times (its MLP's width, the attention's query/key/value and
    output) plus its attention scores, times three for the allocator's live copies. Used where
    the device cannot be measured (MPS); CUDA measures it (probe_window_bytes)."""
    size = int(getattr(audio_config, "spec_size", 256))
    stride = getattr(audio_config, "patch_stride", (4, 4))
    stride = stride[0] if isinstance(stride, (list, tuple)) else int(stride)
    dim = int(getattr(audio_config, "patch_embeds_hidden_size", 96))
    heads = list(getattr(audio_config, "num_attention_heads", (4, 8, 16, 32)))
    depths = list(getattr(audio_config, "depths", (2, 2, 6, 2)))
    window = int(getattr(audio_config, "window_size", 8))
    mlp = float(getattr(audio_config, "mlp_ratio", 4.0))
    tokens = (size // stride) ** 2
    peak = 0.0
    for stage in range(len(depths)):
        width = dim * 2 ** stage
        stage_tokens = tokens / 4 ** stage
        scores = (stage_tokens / window ** 2) * heads[min(stage, len(heads) - 1)] * window ** 4
        peak = max(peak, stage_tokens * width * (mlp + 4) + scores)
    return int(3 * peak * dtype_bytes)


@dataclass(frozen=True)
class DevicePlan:
    device: str
    precision: str
    batch_windows: int
    decoders: int
    why: str

    def to_json(self) -> dict[str, object]:
        return {"device": self.device, "precision": self.precision,
                "batch_windows": self.batch_windows, "decoders": self.decoders, "why": self.why}


def plan(device: str, precision: str, free_bytes: int | None, window_bytes: int | None,
         cores: int | None = None) -> DevicePlan:
    """The run's plan from the device's figures (see the module's docstring)."""
    cores = cores or os.cpu_count() or 1
    if not is_gpu(device):
        return DevicePlan(device, precision, CPU_BATCH_WINDOWS, max(1, min(4, cores)),
                          "CPU: batches of 4 windows, the cheapest per window here")
    if free_bytes is None or not window_bytes:
        return DevicePlan(device, precision, GPU_MIN_BATCH, cores,
                          "GPU without a memory figure: the smallest GPU batch")
    batch = batch_for_memory(free_bytes, window_bytes)
    return DevicePlan(device, precision, batch, cores,
                      f"GPU: {batch} windows of {window_bytes / 2**20:.0f} MB fit in "
                      f"{MEMORY_SHARE:.0%} of {free_bytes / 2**30:.1f} GiB free")


# -- asking the device ----------------------------------------------------------------------------
def probe_free_bytes(device: str) -> int | None:
    """Free memory on the device now, or None where it cannot be asked."""
    import torch

    try:
        if device.startswith("cuda"):
            free, _total = torch.cuda.mem_get_info(torch.device(device))
            return int(free)
        if device == "mps":
            limit = int(torch.mps.recommended_max_memory())
            return max(0, limit - int(torch.mps.driver_allocated_memory()))
    except (RuntimeError, AttributeError) as exc:
        log.info("free memory of %s not known: %s", device, exc)
    return None


def probe_window_bytes(device: str, embed: Callable[[int], object]) -> int | None:
    """The peak memory one more window costs, measured: `embed(n)` runs the tower on n
    windows; the peak of 4 windows less the peak of 2, halved. CUDA only (None elsewhere)."""
    if not device.startswith("cuda"):
        return None
    import torch

    peaks = []
    for count in (2, 4):
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        embed(count)
        torch.cuda.synchronize(device)
        peaks.append(torch.cuda.max_memory_allocated(device) - base)
    per_window = (peaks[1] - peaks[0]) // 2
    return int(per_window) if per_window > 0 else None


def plan_for(embedder: Any) -> DevicePlan:
    """The plan for a loaded embedder (ClapEmbedder): measured on CUDA, estimated on MPS."""
    import numpy as np

    device, precision = embedder.device, embedder.precision
    if not is_gpu(device):
        return plan(device, precision, None, None)
    free = probe_free_bytes(device)
    silence = np.zeros(embedder.window_samples, np.float32)
    window_bytes = probe_window_bytes(device, lambda n: embedder.features_for([silence] * n))
    if window_bytes is None:
        dtype_bytes = 2 if precision in ("float16", "bfloat16") else 4
        window_bytes = estimate_window_bytes(embedder.model.config.audio_config, dtype_bytes)
    chosen = plan(device, precision, free, window_bytes)
    log.info("indexing on %s: %s", device, chosen.why)
    return chosen
