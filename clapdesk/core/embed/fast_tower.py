"""The HTSAT audio tower, re-run for CPU inference with the same weights and the same numbers.

Profiling transformers' tower as clapdesk ran it (oneDNN linear layers already in place, batch
of 4 windows) put only 40 % of a window's time in the linear layers: the rest went to layout
copies (`roll`, window partition and reverse, `cat` in the patch merging: 33 %), the attention's
small batched products, softmax, scaling and bias (22 %) and layer norms (5 %). This module
runs the same computation with three changes, none of which rounds anything differently from
float32 (vectors agree with the stock tower to about 1e-6):

- Tokens stay in window order. Layer norms, the MLP and the residual sums work token by token,
  so they do not care how tokens are ordered; only attention needs windows, and the next block
  needs the windows shifted by half a window. So each block starts with one gather that brings
  the tokens from the previous block's window order to its own (and the patch merging is one
  gather into its 2x2 groups), where the stock tower makes five copies per block.
- Attention is one `scaled_dot_product_attention` call per block on the fused q/k/v product,
  with the relative-position bias and the shifted-window mask added up once, when the tower is
  built, instead of gathered and broadcast again on every call.
- In bfloat16, GELU and the residual sums are fused into the products before them (oneDNN
  post-ops); in float32 they are separate in-place passes, which are faster there (see _Linear).

The same code runs in bfloat16 (weights cast once; products on AMX or AVX512-BF16 where the CPU
has them). Anything the fast path does not cover (padding to the window, fusion inputs marked
longer, autograd) goes through the stock tower.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

log = logging.getLogger(__name__)

# Largest difference from the stock tower tolerated by the check when the tower is built
# (pooled features are of order 1; float32 summation order alone moves them by ~1e-6).
CHECK_TOLERANCE = {"float32": 1e-4, "bfloat16": 0.1, "int8": 0.2}
# The rows a product is laid out for when its weights are packed (a batch of 4 windows gives
# 256 to 16,384 rows; the layout serves any count, this only guides oneDNN's blocking).
PACK_ROWS = 4096
# The type of the tokens between products: int8 products take and give float32.
STREAM_DTYPE = {"float32": torch.float32, "bfloat16": torch.bfloat16, "int8": torch.float32}


@dataclass
class TowerOutput:
    """What clapdesk reads from the stock tower's output object."""

    pooler_output: torch.Tensor


