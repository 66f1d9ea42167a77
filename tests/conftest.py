"""Shared fixtures: a tiny random CLAP, generated audio, an isolated library per test."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

# Before anything imports huggingface_hub: a private, offline hub cache for the whole run.
_HUB = Path(tempfile.mkdtemp(prefix="clapdesk-hub-"))
os.environ["HF_HUB_CACHE"] = str(_HUB)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile as sf  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from modelfactory import build_clap, fill_hub_cache  # noqa: E402

TINY_REPO = "clapdesk-test/tiny-clap"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLAP saved to a folder (session-wide: building it takes a second)."""
    return build_clap(tmp_path_factory.mktemp("tiny-clap"))


@pytest.fixture(scope="session")
def tiny_model_b(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different tiny CLAP, for model switching."""
    return build_clap(tmp_path_factory.mktemp("tiny-clap-b"), seed=7)


@pytest.fixture(scope="session")
def hub_model(tiny_model: Path) -> str:
    """The tiny model as a hub id, resolvable only through the pre-filled offline cache."""
    fill_hub_cache(_HUB, TINY_REPO, tiny_model)
    return TINY_REPO


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own library, config and cache folders."""
    monkeypatch.setenv("CLAPDESK_LIBRARY", str(tmp_path / "library"))
    monkeypatch.setenv("CLAPDESK_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("CLAPDESK_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CLAPDESK_MODEL", raising=False)
    return tmp_path


def tone(seconds: float = 2.0, rate: int = 44100, freq: float = 220.0, seed: int = 0,
         noise: float = 0.05, channels: int = 1) -> np.ndarray:
    """A few harmonics and a little noise: a stable, pitched test sound."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * np.pi * freq * h * t) / h for h in (1, 2, 3, 5))
    wave = 0.3 * wave / np.abs(wave).max() + noise * rng.standard_normal(t.size)
    wave *= np.minimum(1.0, t / 0.01)  # no click at the start
    out = wave.astype(np.float32)
    return np.stack([out] * channels, axis=1) if channels > 1 else out


def write_sound(path: Path, data: np.ndarray, rate: int = 44100, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path


def family_sound(family: str, seed: int, rate: int = 44100, seconds: float = 1.5) -> np.ndarray:
    """Distinct sound families for search and fine-tuning tests."""
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
