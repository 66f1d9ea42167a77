"""A family with a property that can be turned: one pluck, low-passed at rising cut-offs.

`brightness_pluck(level, seed)` is the same kind of pluck (a decaying sawtooth) filtered at
CUTOFFS_HZ[level]. `build_brightness_clap` fits the tiny CLAP (text tower and both heads; the
audio encoder stays random, as in modelfactory) so that captions from "dark" to "bright" land
on the matching levels, with graded targets: a caption is closest to its own level and less
close the further a level is from it. The neutral captions ("a sound", "pluck") are fitted to
every level alike, as a real CLAP's generic caption sits in the middle of its sounds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from modelfactory import _random_model, _save, _unrelated_captions

CUTOFFS_HZ = (200.0, 500.0, 1250.0, 3100.0, 8000.0)
LEVEL_CAPTIONS: dict[int, tuple[str, ...]] = {
    0: ("dark", "very dark", "dark pluck", "a dark sound", "deep"),
    1: ("warm", "warm pluck", "soft"),
    2: ("clean", "clean pluck"),
    3: ("airy", "airy pluck", "high"),
    4: ("bright", "very bright", "bright pluck", "a bright sound", "tight"),
}
NEUTRAL_CAPTIONS = ("a sound", "sound", "pluck", "a pluck")


def brightness_pluck(level: int, seed: int, rate: int = 44100, seconds: float = 1.0) -> np.ndarray:
    from scipy import signal

    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    freq = 110.0 * (1 + 0.01 * rng.standard_normal())  # the same note: only the cut-off moves
    saw = 2 * ((t * freq) % 1.0) - 1
    wave = saw * np.exp(-t * 5) + 0.002 * rng.standard_normal(t.size)
    sos = signal.butter(4, CUTOFFS_HZ[level], btype="low", fs=rate, output="sos")
    wave = signal.sosfilt(sos, wave)
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def _features(model, extractor):  # noqa: ANN001, ANN202 - torch objects
    import torch

    from clapdesk.core.embed.log_mel import BatchedLogMel
    from clapdesk.core.ingest.audio import resample

    mel = BatchedLogMel(extractor)
    clips, levels = [], []
    for level in range(len(CUTOFFS_HZ)):
        # 24 plucks per level: with 6, the fit that passed on an AVX-512 CPU missed the tests'
        # own plucks on an AVX2-only one (the random audio tower tells the levels apart by little).
        for seed in range(24):
            for rate in (44100, 48000):
                wave = brightness_pluck(level, 900 + seed, rate)
                clips.append(resample(wave, rate, 48000) if rate != 48000 else wave)
                levels.append(level)
    with torch.no_grad():
        inputs = mel(clips)
        out = model.audio_model(input_features=inputs["input_features"],
                                is_longer=torch.zeros_like(inputs["is_longer"]))
    return out.pooler_output, torch.tensor(levels, dtype=torch.float32)


def build_brightness_clap(folder: Path, seed: int = 0, steps: int = 250) -> Path:
    import torch

    model, tokenizer, extractor = _random_model(full=False, seed=seed)
    features, sound_level = _features(model, extractor)
    captions = [c for level in LEVEL_CAPTIONS for c in LEVEL_CAPTIONS[level]]
    caption_level = torch.tensor([float(level) for level in LEVEL_CAPTIONS
                                  for _ in LEVEL_CAPTIONS[level]])
    # Graded targets: each caption's distribution over the sounds falls off with the level gap.
    graded = torch.exp(-(caption_level[:, None] - sound_level[None, :]) ** 2 / 0.5)
    uniform = torch.ones(len(NEUTRAL_CAPTIONS), len(sound_level))
    targets = torch.cat([graded, uniform])
    targets = targets / targets.sum(1, keepdim=True)
    sound_targets = torch.exp(-(sound_level[:, None] - sound_level[None, :]) ** 2 / 0.5)
    sound_targets = sound_targets / sound_targets.sum(1, keepdim=True)
    ours = len(captions) + len(NEUTRAL_CAPTIONS)
    # Unrelated phrases kept apart, as a trained text tower keeps them (the health check).
    others = _unrelated_captions(np.random.default_rng(seed), 64)
    tokens = tokenizer(captions + list(NEUTRAL_CAPTIONS) + others, padding=True,
                       return_tensors="pt")
    off = ~torch.eye(len(others), dtype=torch.bool)
    torch.manual_seed(seed)
    params = [*model.text_model.parameters(), *model.text_projection.parameters(),
              *model.audio_projection.parameters()]
    optimiser = torch.optim.Adam(params, lr=4e-3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    model.train()
    try:
        for _ in range(steps):
            every = torch.nn.functional.normalize(
                model.text_projection(model.text_model(**tokens).pooler_output), dim=-1)
            text, theirs = every[:ours], every[ours:]
            sound = torch.nn.functional.normalize(model.audio_projection(features), dim=-1)
            text_loss = -(targets * torch.log_softmax(text @ sound.T / 0.1, 1)).sum(1).mean()
            sound_loss = -(sound_targets * torch.log_softmax(sound @ sound.T / 0.1, 1)
                           ).sum(1).mean()
            spread = (theirs @ theirs.T)[off].square().mean()
            loss = text_loss + sound_loss + 4.0 * spread
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    finally:
        torch.set_num_threads(threads)
        model.eval()
    return _save(folder, model, tokenizer, extractor)
