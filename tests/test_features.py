"""BatchedLogMel against transformers' own ClapFeatureExtractor, number by number."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers import (
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
)

from clapdesk.core.embed.log_mel import BatchedLogMel

SR = 48_000
# Measured on these clips: float64 reproduces the reference bit for bit (0.0 dB); float32 differs
# by at most ~8e-4 dB, only in bins below -40 dB, and by < 1e-4 dB above it.
FLOAT64_TOL_DB = 1e-4
FLOAT32_TOL_DB = 2e-3
FLOAT32_LOUD_TOL_DB = 2e-4


def harmonics_and_noise(seconds: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * SR))) / SR
    tone = sum(0.3 / k * np.sin(2 * np.pi * 220.0 * k * t) for k in range(1, 9))
    return (tone + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def click(seconds: float) -> np.ndarray:
    wave = np.zeros(int(round(seconds * SR)), dtype=np.float32)
    wave[len(wave) // 3] = 0.9
    return wave


CLIPS = {
    "tone_0.05s": harmonics_and_noise(0.05, 1),
    "tone_1s": harmonics_and_noise(1.0, 2),
    "tone_3.3s": harmonics_and_noise(3.3, 3),
    "tone_10s": harmonics_and_noise(10.0, 4),
    "silence_1s": np.zeros(SR, dtype=np.float32),
    "click_3.3s": click(3.3),
}


def reference(extractor: ClapFeatureExtractor, waves: list[np.ndarray], seed: int = 7) -> dict:
    np.random.seed(seed)  # fusion flags one short clip as longer, drawn from numpy's global RNG
    return extractor(waves, sampling_rate=SR, return_tensors="pt")


def batched(extractor: ClapFeatureExtractor, waves: list[np.ndarray], seed: int = 7, **kw) -> dict:
    np.random.seed(seed)
    return BatchedLogMel(extractor, **kw)(waves)


@pytest.fixture(scope="module", params=["rand_trunc", "fusion"])
def extractor(request: pytest.FixtureRequest) -> ClapFeatureExtractor:
    return ClapFeatureExtractor(truncation=request.param)


@pytest.mark.parametrize("name", list(CLIPS))
def test_single_clip_matches_reference(extractor: ClapFeatureExtractor, name: str) -> None:
    waves = [CLIPS[name]]
    ref = reference(extractor, waves)
    for dtype, tol in ((torch.float64, FLOAT64_TOL_DB), (torch.float32, FLOAT32_TOL_DB)):
        out = batched(extractor, waves, compute_dtype=dtype)
        assert out["input_features"].shape == ref["input_features"].shape
        assert out["input_features"].dtype == torch.float32
        assert not out["is_longer"].any()  # see test_no_window_is_ever_marked_longer
        diff = (out["input_features"] - ref["input_features"]).abs().max().item()
        assert diff < tol, f"{name} {dtype}: {diff} dB"


def test_mixed_batch_matches_reference(extractor: ClapFeatureExtractor) -> None:
    waves = list(CLIPS.values())
    ref = reference(extractor, waves)["input_features"]
    channels = 4 if extractor.truncation == "fusion" else 1
    assert ref.shape == (len(waves), channels, 1001, 64)
    out = batched(extractor, waves)["input_features"]  # default: float32
    assert out.shape == ref.shape
    diff = (out - ref).abs()
    assert diff.max().item() < FLOAT32_TOL_DB
    assert diff[ref > -40].max().item() < FLOAT32_LOUD_TOL_DB
    # Silence stays exactly on the -100 dB floor, as in the reference.
    silence = list(CLIPS).index("silence_1s")
    assert torch.all(out[silence] == -100.0)
    # The STFT runs two clips at a time on a CPU; one STFT over the whole batch agrees.
    whole = batched(extractor, waves, clips_per_stft=len(waves))["input_features"]
    assert (whole - out).abs().max().item() < FLOAT32_LOUD_TOL_DB


def test_no_window_is_ever_marked_longer() -> None:
    # The reference marks one random clip of a fusion batch as longer when none is, which made
    # a fused model's vectors change from run to run; clapdesk's windows are never longer.
    extractor = ClapFeatureExtractor(truncation="fusion")
    waves = list(CLIPS.values())
    for seed in range(3):
        flags = batched(extractor, waves, seed=seed)["is_longer"]
        assert flags.shape == (len(waves), 1) and flags.dtype == torch.bool
        assert not flags.any()
        assert reference(extractor, waves, seed=seed)["is_longer"].sum().item() == 1


@pytest.mark.parametrize("padding", ["repeatpad", "repeat", "pad"])
def test_padding_modes_match_reference(padding: str) -> None:
    extractor = ClapFeatureExtractor(truncation="rand_trunc", padding=padding)
    waves = [CLIPS["tone_3.3s"], CLIPS["click_3.3s"]]
    out = BatchedLogMel(extractor, compute_dtype=torch.float64)(waves)["input_features"]
    ref = reference(extractor, waves)["input_features"]
    assert (out - ref).abs().max().item() < FLOAT64_TOL_DB


def test_padding_puts_the_samples_where_the_reference_does() -> None:
    wave = np.arange(1, 4, dtype=np.float32)  # 3 samples into a 10-sample window
    extractor = ClapFeatureExtractor(truncation="rand_trunc")
    extractor.nb_max_samples = 10
    expected = {
        "repeatpad": [1, 2, 3, 1, 2, 3, 1, 2, 3, 0],
        "repeat": [1, 2, 3, 1, 2, 3, 1, 2, 3, 1],
        "pad": [1, 2, 3, 0, 0, 0, 0, 0, 0, 0],
    }
    for padding, samples in expected.items():
        extractor.padding = padding
        padded = BatchedLogMel(extractor).pad([wave])
        assert padded.tolist() == [[float(s) for s in samples]]


def test_settings_come_from_the_extractor_instance() -> None:
    extractor = ClapFeatureExtractor(
        truncation="rand_trunc", feature_size=40, hop_length=320, fft_window_size=2048,
        frequency_max=12_000, max_length_s=4,
    )
    waves = [CLIPS["tone_1s"], CLIPS["tone_3.3s"][: 4 * SR]]
    out = BatchedLogMel(extractor, compute_dtype=torch.float64)(waves)["input_features"]
    ref = reference(extractor, waves)["input_features"]
    assert out.shape == ref.shape == (2, 1, 4 * SR // 320 + 1, 40)
    assert (out - ref).abs().max().item() < FLOAT64_TOL_DB


def test_rejects_what_it_cannot_reproduce() -> None:
    features = BatchedLogMel(ClapFeatureExtractor(truncation="rand_trunc"))
    with pytest.raises(ValueError, match="more than 480000"):
        features([np.zeros(10 * SR + 1, dtype=np.float32)])
    with pytest.raises(ValueError, match="mono"):
        features([np.zeros((2, SR), dtype=np.float32)])
    with pytest.raises(ValueError, match="empty"):
        features([np.zeros(0, dtype=np.float32)])
    with pytest.raises(ValueError, match="Hz"):
        features([CLIPS["tone_1s"]], sampling_rate=44_100)
    with pytest.raises(ValueError, match="padding"):
        BatchedLogMel(ClapFeatureExtractor(padding="edge"))


def tiny_clap(fusion: bool) -> ClapModel:
    torch.manual_seed(0)
    audio = ClapAudioConfig(
        depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16, hidden_size=32,
        projection_dim=16, enable_fusion=fusion, fusion_type="aff_2d" if fusion else None,
    )
    text = ClapTextConfig(
        vocab_size=99, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=37, projection_dim=16,
    )
    config = ClapConfig(text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=16)
    return ClapModel(config).eval()


@pytest.mark.parametrize("truncation", ["rand_trunc", "fusion"])
def test_embeddings_from_batched_features_match_reference(truncation: str) -> None:
    extractor = ClapFeatureExtractor(truncation=truncation)
    model = tiny_clap(fusion=truncation == "fusion")
    waves = [CLIPS["tone_1s"], CLIPS["tone_3.3s"], CLIPS["click_3.3s"], CLIPS["tone_10s"]]
    ref_inputs = reference(extractor, waves)
    # Without the reference's random "longer" clip (see test_no_window_is_ever_marked_longer):
    # with it, that one clip's embedding has cosine 0.15 to its own short-clip embedding.
    ref_inputs["is_longer"] = torch.zeros_like(ref_inputs["is_longer"])
    with torch.inference_mode():
        ref = model.get_audio_features(**ref_inputs).pooler_output
        out = model.get_audio_features(**batched(extractor, waves)).pooler_output
    assert ref.shape == out.shape == (len(waves), 16)
    cosine = torch.nn.functional.cosine_similarity(ref, out, dim=-1)
    assert cosine.min().item() >= 0.9999
