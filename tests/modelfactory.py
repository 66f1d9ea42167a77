"""CLAP models built in code, saved with save_pretrained, for tests and benchmarks.

The hub cannot be reached from CI, so tests build a tiny CLAP (and benchmarks the full
larger_clap_general architecture) with a real byte-level BPE tokenizer trained on sample-library
words, so different prompts really get different token ids.

Random towers embed every caption nearly alike (mean pairwise cosine above 0.99), which is what
an untrained text tower looks like and what clapdesk's health check refuses. `build_trained_clap`
therefore fits the tiny model for a few seconds to the test suite's own sound families
(`family_sound`): its text tower and both projection heads learn that "kick" means the kick
sounds and so on, and that unrelated captions differ. Text-search tests can then assert ranking.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np

TOKENIZER_CORPUS = (
    "kick snare clap hihat hat cymbal tom percussion shaker rim 808 909 bass sub synth pad lead "
    "pluck arp chord piano keys organ guitar strings brass flute bell vocal choir fx riser impact "
    "noise ambience foley drum loop melody dark bright warm aggressive soft lo-fi distorted clean "
    "airy deep punchy one-shot hit tight long short the sound of a an at in with from bpm major "
    "minor sine square saw tone click burst buzz hum whistle low high tonal noisy family pack"
).split()


def _train_tokenizer(folder: Path) -> tuple[Path, Path]:
    from tokenizers import ByteLevelBPETokenizer

    sentences = [" ".join(TOKENIZER_CORPUS[i:i + 6]) for i in range(0, len(TOKENIZER_CORPUS), 3)]
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train_from_iterator(sentences * 4, vocab_size=600, min_frequency=1,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer.save_model(str(folder))
    return folder / "vocab.json", folder / "merges.txt"


# The real checkpoints' tokenizer truncates at 512 tokens and their text towers have 514
# positions (RoBERTa starts counting at padding_idx + 1): the tiny model keeps both, so a long
# query takes the same path as with the real model.
MODEL_MAX_LENGTH = 512
TEXT_POSITIONS = 514


def _random_model(full: bool, seed: int, fused: bool = False) -> tuple[Any, Any, Any]:
    """An untrained ClapModel, its tokenizer and its feature extractor (nothing saved)."""
    import tempfile

    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, RobertaTokenizer

    with tempfile.TemporaryDirectory() as scratch:
        vocab, merges = _train_tokenizer(Path(scratch))
        tokenizer = RobertaTokenizer(vocab=str(vocab), merges=str(merges),
                                     model_max_length=MODEL_MAX_LENGTH)
    if full:
        text = dict(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072, projection_dim=512,
                    projection_hidden_act="relu")
        audio = dict(depths=[2, 2, 12, 2], hidden_size=1024, patch_embeds_hidden_size=128,
                     projection_dim=512, projection_hidden_act="relu", enable_fusion=False)
        projection = 512
    else:
        text = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=37,
                    max_position_embeddings=TEXT_POSITIONS, projection_dim=16)
        audio = dict(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16,
                     hidden_size=32, projection_dim=16, enable_fusion=fused)
        projection = 16
    torch.manual_seed(seed)
    config = ClapConfig(text_config=text, audio_config=audio, projection_dim=projection)
    model = ClapModel(config).eval()
    # rand_trunc is larger_clap_general's setting; the fused checkpoint uses "fusion".
    extractor = ClapFeatureExtractor(truncation="fusion" if fused else "rand_trunc")
    return model, tokenizer, extractor


def _save(folder: Path, model: Any, tokenizer: Any, extractor: Any) -> Path:
    from transformers import ClapProcessor

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def build_clap(folder: Path, full: bool = False, seed: int = 0, fused: bool = False) -> Path:
    """Save a random CLAP (tiny, or the full larger_clap_general shape) and its processor.

    Its text tower is untrained: clapdesk's health check rejects it for text search."""
    return _save(folder, *_random_model(full, seed, fused))


# What each test sound family is called. The first caption of each is the family's name, which
# tests search for; the others teach the model that a description means the same sounds.
FAMILY_CAPTIONS: dict[str, tuple[str, ...]] = {
    "kick": ("kick", "kick drum", "a kick drum", "punchy kick", "a deep kick", "kicks",
             "808 kick", "kick one-shot", "drum hit"),
    "hihat": ("hihat", "hi-hat", "hat", "a closed hi-hat", "bright hihat", "hats", "cymbal",
              "bright noisy hit", "shaker"),
    "pad": ("pad", "warm pad", "a soft synth pad", "pads", "ambient pad", "warm chord",
            "chord", "airy pad", "tonal pad"),
    "bass": ("bass", "sub bass", "a deep bass", "dark bass", "bass synth", "low bass",
             "square bass", "basses", "sub"),
    "noise": ("noise", "noisy fx", "glitch", "buzz", "click", "fx", "digital noise",
              "noise burst", "whistle"),
}


def family_sound(family: str, seed: int, rate: int = 44100, seconds: float = 1.5) -> np.ndarray:
    """Distinct sound families for search and fine-tuning tests (any other name: "noise")."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    if family == "kick":
        f = 50 + 120 * np.exp(-t * 30)
        wave = np.sin(2 * np.pi * np.cumsum(f) / rate) * np.exp(-t * 8)
    elif family == "hihat":
        wave = rng.standard_normal(t.size) * np.exp(-t * 40)
        wave = np.diff(wave, prepend=0.0)
    elif family == "pad":
        base = 220 * (1 + 0.02 * rng.standard_normal())
        wave = sum(np.sin(2 * np.pi * base * r * t) for r in (1, 1.25, 1.5)) / 3
    elif family == "bass":
        base = 55 * (1 + 0.03 * rng.standard_normal())
        wave = np.sign(np.sin(2 * np.pi * base * t)) * 0.5
    else:
        wave = np.sin(2 * np.pi * 1000 * t) * (rng.random(t.size) > 0.5)
    wave = wave + 0.01 * rng.standard_normal(t.size)
    return (0.5 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def _unrelated_captions(rng: np.random.Generator, count: int) -> list[str]:
    """Random few-word phrases from the tokenizer's words: captions that must stay apart."""
    words = TOKENIZER_CORPUS
    return [" ".join(rng.choice(words, size=int(rng.integers(1, 5)))) for _ in range(count)]


