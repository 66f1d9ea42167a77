"""Shared fixtures: tiny CLAP models, generated audio, an isolated library per test."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
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
import modelfactory  # noqa: E402
from modelfactory import build_clap, build_trained_clap, family_sound, fill_hub_cache  # noqa: E402, F401

TINY_REPO = "clapdesk-test/tiny-clap"


def _built_once(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
                name: str, build: Callable[[Path], Path]) -> Path:
    """A test model, built once per run and kept in pytest's cache between runs.

    Fitting the trained-like model takes seconds on an idle machine and many more on a busy CI
    runner. The cached copy is keyed by everything that decides its weights (the factory's and
    the log-mel's source, torch and transformers versions), so it is rebuilt whenever any of
    them changes; tests get a fresh copy, so none can damage the cached one."""
    import torch
    import transformers

    from clapdesk.core.embed import log_mel

    digest = hashlib.sha256()
    for source in (modelfactory.__file__, log_mel.__file__):
        digest.update(Path(source).read_bytes())
    digest.update(f"{name} {torch.__version__} {transformers.__version__}".encode())
    target = tmp_path_factory.mktemp(name)
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    if cache is None:
        return build(target)
    kept = Path(cache.mkdir("clapdesk-test-models")) / f"{name}-{digest.hexdigest()[:16]}"
    if not (kept / "complete").is_file():
        scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=kept.parent))
        build(scratch)
        (scratch / "complete").touch()  # only whole copies are ever renamed into place
        try:
            os.replace(scratch, kept)
        except OSError:  # another run (a second pytest on this tree) put its copy there first
            shutil.rmtree(scratch, ignore_errors=True)
        for stale in kept.parent.glob(f"{name}-" + "[0-9a-f]" * 16):  # from older sources
            if stale != kept:
                shutil.rmtree(stale, ignore_errors=True)
    shutil.copytree(kept, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("complete"))
    return target


@pytest.fixture(scope="session")
def tiny_model(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLAP fitted to the test sound families: "kick" finds the kicks."""
    return _built_once(request, tmp_path_factory, "tiny-clap", build_trained_clap)


@pytest.fixture(scope="session")
def tiny_model_b(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second, different fitted tiny CLAP, for model switching."""
    return _built_once(request, tmp_path_factory, "tiny-clap-b",
                       lambda folder: build_trained_clap(folder, seed=7))


@pytest.fixture(scope="session")
def untrained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny CLAP with random weights: its text tower embeds every caption alike."""
    return build_clap(tmp_path_factory.mktemp("untrained-clap"))


@pytest.fixture(scope="session")
def fused_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLAP with the fused checkpoint's fusion and "fusion" truncation."""
    return build_clap(tmp_path_factory.mktemp("fused-clap"), fused=True)


@pytest.fixture(scope="session")
def hub_model(tiny_model: Path) -> str:
    """The tiny model as a hub id, resolvable only through the pre-filled offline cache."""
    fill_hub_cache(_HUB, TINY_REPO, tiny_model)
    return TINY_REPO


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own library, config, cache and region-exports folders."""
    monkeypatch.setenv("CLAPDESK_LIBRARY", str(tmp_path / "library"))
    monkeypatch.setenv("CLAPDESK_CONFIG", str(tmp_path / "config"))
    monkeypatch.setenv("CLAPDESK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLAPDESK_EXPORTS", str(tmp_path / "exports"))
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


def index_folder(folder: Path, model: Path) -> None:
    """Index `folder` into the test's library with the core, as a producer's earlier run would."""
    from clapdesk.core.library import Library

    library = Library(model=str(model))
    try:
        library.index_folders([str(folder)])
    finally:
        library.close()


def write_sound(path: Path, data: np.ndarray, rate: int = 44100, subtype: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, rate, subtype=subtype)
    return path
