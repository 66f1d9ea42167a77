"""The fast CPU audio tower gives the stock transformers tower's vectors, in every precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from modelfactory import family_sound

REAL_CONFIGS = Path("/work/shared/clap-configs")


def _audio_tower(**overrides: object):  # noqa: ANN202
    import torch
    from transformers import ClapAudioConfig, ClapAudioModel

    torch.manual_seed(0)
    config = ClapAudioConfig(**{"depths": [2, 2, 2, 2], "num_attention_heads": [1, 2, 4, 8],
                                "patch_embeds_hidden_size": 16, "hidden_size": 128,
                                "enable_fusion": False, **overrides})
    tower = ClapAudioModel(config).eval()
    # transformers initialises the relative-position tables to zeros: give them values, or
    # a wrong bias (or none) would pass unnoticed.
    with torch.no_grad():
        for module in tower.modules():
            if hasattr(module, "relative_position_bias_table"):
                module.relative_position_bias_table.normal_(0, 2.0)
    return tower


def _mel(batch: int, views: int = 1, seed: int = 1):  # noqa: ANN202
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, views, 1001, 64, generator=generator) * 12 - 45


def _compare(tower, precision: str, mel) -> tuple[float, float]:  # noqa: ANN001
    import torch

    from clapdesk.core.embed.fast_tower import build_fast_tower

    fast = build_fast_tower(tower, precision)
    assert fast is not None, f"the fast tower refused to build in {precision}"
    longer = torch.zeros((mel.shape[0], 1), dtype=torch.bool)
    with torch.inference_mode():
        stock = tower(input_features=mel, is_longer=longer).pooler_output
        ours = fast(mel, longer).pooler_output
    assert ours.dtype == torch.float32 and ours.shape == stock.shape
    difference = (ours - stock).abs().max().item()
    cosine = torch.nn.functional.cosine_similarity(ours, stock).min().item()
    return difference, cosine


def test_window_order_is_the_stock_roll_then_partition() -> None:
    import torch
    from transformers.models.clap.modeling_clap import window_partition

    from clapdesk.core.embed.fast_tower import inverse, window_order

    image = torch.arange(16 * 8, dtype=torch.float32).view(1, 16, 8, 1)  # raster indices
    for shift in (0, 2):
        rolled = torch.roll(image, shifts=(-shift, -shift), dims=(1, 2))
        stock = window_partition(rolled, 4).reshape(-1).long()
        order = window_order(16, 8, 4, shift)
        assert torch.equal(order, stock)
        assert torch.equal(order[inverse(order)], torch.arange(128))


def test_float32_matches_the_stock_tower_with_shifted_windows_in_every_stage() -> None:
    from clapdesk.core.embed.fast_tower import FastAudioTower

    tower = _audio_tower()
    # Stages of 64, 32 and 16 tokens a side have a shifted block (a mask per window); the
    # last (8) is one window, shifted by nothing and never reordered.
    blocks = [block for stage, _ in FastAudioTower(tower).stages for block in stage]
    assert [block.mask.shape[0] for block in blocks] == [1, 64, 1, 16, 1, 4, 1, 1]
    assert blocks[-1].gather is None and blocks[-2].gather is None
    difference, cosine = _compare(tower, "float32", _mel(3))
    assert difference < 1e-5, difference
    assert cosine > 0.999999


@pytest.mark.parametrize(("precision", "least_cosine"), [("bfloat16", 0.999), ("int8", 0.995)])
def test_reduced_precisions_stay_close_and_really_round(precision: str, least_cosine: float) -> None:
    import torch

    from clapdesk.core.embed.fast_tower import build_fast_tower

    tower = _audio_tower()
    difference, cosine = _compare(tower, precision, _mel(2))
    assert cosine > least_cosine
    assert difference > 1e-5, f"{precision} gave float32's numbers: it did not run in {precision}"
    fast = build_fast_tower(tower, precision)
    if precision == "bfloat16":
        assert fast.stages[0][0][0].qkv.weight.dtype == torch.bfloat16


def test_a_fusion_model_reads_the_first_view_as_the_stock_tower_does() -> None:
    tower = _audio_tower(enable_fusion=True, fusion_type="aff_2d")
    difference, _ = _compare(tower, "float32", _mel(2, views=4))
    assert difference < 1e-5


def test_the_check_at_build_time_refuses_a_tower_that_disagrees(monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.embed import fast_tower

    tower = _audio_tower()
    monkeypatch.setattr(fast_tower._Block, "__call__", lambda self, x: x * 1.01)
    assert fast_tower.build_fast_tower(tower, "float32") is None


def _counting_stock_calls(tower):  # noqa: ANN001, ANN202
    """The tower, with a list that grows by one at every call of its stock forward."""
    calls: list[int] = []
    forward = tower.forward

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        calls.append(1)
        return forward(*args, **kwargs)

    tower.forward = counted
    return tower, calls


def test_a_passed_check_is_remembered_for_the_same_weights_and_nothing_else() -> None:
    import torch

    from clapdesk.core.embed.fast_tower import build_fast_tower

    tower, stock_calls = _counting_stock_calls(_audio_tower())
    first = build_fast_tower(tower, "float32", "tiny@0123")
    assert first is not None and len(stock_calls) == 1  # checked against the stock tower
    again = build_fast_tower(tower, "float32", "tiny@0123")
    assert again is not None and len(stock_calls) == 1  # remembered: no stock run
    mel, longer = _mel(2), torch.zeros((2, 1), dtype=torch.bool)
    assert torch.equal(again(mel, longer).pooler_output, first(mel, longer).pooler_output)
    # Other weights, another precision, or no key at all: checked again.
    assert build_fast_tower(tower, "float32", "tiny@4567") is not None
    assert build_fast_tower(tower, "int8", "tiny@0123") is not None
    assert build_fast_tower(tower, "float32") is not None
    assert len(stock_calls) == 4


def test_a_tower_that_fails_its_check_is_never_remembered(monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.embed import fast_tower

    tower, stock_calls = _counting_stock_calls(_audio_tower())
    with monkeypatch.context() as broken:
        broken.setattr(fast_tower._Block, "__call__", lambda self, x: x * 1.01)
        assert fast_tower.build_fast_tower(tower, "float32", "tiny@0123") is None
        assert fast_tower.build_fast_tower(tower, "float32", "tiny@0123") is None
    assert len(stock_calls) == 2
    # Mended (another clapdesk, say), the same weights are checked, and pass.
    assert fast_tower.build_fast_tower(tower, "float32", "tiny@0123") is not None
    assert len(stock_calls) == 3


def test_the_check_is_remembered_per_tower_code(monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.embed import fast_tower

    tower, stock_calls = _counting_stock_calls(_audio_tower())
    assert fast_tower.build_fast_tower(tower, "float32", "tiny@0123") is not None
    key = fast_tower._check_key("tiny@0123", "float32")
    monkeypatch.setattr(fast_tower, "__file__", __file__)  # the tower's code changed
    assert fast_tower._check_key("tiny@0123", "float32") != key
    assert fast_tower.build_fast_tower(tower, "float32", "tiny@0123") is not None
    assert len(stock_calls) == 2


def test_the_embedder_uses_the_fast_tower_on_cpu_with_the_same_vectors(tiny_model: Path) -> None:
    import torch
    from transformers import ClapModel

    from clapdesk.core.embed.embedder import load_embedder

    embedder = load_embedder(str(tiny_model), device="cpu")
    assert embedder.fast_tower is not None
    windows = [family_sound(kind, i, rate=embedder.sampling_rate)
               for i, kind in enumerate(("kick", "hihat", "pad", "bass"))]
    inputs = embedder._fast_mel(windows)
    calls: list[int] = []
    real = embedder.fast_tower.__call__
    embedder.fast_tower = lambda mel, longer: calls.append(len(mel)) or real(mel, longer)
    ours = embedder.encode_mel(inputs).numpy()
    assert calls == [4]
    stock = ClapModel.from_pretrained(tiny_model, use_safetensors=True).eval()
    with torch.inference_mode():
        expected = stock.audio_model(input_features=inputs["input_features"],
                                     is_longer=inputs["is_longer"]).pooler_output.numpy()
    assert np.abs(ours - expected).max() < 1e-5


@pytest.mark.skipif(not (REAL_CONFIGS / "larger_clap_general" / "config.json").is_file(),
                    reason="needs the real checkpoints' configs in /work/shared/clap-configs "
                           "(the HTSAT-base architecture, built with random weights)")
def test_the_real_larger_clap_audio_tower_matches_within_1e_5() -> None:
    import torch
    from transformers import ClapAudioConfig, ClapAudioModel

    config = json.loads((REAL_CONFIGS / "larger_clap_general" / "config.json").read_text())
    torch.manual_seed(0)
    tower = ClapAudioModel(ClapAudioConfig(**config["audio_config"])).eval()
    with torch.no_grad():
        for module in tower.modules():
            if hasattr(module, "relative_position_bias_table"):
                module.relative_position_bias_table.normal_(0, 2.0)
    difference, cosine = _compare(tower, "float32", _mel(1))
    assert difference < 1e-5, difference


def test_the_runtime_comparison_skips_cleanly_without_its_packages(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import sys

    import torch

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import bench_tower_runtimes as runtimes

    assert runtimes.installed("torch") and not runtimes.installed("no_such_runtime_here")
    monkeypatch.setattr(runtimes, "installed", lambda *names: False)
    tower = _audio_tower()
    mel = _mel(1)
    reference = torch.zeros(1, 128)
    result = runtimes.measure_runtimes(tower, mel, reference, 1, {"clapdesk_float32": 0.1})
    assert "not installed" in result["onnxruntime"]["skipped"]
    assert "not installed" in result["openvino"]["skipped"]
    assert result["faster_than_clapdesk_by_threshold"] == []
