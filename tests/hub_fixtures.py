"""Fixtures shared by the hub tests: a running stand-in hub, online for one test only.

A test module imports the `*_fixture` functions; its tests ask for `standin` and
`fresh_hub_cache`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from standin_hub import StandinHub, model_files, real_processor_files

REPO = "clapdesk-test/hub-clap"


@pytest.fixture(name="standin")
def standin_fixture(monkeypatch: pytest.MonkeyPatch) -> Iterator[StandinHub]:
    """A stand-in hub on 127.0.0.1, and this test online against it (conftest is offline)."""
    from huggingface_hub import constants

    with StandinHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        # huggingface_hub read the offline switch once, at import. (Its ENDPOINT stays: the
        # download path passes HF_ENDPOINT as read now, and the library swaps it in for it.)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        yield hub


@pytest.fixture(name="fresh_hub_cache")
def fresh_hub_cache_fixture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty hub cache for this test: a first start with nothing cached."""
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def served_repo(model_folder: Path, weights: str = "safetensors",
                real_config_of: str | None = "larger_clap_general") -> dict[str, bytes | Path]:
    """A hub-shaped repository of `model_folder`, with the real processor settings if known."""
    files = model_files(model_folder, weights)
    real = real_processor_files(real_config_of) if real_config_of else {}
    if real:
        files.pop("processor_config.json", None)  # the real repository has the older layout
        files.update(real)
    return files


def padded_weights(model_folder: Path, target: Path, megabytes: int = 8) -> Path:
    """The model's safetensors plus one unused tensor: a file big enough to cut in the middle."""
    import torch
    from safetensors.torch import load_file, save_file

    tensors = load_file(str(model_folder / "model.safetensors"))
    generator = torch.Generator().manual_seed(1)
    tensors["clapdesk_test_padding"] = torch.rand(megabytes * 250_000, generator=generator)
    save_file(tensors, str(target), metadata={"format": "pt"})
    return target


def child_env(hub: StandinHub, hf_cache: Path, tmp_path: Path) -> dict[str, str]:
    """The environment of a clapdesk started as its own process against the stand-in hub."""
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_OFFLINE"}
    env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(hf_cache),
               CLAPDESK_CACHE=str(tmp_path / "cache"), CLAPDESK_LIBRARY=str(tmp_path / "lib"),
               CLAPDESK_CONFIG=str(tmp_path / "config"), PYTHONPATH=str(Path.cwd()))
    env.pop("CLAPDESK_MODEL", None)
    return env
