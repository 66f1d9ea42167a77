"""Fast linear layers for CPUs: float32 on oneDNN, and int8 with 8-bit activations where safe.

torch's CPU builds send a float32 `nn.Linear` to MKL's sgemm. On AMD processors MKL takes its
AVX2 code path even where the CPU has AVX-512, so a 2-core Zen 5 runs those products at about
170 GFLOPS, while oneDNN (also in every torch build, and chosen by instruction set, not by
vendor) runs the very same float32 products at about 410 (measured on the project's CPU). The
linear layers are about 70 % of an audio window's cost, so routing them through oneDNN, with the
MLP's GELU fused into its first product, makes a window about twice as fast in full float32:
nothing is rounded to a smaller type, and only the order of the sums changes.

The swap is checked once when the model loads: a plain and a fused layer are compared against
torch's own result on a check input, and the model keeps torch's layers if oneDNN is missing or
disagrees.

The int8 mode quantises each weight row to 8 bits (one scale per output channel) and each input
to 8 bits at run time (one scale per call). torch's stock dynamic layer keeps only 7 bits of
the input, a guard against overflow in the 16-bit sums of CPUs without VNNI; CPUs with
AVX512-VNNI add in 32 bits, so there the full 8 bits are used: half the input rounding error,
at the same speed (top-10 overlap with float32 0.92 against 0.86, on the project's benchmark).
"""

from __future__ import annotations

import logging
import sys
import warnings
from functools import lru_cache
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

# Largest difference tolerated between oneDNN and torch on the check input (float32 products
# of length up to 4096 differ by ~1e-5 from summation order alone).
CHECK_TOLERANCE = 1e-3


class OneDnnLinear(nn.Module):
    """`nn.Linear`, optionally followed by exact (erf) GELU, as one oneDNN call."""

    def __init__(self, linear: nn.Linear, gelu: bool = False) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        # The same tensors the model loaded: no copy, and fine-tuning code that reads them sees
        # the model's own weights.
        self.weight = linear.weight
        self.bias = linear.bias
        self.gelu = gelu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype != torch.float32 or torch.is_grad_enabled():
            # Outside float32 inference (autocast, training) torch's own path is the right one.
            out = nn.functional.linear(x, self.weight, self.bias)
            return nn.functional.gelu(out) if self.gelu else out
        attr = "gelu" if self.gelu else "none"
        algorithm = "none" if self.gelu else ""  # "none" selects erf GELU, not the tanh form
        return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, attr, [], algorithm)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, gelu={self.gelu}"


def onednn_available() -> bool:
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def _is_exact_gelu(module: Any) -> bool:
    """True for transformers' erf GELU (the HTSAT MLP's activation), not the tanh variants."""
    name = type(module).__name__
    if name == "GELUActivation":
        return getattr(module, "act", None) is nn.functional.gelu
    return isinstance(module, nn.GELU) and module.approximate == "none"


def _agrees(original: nn.Module, fast: nn.Module, in_features: int) -> bool:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 16, in_features, generator=generator)
    with torch.inference_mode():
        try:
            difference = (fast(x) - original(x)).abs().max().item()
        except RuntimeError as exc:
            log.info("oneDNN linear unavailable here (%s)", exc)
            return False
    return difference <= CHECK_TOLERANCE


def use_onednn_linears(tower: nn.Module) -> int:
    """Swap the tower's float32 linear layers for oneDNN ones, in place; returns how many.

    An MLP's first linear layer and the GELU after it become one fused call. Nothing is swapped
    if oneDNN is unavailable or its answer differs from torch's on a check input.
    """
    if not onednn_available():
        return 0
    swaps: list[tuple[nn.Module, str, nn.Module]] = []
    for parent in tower.modules():
        activation = getattr(parent, "intermediate_act_fn", None)
        fuse = isinstance(getattr(parent, "dense", None), nn.Linear) and _is_exact_gelu(activation)
        for name, child in parent.named_children():
            if isinstance(child, nn.Linear) and child.weight.dtype == torch.float32:
                swaps.append((parent, name, OneDnnLinear(child, gelu=fuse and name == "dense")))
        if fuse:
            swaps.append((parent, "intermediate_act_fn", nn.Identity()))
    # Check one plain and one fused layer before touching the model.
    for kind in (False, True):
        sample = next(((p, n, f) for p, n, f in swaps
                       if isinstance(f, OneDnnLinear) and f.gelu == kind), None)
        if sample is None:
            continue
        parent, name, fast = sample
        original = getattr(parent, name)
        reference = nn.Sequential(original, nn.GELU()) if kind else original
        if not _agrees(reference, fast, fast.in_features):
            log.info("oneDNN linear layers disagree with torch here; keeping torch's")
            return 0
    for parent, name, replacement in swaps:
        setattr(parent, name, replacement)
    return sum(isinstance(r, OneDnnLinear) for _, _, r in swaps)


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 weights (one scale per output row) and int8 inputs (per call)."""

    def __init__(self, linear: nn.Linear, full_range: bool) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12).double()
        zeros = torch.zeros(len(scales), dtype=torch.long)
        with warnings.catch_warnings():
            # torch 2.13 announces that quantised tensors will move out of torch itself; the
            # int8 kernels these layers use are unchanged, and `quantise_linears` reports a
            # clear error if a future torch drops them.
            warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
            quantised = torch.quantize_per_channel(weight, scales, zeros, 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float()
        self._packed = torch.ops.quantized.linear_prepack(quantised, bias)
        # False: 8-bit inputs (needs VNNI's 32-bit sums); True: 7-bit, safe on every CPU.
        self.reduce_range = not full_range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic(x.float(), self._packed, self.reduce_range)

    def extra_repr(self) -> str:
        bits = 7 if self.reduce_range else 8
        return f"in_features={self.in_features}, out_features={self.out_features}, input_bits={bits}"


@lru_cache(maxsize=1)
def int8_inputs_full_range() -> bool:
    """True where int8 products add in 32 bits (AVX512-VNNI under torch's x86/fbgemm engine)."""
    if torch.backends.quantized.engine not in ("x86", "fbgemm"):
        return False
    if not sys.platform.startswith("linux"):
        return False  # no cheap way to ask the CPU elsewhere: stay with the safe 7 bits
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return "avx512_vnni" in line.split()
    except OSError:
        pass
    return False


def quantise_linears(tower: nn.Module) -> int:
    """Swap every linear layer of the tower for an int8 one, in place; returns how many."""
    full_range = int8_inputs_full_range()
    swaps = [(parent, name, child) for parent in tower.modules()
             for name, child in parent.named_children() if isinstance(child, nn.Linear)]
    for parent, name, child in swaps:
        setattr(parent, name, Int8Linear(child, full_range))
    return len(swaps)
