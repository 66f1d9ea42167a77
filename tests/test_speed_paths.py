"""The fast paths of indexing really are the ones taken: each file's sound is embedded once,
in batches, through the batched log-mel rather than the reference extractor."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound

from clapdesk.core.embed.embedder import ClapEmbedder
from clapdesk.core.index import indexer
from clapdesk.core.library import Library


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of windows in every call to the model (the real method still runs)."""
    calls: list[int] = []
    real = ClapEmbedder.features_for

    def spy(self: ClapEmbedder, windows):
        calls.append(len(windows))
        return real(self, windows)

    monkeypatch.setattr(ClapEmbedder, "features_for", spy)
    return calls


def sample_folder(root: Path) -> Path:
    write_sound(root / "drums" / "kick.wav", family_sound("kick", 1))
    write_sound(root / "drums" / "hat.wav", family_sound("hihat", 2, rate=48000), rate=48000)
    write_sound(root / "synths" / "pad.wav", family_sound("pad", 3, rate=22050, seconds=12.0),
                rate=22050)
    write_sound(root / "synths" / "bass.wav", family_sound("bass", 4), subtype="PCM_24")
    return root


def test_identical_files_are_embedded_once(tiny_model: Path, tmp_path: Path,
                                           model_calls: list[int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches, so copies land both in the batch of their original and in later ones.
    monkeypatch.setattr(indexer, "BATCH_WINDOWS", 2)
    folder = sample_folder(tmp_path / "samples")
    shutil.copy(folder / "drums" / "kick.wav", folder / "drums" / "kick copy.wav")
    (folder / "zz later").mkdir()
    shutil.copy(folder / "synths" / "pad.wav", folder / "zz later" / "pad again.wav")
    shutil.copy(folder / "drums" / "hat.wav", folder / "zz later" / "hat again.wav")
    library = Library(model=str(tiny_model))
    report = library.index_folders([str(folder)])
    assert report.indexed == 7 and report.duplicates == 3 and not report.failed
    # kick, hat and bass are one window each, the 12 s pad two: five windows, each embedded once,
    # in calls of exactly BATCH_WINDOWS (the pad's two windows straddle two calls) but the last.
    assert sum(model_calls) == 5
    assert model_calls == [2, 2, 1]
    copies = [("drums/kick.wav", "drums/kick copy.wav"), ("synths/pad.wav", "zz later/pad again.wav"),
              ("drums/hat.wav", "zz later/hat again.wav")]
    for original, copy in copies:
        a = library.catalog.file_by_path(str(folder / original))
        b = library.catalog.file_by_path(str(folder / copy))
        assert a is not None and b is not None and a.id != b.id
        _, vectors = library.catalog.vectors(library.model_key, [a.id, b.id])
        assert len(vectors) == 2 and np.array_equal(vectors[0], vectors[1])

    # A copy that turns up in a later run is not embedded either.
    model_calls.clear()
    shutil.copy(folder / "synths" / "bass.wav", folder / "synths" / "bass copy.wav")
    again = library.index_folders([str(folder)])
    assert again.indexed == 1 and again.duplicates == 1 and model_calls == []
    library.close()


def test_indexing_uses_the_batched_log_mel(tiny_model: Path, tmp_path: Path,
                                           model_calls: list[int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.embed.log_mel import BatchedLogMel

    mel_batches: list[int] = []
    real_mel = BatchedLogMel.__call__

    def mel_spy(self: BatchedLogMel, waves, sampling_rate=None):
        mel_batches.append(len(waves))
        return real_mel(self, waves, sampling_rate)

    monkeypatch.setattr(BatchedLogMel, "__call__", mel_spy)
    folder = sample_folder(tmp_path / "samples")
    library = Library(model=str(tiny_model))
    embedder = library.embedder()

    def reference_called(*args, **kwargs):
        raise AssertionError("the reference feature extractor ran in the indexing path")

    monkeypatch.setattr(embedder, "feature_extractor", reference_called)
    report = library.index_folders([str(folder)])
    assert report.indexed == 4 and not report.failed
    assert sum(mel_batches) == sum(model_calls) == 5
    # Windows go to the model together, not one file at a time.
    assert max(model_calls) > 1
    assert all(n <= max(indexer.BATCH_WINDOWS, 2) for n in model_calls)
    library.close()


def test_int8_mode_quantises_the_audio_tower_and_stays_close(tiny_model: Path) -> None:
    from torch import nn

    from clapdesk.core.embed.cpu_linear import Int8Linear
    from clapdesk.core.embed.embedder import load_embedder

    exact = load_embedder(str(tiny_model), device="cpu")
    fast = load_embedder(str(tiny_model), device="cpu", precision="int8")
    quantised = [m for m in fast.model.audio_model.modules() if isinstance(m, Int8Linear)]
    assert quantised, "int8 mode left every Linear layer in float32"
    assert not any(type(m) is nn.Linear for m in fast.model.audio_model.modules())
    assert not any(isinstance(m, Int8Linear)
                   for m in fast.model.text_model.modules()), "text vectors must stay float32"
    windows = [family_sound(kind, i, rate=exact.sampling_rate)
               for i, kind in enumerate(("kick", "hihat", "pad", "bass"))]
    a = exact.project_audio(exact.features_for(windows))
    b = fast.project_audio(fast.features_for(windows))
    assert np.all(np.sum(a * b, axis=1) > 0.98)
    assert np.array_equal(exact.embed_text(["dark kick"]), fast.embed_text(["dark kick"]))


def test_a_query_is_encoded_on_one_thread_and_the_setting_restored(tiny_model: Path) -> None:
    import torch

    from clapdesk.core.embed.embedder import load_embedder

    embedder = load_embedder(str(tiny_model), device="cpu")
    seen: list[int] = []
    real_forward = embedder.model.text_model.forward

    def watching(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_forward(*args, **kwargs)

    embedder.model.text_model.forward = watching
    before = torch.get_num_threads()
    query = embedder.embed_text(["punchy kick"])
    many = embedder.embed_text([f"the sound of {w}" for w in ("kick", "snare", "pad", "bass", "fx")])
    assert seen == [1, before]  # a query on one thread; a batch of prompts on all of them
    assert torch.get_num_threads() == before
    assert query.shape == (1, embedder.dim) and many.shape == (5, embedder.dim)


def _stock_tower_features(model_folder: Path, inputs) -> np.ndarray:
    """The audio tower exactly as transformers ships it (torch's own linear layers)."""
    import torch
    from transformers import ClapModel

    stock = ClapModel.from_pretrained(model_folder, use_safetensors=True).eval()
    with torch.inference_mode():
        out = stock.audio_model(input_features=inputs["input_features"],
                                is_longer=inputs["is_longer"])
    return out.pooler_output.numpy()


def test_float32_on_cpu_runs_the_audio_tower_on_onednn_with_the_same_answer(
        tiny_model: Path) -> None:
    from torch import nn

    from clapdesk.core.embed.cpu_linear import OneDnnLinear, onednn_available
    from clapdesk.core.embed.embedder import load_embedder

    assert onednn_available(), "every torch CPU build ships oneDNN; the fast path must be on"
    embedder = load_embedder(str(tiny_model), device="cpu")
    tower = embedder.model.audio_model
    fast = [m for m in tower.modules() if isinstance(m, OneDnnLinear)]
    everywhere = [m for m in embedder.model.modules() if isinstance(m, OneDnnLinear)]
    assert embedder.onednn_linears == len(everywhere) > len(fast) > 0
    assert not any(type(m) is nn.Linear for m in tower.modules()), "a linear layer was missed"
    # Each MLP's GELU is fused into its first product, and its own activation step is gone.
    mlps = [m for m in tower.modules() if hasattr(m, "intermediate_act_fn")]
    assert mlps and all(isinstance(m.intermediate_act_fn, nn.Identity) for m in mlps)
    assert all(m.dense.gelu for m in mlps)
    assert sum(m.gelu for m in fast) == len(mlps)
    # The text tower too; the projection heads stay torch's (fine-tuning trains and swaps them).
    assert not any(type(m) is nn.Linear for m in embedder.model.text_model.modules())
    assert isinstance(embedder.audio_head.linear1, nn.Linear)

    windows = [family_sound(kind, i, rate=embedder.sampling_rate)
               for i, kind in enumerate(("kick", "hihat", "pad", "bass"))]
    inputs = embedder._fast_mel(windows)
    ours = embedder.encode_mel(inputs).numpy()
    stock = _stock_tower_features(tiny_model, inputs)
    assert np.abs(ours - stock).max() < 1e-4


def test_a_disagreeing_onednn_leaves_torchs_linear_layers(tiny_model: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import torch
    from torch import nn

    from clapdesk.core.embed import cpu_linear
    from clapdesk.core.embed.embedder import load_embedder

    monkeypatch.setattr(cpu_linear.OneDnnLinear, "forward",
                        lambda self, x: torch.zeros(*x.shape[:-1], self.out_features))
    embedder = load_embedder(str(tiny_model), device="cpu")
    assert embedder.onednn_linears == 0
    tower = embedder.model.audio_model
    assert not any(isinstance(m, cpu_linear.OneDnnLinear) for m in tower.modules())
    mlps = [m for m in tower.modules() if hasattr(m, "intermediate_act_fn")]
    assert mlps and not any(isinstance(m.intermediate_act_fn, nn.Identity) for m in mlps)
    monkeypatch.undo()
    monkeypatch.setattr(cpu_linear, "onednn_available", lambda: False)
    assert cpu_linear.use_onednn_linears(tower) == 0


def test_onednn_linear_keeps_gradients_for_training() -> None:
    import torch

    from clapdesk.core.embed.cpu_linear import OneDnnLinear

    torch.manual_seed(0)
    linear = torch.nn.Linear(8, 4)
    fused = OneDnnLinear(linear, gelu=True)
    x = torch.randn(3, 8)
    with torch.inference_mode():
        assert torch.allclose(fused(x), torch.nn.functional.gelu(linear(x)), atol=1e-5)
    fused(x).sum().backward()  # outside inference the layer takes torch's differentiable path
    assert linear.weight.grad is not None and linear.weight.grad.abs().sum() > 0


def test_prompt_vectors_are_computed_once_per_head(tiny_model: Path) -> None:
    import torch

    from clapdesk.core.embed.embedder import load_embedder

    embedder = load_embedder(str(tiny_model), device="cpu")
    calls: list[int] = []
    real = embedder.embed_text
    embedder.embed_text = lambda texts: calls.append(len(texts)) or real(texts)
    prompts = ["the sound of kick", "the sound of pad"]
    first = embedder.embed_prompts(prompts)
    again = embedder.embed_prompts(prompts)
    assert calls == [2] and again is first
    assert np.allclose(first, real(prompts))
    # A fine-tuned head changes what the prompts mean: they are encoded again through it.
    head = torch.nn.Linear(embedder.text_head.linear1.in_features, embedder.dim)
    embedder.use_heads(embedder.audio_head, head, "tiny+ft-test")
    retrained = embedder.embed_prompts(prompts)
    # Between the two: the new head's health check, which embeds its probe captions once.
    from clapdesk.core.embed.health import PROBE_CAPTIONS

    assert calls == [2, len(PROBE_CAPTIONS), 2] and not np.allclose(retrained, first)


def test_prompt_vectors_are_kept_for_the_next_process_and_only_for_the_same_head(
        tiny_model: Path) -> None:
    """A new process (a fresh load) reads the prompts' vectors from the cache folder; a head
    with other numbers, even under a reused version name, computes its own; a damaged file is
    computed again."""
    import torch

    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.store.paths import cache_dir

    prompts = ["the sound of kick", "the sound of pad", "the sound of riser"]
    first = load_embedder(str(tiny_model), device="cpu").embed_prompts(prompts)
    later = load_embedder(str(tiny_model), device="cpu")
    calls: list[int] = []
    real = later.embed_text
    later.embed_text = lambda texts: calls.append(len(texts)) or real(texts)
    kept = later.embed_prompts(prompts)
    assert calls == [] and np.array_equal(kept, first) and not kept.flags.writeable
    # Another head under the same key: its own vectors, not the cached ones.
    torch.manual_seed(3)
    head = torch.nn.Linear(later.text_head.linear1.in_features, later.dim)
    later.use_heads(later.audio_head, head, later.model_key)
    calls.clear()
    other = later.embed_prompts(prompts)
    assert calls == [len(prompts)] and not np.allclose(other, first)
    # A damaged file reads as missing.
    files = sorted((cache_dir() / "prompt-vectors").glob("*.npy"))
    assert len(files) == 2
    for path in files:
        path.write_bytes(b"not an array")
    again = load_embedder(str(tiny_model), device="cpu")
    assert np.array_equal(again.embed_prompts(prompts), first)


def test_torch_threads_spin_briefly_unless_the_user_says_otherwise() -> None:
    probe = ("import os, sys, clapdesk.core.embed.embedder; "
             "print(os.environ.get('GOMP_SPINCOUNT'), 'torch' in sys.modules)")

    def run(env: dict[str, str]) -> list[str]:
        clean = {k: v for k, v in os.environ.items() if k != "GOMP_SPINCOUNT"}
        return subprocess.run([sys.executable, "-c", probe], env={**clean, **env},
                              capture_output=True, text=True, check=True).stdout.split()

    # Set before torch loads (it reads the value once): importing the core does not load torch.
    assert run({}) == ["10000", "False"]
    assert run({"GOMP_SPINCOUNT": "300000"}) == ["300000", "False"]


def test_int8_layer_runs_on_onednn_int8_kernels_close_to_float32() -> None:
    import torch

    from clapdesk.core.embed.cpu_linear import INPUT_STEPS_8BIT, Int8Linear

    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 128)
    x = torch.randn(2, 32, 256)
    x[..., 3] *= 8.0  # one loud channel, as activations have: it sets the input's scale
    with torch.inference_mode():
        exact = linear(x)
        layer = Int8Linear(linear.weight, linear.bias)
        assert not any(p.dtype == torch.float32 and p.dim() == 2 for p in vars(layer).values()
                       if isinstance(p, torch.Tensor)), "the float weight matrix was kept"
        out = layer(x)
        assert out.shape == exact.shape
        error = ((out - exact).norm() / exact.norm()).item()
        # Really rounded, and by little (one loud channel sets the scale). Where the CPU keeps
        # inputs to 7 bits (no VNNI or AMX), each step is twice as coarse.
        bound = 0.05 * INPUT_STEPS_8BIT / layer._steps
        assert 0 < error < bound
        # GELU and a residual sum fused into the same call give what torch gives after it.
        fused = layer(x, gelu=True)
        assert torch.allclose(fused, torch.nn.functional.gelu(out), atol=1e-5)
        residual = torch.randn_like(exact)
        assert torch.allclose(layer(x, add=residual), out + residual, atol=1e-5)
        # A GELU's outputs are mostly positive: the input range follows them (zero point).
        positive = torch.nn.functional.gelu(x)
        error = ((layer(positive) - linear(positive)).norm() / linear(positive).norm()).item()
        assert error < bound


def test_int8_layer_is_right_when_neighbouring_products_are_all_large() -> None:
    """Loud inputs against loud weights: on a CPU without VNNI or AMX, AVX2 sums each pair of
    8-bit products in 16 bits, which clips at full 8-bit range; the layer must not."""
    import torch

    from clapdesk.core.embed.cpu_features import has_int8_dot
    from clapdesk.core.embed.cpu_linear import INPUT_STEPS_7BIT, INPUT_STEPS_8BIT, Int8Linear

    torch.manual_seed(1)
    linear = torch.nn.Linear(512, 64)
    with torch.no_grad():
        linear.weight.uniform_(0.9, 1.0)  # every weight near its row's largest: close to 127
    x = torch.rand(16, 512) * 0.1 + 0.9  # every input near the range's top: close to 255
    with torch.inference_mode():
        layer = Int8Linear(linear.weight, linear.bias)
        expected_steps = INPUT_STEPS_8BIT if has_int8_dot() else INPUT_STEPS_7BIT
        assert layer._steps == expected_steps
        error = ((layer(x) - linear(x)).norm() / linear(x).norm()).item()
    assert error < 0.01, f"int8 layer off by {error:.1%}: its products were clipped"


def test_only_vnni_or_amx_count_as_int8_dot_products() -> None:
    from clapdesk.core.embed.cpu_features import has_int8_dot

    assert not has_int8_dot(frozenset({"avx2", "fma", "avx512f"}))
    assert has_int8_dot(frozenset({"avx2", "avx_vnni"}))
    assert has_int8_dot(frozenset({"amx_int8"}))
