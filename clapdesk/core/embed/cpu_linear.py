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
at run time (one scale and zero point per call, from the input's own range), and runs the
product on oneDNN's int8 kernels (`torch.ops.onednn.qlinear_pointwise`, torch's current int8
path; AMX or VNNI where the CPU has them). It replaces torch's older quantised-tensor layers,
which torch now deprecates. Inputs get all 8 bits where the CPU sums 8-bit products in 32 bits
(VNNI, AMX), and 7 bits elsewhere: AVX2's multiply-add sums each pair of products in 16 bits,
which clips when both are large (255 x 127 x 2 > 32767). On an AVX2-only EPYC the full 8 bits
left the tower's vectors at cosine 0.9992 to float32's; 7 bits give 0.99985.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from clapdesk.core.embed.cpu_features import has_int8_dot

log = logging.getLogger(__name__)

# Largest difference tolerated between oneDNN and torch on the check input (float32 products
# of length up to 4096 differ by ~1e-5 from summation order alone).
CHECK_TOLERANCE = 1e-3
# Quantisation steps of an int8 layer's input range (see the module's note on AVX2).
INPUT_STEPS_8BIT = 254.9
INPUT_STEPS_7BIT = 126.9
# Inputs larger than this many values are quantised in blocks of it (2 MB of float32).
QUANTISE_BLOCK = 1 << 19


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
    """`nn.Linear` with int8 weights (one scale per output row) and uint8 inputs (per call)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.out_features, self.in_features = weight.shape
        weight = weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        quantised = torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8)
        self._packed = torch.ops.onednn.qlinear_prepack(quantised, None)
        self._scales = scales.contiguous()
        self._zeros = torch.zeros(len(scales), dtype=torch.long)
        self.bias = None if bias is None else bias.detach().float().contiguous()
        self._steps = INPUT_STEPS_8BIT if has_int8_dot() else INPUT_STEPS_7BIT

    def forward(self, x: torch.Tensor, gelu: bool = False,
                add: torch.Tensor | None = None) -> torch.Tensor:
        """x @ W.T + b, then GELU or `+ add` fused into the same call if asked."""
        shape = x.shape
        flat = x.reshape(-1, self.in_features).float()
        low, high = torch.aminmax(flat)
        # The range always holds 0, so that 0 (padding, a GELU's floor) is exact.
        low, high = min(low.item(), 0.0), max(high.item(), 0.0)
        # 254.9 steps, not 255 (126.9, not 127, for 7 bits): x / scale + zero + 0.5 then stays
        # below steps + 1.1 for every x in the range (zero's rounding and float rounding
        # included), so the cast lands in [0, 255] (or [0, 127]) with no clamp before it.
        scale = max((high - low) / self._steps, 1e-12)
        zero = int(round(-low / scale))
        # x / scale + zero in one pass, rounded half up (+0.5, then the cast truncates): three
        # passes over the input in all (range, scale, cast) where round and clamp made five.
        offset = torch.tensor(zero + 0.5, dtype=torch.float32)
        quantised = _quantise(flat, offset, 1.0 / scale)
        ops = torch.ops.onednn
        if add is not None:
            out = ops.qlinear_pointwise.binary(
                quantised, scale, zero, self._packed, self._scales, self._zeros,
                add.reshape(-1, self.out_features).float(), self.bias, 1.0, 0, torch.float32,
                1.0, 0, "add", 1.0, "none", [], "")
        else:
            out = ops.qlinear_pointwise(quantised, scale, zero, self._packed, self._scales,
                                        self._zeros, self.bias, 1.0, 0, torch.float32,
                                        "gelu" if gelu else "none", [], "none" if gelu else "")
        return out.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}"


def _quantise(flat: torch.Tensor, offset: torch.Tensor, inverse_scale: float) -> torch.Tensor:
    """uint8(offset + flat * inverse_scale). A big input goes in row blocks, so the float
    intermediate stays in cache: on the first stage's MLP input (16,384 x 512 at a batch of 4)
    that is 9 ms instead of 25."""
    if flat.numel() <= QUANTISE_BLOCK:
        return torch.add(offset, flat, alpha=inverse_scale).to(torch.uint8)
    rows = max(1, QUANTISE_BLOCK // flat.shape[1])
    out = torch.empty(flat.shape, dtype=torch.uint8)
    scratch = torch.empty(min(rows, flat.shape[0]), flat.shape[1])
    for start in range(0, flat.shape[0], rows):
        part = flat[start:start + rows]
        block = scratch[:len(part)]
        torch.add(offset, part, alpha=inverse_scale, out=block)
        out[start:start + rows].copy_(block)
    return out


def int8_available() -> bool:
    """True where torch has oneDNN's int8 linear kernels (x86 builds)."""
    return (torch.backends.mkldnn.is_available()
            and hasattr(torch.ops.onednn, "qlinear_pointwise")
            and hasattr(torch.ops.onednn, "qlinear_prepack"))


def quantise_linears(tower: nn.Module) -> int:
    """Swap every linear layer of the tower for an int8 one, in place; returns how many."""
    if not int8_available():
        raise RuntimeError("this torch build has no oneDNN int8 kernels")
    swaps = [(parent, name, child) for parent in tower.modules()
             for name, child in parent.named_children() if isinstance(child, nn.Linear)]
    for parent, name, child in swaps:
        setattr(parent, name, Int8Linear(child.weight, child.bias))
    return len(swaps)