def _family_features(model: Any, extractor: Any, families: list[str]) -> tuple[Any, Any]:
    """Pooled audio-tower features of generated sounds, as clapdesk computes them (48 kHz,
    one window), with each sound's family index."""
    import torch

    from clapdesk.core.embed.log_mel import BatchedLogMel
    from clapdesk.core.ingest.audio import resample

    mel = BatchedLogMel(extractor)
    clips, labels = [], []
    # Files arrive at many rates and are resampled to the model's 48 kHz: the same sound must
    # give the same vector whatever its file's rate, so the heads see each sound at several.
    for f, family in enumerate(families):
        for seed in range(4):
            for seconds, rate in ((0.5, 22050), (0.5, 48000), (2.0, 44100), (2.0, 96000)):
                wave = family_sound(family, 500 + seed, rate, seconds)
                clips.append(resample(wave, rate, 48000) if rate != 48000 else wave)
                labels.append(f)
    feats = []
    with torch.no_grad():
        for at in range(0, len(clips), 16):
            inputs = mel(clips[at: at + 16])
            out = model.audio_model(input_features=inputs["input_features"],
                                    is_longer=torch.zeros_like(inputs["is_longer"]))
            feats.append(out.pooler_output)
    return torch.cat(feats), torch.tensor(labels)


def fit_to_families(model: Any, tokenizer: Any, extractor: Any, seed: int = 0,
                    steps: int = 200) -> dict[str, float]:
    """Train the text tower and both projection heads (the audio encoder stays random) so that
    each family's captions land on that family's sounds and unrelated captions spread out.

    The loss is CLAP's own contrastive loss between captions and sounds, against the family
    labels, plus the mean squared cosine between unrelated captions (which a trained text
    tower keeps near zero). Returns the final losses, for the curious."""
    import torch

    families = list(FAMILY_CAPTIONS)
    features, sound_family = _family_features(model, extractor, families)
    captions = [c for f in families for c in FAMILY_CAPTIONS[f]]
    caption_family = torch.tensor([f for f, fam in enumerate(families)
                                   for _ in FAMILY_CAPTIONS[fam]])
    rng = np.random.default_rng(seed)
    others = _unrelated_captions(rng, 96)
    torch.manual_seed(seed)
    params = [*model.text_model.parameters(), *model.text_projection.parameters(),
              *model.audio_projection.parameters()]
    optimiser = torch.optim.Adam(params, lr=4e-3)
    tokens = tokenizer(captions + others, padding=True, return_tensors="pt")
    same = caption_family[:, None] == sound_family[None, :]
    model.train()
    # Small matrices: one thread is as fast as two on an idle machine, and much faster on a
    # busy one (shared CI cores).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        losses = _fit_steps(model, optimiser, tokens, features, same, len(captions), steps)
    finally:
        torch.set_num_threads(threads)
        model.eval()
    return losses


def _fit_steps(model: Any, optimiser: Any, tokens: Any, features: Any, same: Any,
               n_captions: int, steps: int) -> dict[str, float]:
    import torch

    for _ in range(steps):
        pooled = model.text_model(**tokens).pooler_output
        text = torch.nn.functional.normalize(model.text_projection(pooled), dim=-1)
        sound = torch.nn.functional.normalize(model.audio_projection(features), dim=-1)
        ours, theirs = text[:n_captions], text[n_captions:]
        logits = ours @ sound.T / 0.07
        # Caption -> sounds: all of the family's sounds are right answers.
        to_sound = -(torch.logsumexp(logits.masked_fill(~same, -1e4), 1)
                     - torch.logsumexp(logits, 1)).mean()
        # Sound -> captions, the same way round.
        to_text = -(torch.logsumexp(logits.T.masked_fill(~same.T, -1e4), 1)
                    - torch.logsumexp(logits.T, 1)).mean()
        spread = theirs @ theirs.T
        off = ~torch.eye(len(theirs), dtype=torch.bool)
        uniform = spread[off].square().mean()
        loss = to_sound + to_text + 4.0 * uniform
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return {"to_sound": float(to_sound.detach()), "to_text": float(to_text.detach()),
            "uniform": float(uniform.detach())}


def build_trained_clap(folder: Path, seed: int = 0, steps: int = 200) -> Path:
    """Save a tiny CLAP whose text search works on the test families (a few seconds)."""
    model, tokenizer, extractor = _random_model(full=False, seed=seed)
    fit_to_families(model, tokenizer, extractor, seed=seed, steps=steps)
    return _save(folder, model, tokenizer, extractor)


def fill_hub_cache(cache: Path, repo_id: str, model_folder: Path, commit: str = "a" * 40) -> Path:
    """Lay a saved model out as the hub cache does, so a hub id resolves offline."""
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for item in model_folder.iterdir():
        if item.is_file():
            shutil.copy2(item, snapshot / item.name)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def model_summary(folder: Path) -> dict[str, object]:
    return json.loads((Path(folder) / "config.json").read_text())