def window_order(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """Raster index of the token at each position of the (shifted) window order.

    Position k = ((wi * windows_across + wj) * window + a) * window + b holds the token at row
    (wi*window + a + shift) mod height, column (wj*window + b + shift) mod width: what the stock
    tower's roll by -shift followed by its window partition puts there.
    """
    rows = (torch.arange(height).view(-1, window) + shift) % height  # (windows_down, window)
    cols = (torch.arange(width).view(-1, window) + shift) % width
    raster = rows[:, None, :, None] * width + cols[None, :, None, :]  # (wd, wa, window, window)
    return raster.reshape(-1)


def inverse(order: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(order)
    out[order] = torch.arange(len(order))
    return out


def shift_mask(height: int, width: int, window: int, shift: int) -> torch.Tensor:
    """(windows, window², window²) additive mask of the shifted windows, as the stock tower's."""
    def regions(size: int) -> torch.Tensor:
        index = torch.arange(size)
        return (index >= size - window).long() + (index >= size - shift).long()

    label = (regions(height)[:, None] * 3 + regions(width)[None, :]).float()
    # Window partition of the label image, in the rolled frame (where the regions are defined).
    label = label.view(height // window, window, width // window, window).permute(0, 2, 1, 3)
    label = label.reshape(-1, window * window)
    differs = (label[:, None, :] - label[:, :, None]) != 0
    return torch.zeros(differs.shape).masked_fill(differs, -100.0)


class _Linear:
    """A linear layer's weights, optionally cast, called through oneDNN where it is present.

    In float32 the weights are stored once in oneDNN's own blocked layout, and the residual sum
    and GELU follow the product as separate in-place passes instead of oneDNN post-ops. On an
    AVX2-only EPYC, alternated runs of the whole tower gave 288 ms best / 325 median a window
    with packed weights and the separate add, against 314 / 343 with plain weights and the sum
    fused; the MLP's first products took 93 ms a window with torch's in-place GELU against 109
    with oneDNN's (its exact-erf post-op is slow there). bfloat16 keeps both post-ops fused."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, dtype: torch.dtype,
                 onednn: bool) -> None:
        self.weight = weight.detach().to(dtype).contiguous()
        self.bias = None if bias is None else bias.detach().to(dtype).contiguous()
        self.onednn = onednn
        self.fuse_post_ops = dtype != torch.float32
        if onednn and dtype == torch.float32:
            try:
                self.weight = torch.ops.mkldnn._reorder_linear_weight(self.weight, PACK_ROWS)
            except RuntimeError as exc:  # a build whose oneDNN cannot pack: plain weights
                log.debug("linear weights left unpacked: %s", exc)

    def __call__(self, x: torch.Tensor, gelu: bool = False,
                 add: torch.Tensor | None = None) -> torch.Tensor:
        if self.onednn:
            if self.fuse_post_ops and add is not None:
                return torch.ops.mkldnn._linear_pointwise.binary(x, add, self.weight, self.bias, "add")
            if self.fuse_post_ops and gelu:
                return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "gelu", [], "none")
            out = torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
            if gelu:
                out = torch.ops.aten.gelu_(out)
            return out if add is None else out.add_(add)
        out = nn.functional.linear(x, self.weight, self.bias)
        if gelu:
            out = nn.functional.gelu(out)
        return out if add is None else out.add_(add)


def _linear(weight: torch.Tensor, bias: torch.Tensor | None, precision: str,
            onednn: bool) -> Any:
    if precision == "int8":
        from clapdesk.core.embed.cpu_linear import Int8Linear

        return Int8Linear(weight, bias)
    return _Linear(weight, bias, STREAM_DTYPE[precision], onednn)


class _Norm:
    def __init__(self, norm: nn.LayerNorm, dtype: torch.dtype) -> None:
        self.shape = tuple(norm.normalized_shape)
        self.weight = norm.weight.detach().to(dtype)
        self.bias = norm.bias.detach().to(dtype)
        self.eps = norm.eps

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.layer_norm(x, self.shape, self.weight, self.bias, self.eps)


class _Block:
    """One Swin block working on tokens already in its own window order."""

    def __init__(self, layer: Any, height: int, width: int, precision: str, onednn: bool) -> None:
        dtype = STREAM_DTYPE[precision]
        window = min(layer.window_size, height, width)
        shift = layer.shift_size if min(height, width) > layer.window_size else 0
        attention = layer.attention.self
        self.heads = attention.num_attention_heads
        self.head_size = attention.attention_head_size
        self.tokens = window * window
        self.windows = (height // window) * (width // window)
        self.order = window_order(height, width, window, shift)
        self.norm_before = _Norm(layer.layernorm_before, dtype)
        self.norm_after = _Norm(layer.layernorm_after, dtype)
        qkv_bias = None
        if attention.query.bias is not None:
            qkv_bias = torch.cat([attention.query.bias, attention.key.bias, attention.value.bias])
        self.qkv = _linear(torch.cat([attention.query.weight, attention.key.weight,
                                      attention.value.weight]).detach(), qkv_bias, precision, onednn)
        self.proj = _linear(layer.attention.output.dense.weight, layer.attention.output.dense.bias,
                            precision, onednn)
        self.fc1 = _linear(layer.intermediate.dense.weight, layer.intermediate.dense.bias,
                           precision, onednn)
        self.fc2 = _linear(layer.output.dense.weight, layer.output.dense.bias, precision, onednn)
        # Relative-position bias (heads, t, t), plus the shift mask per window when shifted.
        table = attention.relative_position_bias_table.detach()
        index = attention.relative_position_index.view(-1)
        bias = table[index].view(self.tokens, self.tokens, -1).permute(2, 0, 1).float()
        if shift > 0:
            mask = bias[None] + shift_mask(height, width, window, shift)[:, None]
        else:
            mask = bias[None]  # (1, heads, t, t): the same for every window
        self.mask = mask.to(dtype).contiguous()
        self._expanded: torch.Tensor | None = None

    def _mask_for(self, rows: int) -> torch.Tensor:
        """The additive mask for `rows` = batch × windows attention rows."""
        if self.mask.shape[0] == 1:
            return self.mask
        if self._expanded is None or self._expanded.shape[0] < rows:
            self._expanded = self.mask.repeat(rows // self.windows, 1, 1, 1)
        return self._expanded[:rows]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        batch, _, channels = x.shape
        rows = batch * self.windows
        qkv = self.qkv(self.norm_before(x)).view(rows, self.tokens, 3, self.heads, self.head_size)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        context = nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=self._mask_for(rows), scale=1.0 / math.sqrt(self.head_size))
        context = context.transpose(1, 2).reshape(batch, -1, channels)
        x = self.proj(context, add=x)
        return self.fc2(self.fc1(self.norm_after(x), gelu=True), add=x)


class FastAudioTower:
    """Callable like the stock tower (input_features, is_longer) -> object with pooler_output."""

    def __init__(self, audio_model: nn.Module, precision: str = "float32",
                 onednn: bool | None = None) -> None:
        from clapdesk.core.embed.cpu_linear import onednn_available

        encoder = audio_model.audio_encoder
        self.stock = audio_model
        self.encoder = encoder
        self.precision = precision
        self.dtype = dtype = STREAM_DTYPE[precision]
        if onednn is None:
            # oneDNN builds no bfloat16 product on a CPU without AVX512-BF16 or AMX (it raises);
            # torch's own bfloat16 products run there, slowly, for a producer who asks for it.
            onednn = onednn_available() and (
                precision != "bfloat16" or torch.ops.mkldnn._is_mkldnn_bf16_supported())
        self.stages: list[tuple[list[_Block], tuple[torch.Tensor, _Norm, _Linear] | None]] = []
        order = None  # window order of the tokens coming in, as raster indices
        for i, stage in enumerate(encoder.layers):
            height, width = encoder.input_resolutions[i]
            window = min(stage.blocks[0].window_size, height, width)
            if height % window or width % window:
                raise ValueError(f"stage {i} ({height}x{width}) is not a whole number of windows")
            blocks = [_Block(layer, height, width, precision, onednn) for layer in stage.blocks]
            for block in blocks:
                # Gather from the previous order to this block's: position k takes the token
                # whose raster index is block.order[k], found where the previous order put it.
                block.gather = (block.order if order is None else inverse(order)[block.order])
                order = block.order
            merge = None
            if stage.downsample is not None:
                merge, order = self._merge_gather(order, height, width, stage, precision, onednn)
            self.stages.append((blocks, merge))
        # Identity gathers are dropped (the last stage is one unshifted window: no reordering).
        for blocks, _ in self.stages:
            for block in blocks:
                if torch.equal(block.gather, torch.arange(len(block.gather))):
                    block.gather = None
        self.norm = _Norm(encoder.norm, dtype)

    def _merge_gather(self, order: torch.Tensor, height: int, width: int, stage: Any,
                      precision: str, onednn: bool) -> tuple[Any, torch.Tensor]:
        """Patch merging as one gather into (merged token, 2x2 group) from the current order.

        The merged tokens come out in the raster order of the next stage, and that becomes the
        `order` its first block gathers from."""
        position = inverse(order)
        rows, cols = torch.meshgrid(torch.arange(height // 2), torch.arange(width // 2), indexing="ij")
        # The stock concatenation order: (row 0, col 0), (row 1, col 0), (row 0, col 1), (row 1, col 1).
        groups = [(2 * rows + r) * width + (2 * cols + c) for c in range(2) for r in range(2)]
        raster = torch.stack([g.reshape(-1) for g in groups], dim=1).reshape(-1)
        gather = position[raster]
        downsample = stage.downsample
        merge = (gather, _Norm(downsample.norm, STREAM_DTYPE[precision]),
                 _linear(downsample.reduction.weight, None, precision, onednn))
        return merge, torch.arange((height // 2) * (width // 2))

    def covers(self, is_longer: torch.Tensor | None) -> bool:
        if torch.is_grad_enabled():
            return False
        return not (self.encoder.enable_fusion and is_longer is not None and bool(is_longer.any()))

    @torch.inference_mode()
    def __call__(self, input_features: torch.Tensor, is_longer: torch.Tensor | None = None) -> Any:
        if not self.covers(is_longer):
            return self.stock(input_features=input_features, is_longer=is_longer)
        encoder = self.encoder
        x = encoder.batch_norm(input_features.transpose(1, 3)).transpose(1, 3)
        x = encoder.reshape_mel2img(x)
        empty = torch.zeros(0, dtype=torch.long)
        x = encoder.patch_embed(x, empty if encoder.enable_fusion else None)
        x = x.to(self.dtype)
        for blocks, merge in self.stages:
            for block in blocks:
                if block.gather is not None:
                    x = x.index_select(1, block.gather)
                x = block(x)
            if merge is not None:
                gather, norm, reduction = merge
                batch, tokens, channels = x.shape
                x = x.index_select(1, gather).view(batch, tokens // 4, 4 * channels)
                x = reduction(norm(x))
        pooled = self.norm(x).float().mean(dim=1)
        return TowerOutput(pooler_output=pooled)


def build_fast_tower(audio_model: nn.Module, precision: str = "float32",
                     model_key: str | None = None) -> FastAudioTower | None:
    """The fast tower, checked against the stock one on a test input; None if it disagrees.

    `audio_model` must still have its float32 linear layers (or cpu_linear's oneDNN ones).
    With `model_key` (the weights' identity) a passed check is remembered, so later starts with
    the same weights, torch, CPU and tower code skip it: it runs the stock tower and the fast
    one on a window, about 0.8 s of every model load on a 2-core CPU."""
    try:
        fast = FastAudioTower(audio_model, precision)
    except (ValueError, AttributeError, RuntimeError) as exc:
        log.info("fast audio tower unavailable (%s); using the stock one", exc)
        return None
    facts = key = None
    if model_key is not None:
        from clapdesk.core.store.known_facts import KnownFacts

        facts, key = KnownFacts("fast-tower-checks"), _check_key(model_key, precision)
        if facts.get(key) == "passed":
            return fast
    if _difference_from_stock(audio_model, fast) is None:
        return None
    if facts is not None and key is not None:
        facts.put(key, "passed")
    return fast


def _difference_from_stock(audio_model: nn.Module, fast: FastAudioTower) -> float | None:
    """Largest difference of the fast tower's pooled output from the stock tower's on a test
    window, or None (logged) where it fails or is over the precision's tolerance."""
    config = audio_model.config
    frames = config.spec_size * (config.spec_size // config.num_mel_bins) - 24
    generator = torch.Generator().manual_seed(0)
    views = 4 if config.enable_fusion else 1
    mel = torch.randn(1, views, frames, config.num_mel_bins, generator=generator) * 10 - 40
    longer = torch.zeros((1, 1), dtype=torch.bool)
    try:
        with torch.inference_mode():
            expected = audio_model(input_features=mel, is_longer=longer).pooler_output.float()
            got = fast(mel, longer).pooler_output
    except RuntimeError as exc:
        log.info("fast audio tower failed its check (%s); using the stock one", exc)
        return None
    difference = (got - expected).abs().max().item()
    if not difference <= CHECK_TOLERANCE[fast.precision] * max(1.0, expected.abs().max().item()):
        log.info("fast audio tower differs from the stock one by %g; using the stock one", difference)
        return None
    return difference


def _check_key(model_key: str, precision: str) -> str:
    """Everything a passed check depends on: the weights, the precision, torch, the CPU, and
    the code of the fast tower and its linear layers (the version, where the code is bundled)."""
    import hashlib
    from pathlib import Path

    from clapdesk import __version__
    from clapdesk.core.embed import cpu_linear
    from clapdesk.core.embed.cpu_features import cpu_identity

    code = hashlib.blake2b(digest_size=8)
    try:
        for source in (__file__, cpu_linear.__file__):
            code.update(Path(source).read_bytes())
        code_id = code.hexdigest()
    except (OSError, TypeError):
        code_id = __version__
    return f"{model_key} {precision} torch {torch.__version__} cpu {cpu_identity()} code {code_id}"
