"""Random CLAP models built in code, saved with save_pretrained, for tests and benchmarks.

The hub cannot be reached from CI, so tests build a tiny CLAP (and benchmarks the full
larger_clap_music architecture) with random weights and a real byte-level BPE tokenizer trained
on sample-library words, so different prompts really get different token ids.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

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


def build_clap(folder: Path, full: bool = False, seed: int = 0) -> Path:
    """Save a random CLAP (tiny, or the full larger_clap_music shape) and its processor."""
    import torch
    from transformers import (
        ClapConfig,
        ClapFeatureExtractor,
        ClapModel,
        ClapProcessor,
        RobertaTokenizer,
    )

    folder = Path(folder)
    scratch = folder / "_tokenizer"
    vocab, merges = _train_tokenizer(scratch)
    tokenizer = RobertaTokenizer(vocab=str(vocab), merges=str(merges))
    if full:
        text = dict(vocab_size=len(tokenizer), hidden_size=768, num_hidden_layers=12,
                    num_attention_heads=12, intermediate_size=3072, projection_dim=512,
                    projection_hidden_act="relu")
        audio = dict(depths=[2, 2, 12, 2], hidden_size=1024, patch_embeds_hidden_size=128,
                     projection_dim=512, projection_hidden_act="relu", enable_fusion=False)
        projection = 512
    else:
        text = dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1,
                    num_attention_heads=2, intermediate_size=37, max_position_embeddings=80,
                    projection_dim=16)
        audio = dict(depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16,
                     hidden_size=32, projection_dim=16, enable_fusion=False)
        projection = 16
    torch.manual_seed(seed)
    config = ClapConfig(text_config=text, audio_config=audio, projection_dim=projection)
    model = ClapModel(config).eval()
    extractor = ClapFeatureExtractor(truncation="rand_trunc")  # larger_clap_music's settings
    processor = ClapProcessor(feature_extractor=extractor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    shutil.rmtree(scratch)
    return folder


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
