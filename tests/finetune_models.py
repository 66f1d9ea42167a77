"""A test model for fine-tuning: the fitted tiny CLAP with its audio head drawn at random again,
so the text side still reads words apart but the sound vectors know nothing of the families
(the case fine-tuning is for)."""

from __future__ import annotations

import shutil
from pathlib import Path


def random_audio_head(tiny_model: Path, folder: Path, seed: int = 11) -> Path:
    import torch
    from transformers import ClapModel

    folder.mkdir(parents=True, exist_ok=True)
    for item in tiny_model.iterdir():
        if item.is_file():
            shutil.copy2(item, folder / item.name)
    model = ClapModel.from_pretrained(str(tiny_model), use_safetensors=True)
    torch.manual_seed(seed)
    for layer in (model.audio_projection.linear1, model.audio_projection.linear2):
        layer.reset_parameters()
    model.save_pretrained(folder)
    return folder
