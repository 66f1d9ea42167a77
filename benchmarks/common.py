"""Shared by the benchmarks: the full-size random model, generated sample-library audio, RSS.

The model is the laion/larger_clap_music architecture (HTSAT-large audio tower, RoBERTa-base
text tower) with random weights, built from its config once and kept in a cache folder: it
costs exactly what the real model costs, and needs no download.

The audio is a small sample library: mostly one-shots (one model window each), some loops and
a few long files, at 22.05/44.1/48/96 kHz, 16 and 24 bit, mono and stereo, plus a few
byte-identical copies (duplicates, which clapdesk embeds once).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf

# Before anything loads torch, as in the app: clapdesk.core sets torch's OpenMP spin count,
# which libgomp reads once, when torch loads.
import clapdesk.core  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
RATES = (22050, 44100, 48000, 96000)
SUBTYPES = ("PCM_16", "PCM_24")


def bench_dir() -> Path:
    """Where built models are kept between runs (never committed)."""
    base = os.environ.get("CLAPDESK_BENCH_DIR") or os.path.join(tempfile.gettempdir(), "clapdesk-bench")
    path = Path(base)
    path.mkdir(parents=True, exist_ok=True)
    return path


def full_model(folder: Path | None = None) -> Path:
    """The full larger_clap_music architecture with random weights, built once and reused."""
    folder = folder or bench_dir() / "larger-clap-music-random"
    if (folder / "config.json").is_file() and any(folder.glob("*.safetensors")):
        return folder
    sys.path.insert(0, str(ROOT / "tests"))
    from modelfactory import build_clap

    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    build_clap(scratch, full=True)
    os.replace(scratch, folder)
    return folder


def quiet_libraries() -> None:
    """Benchmarks print one JSON object: keep progress bars and warnings off stdout/stderr."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    logging.disable(logging.WARNING)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def _sound(rng: np.random.Generator, seconds: float, rate: int, loop: bool) -> np.ndarray:
    """A decaying pitched hit, a noise burst, or a loop of hits at a tempo."""
    n = max(1, int(seconds * rate))
    t = np.arange(n) / rate
    if loop:
        bpm = rng.uniform(80, 160)
        beat = 60.0 / bpm
        phase = np.mod(t, beat)
        pitch = rng.uniform(40, 120)
        kick = np.sin(2 * np.pi * pitch * phase * (1 + 2 * np.exp(-phase * 30))) * np.exp(-phase * 9)
        hats = rng.standard_normal(n) * np.exp(-np.mod(t, beat / 2) * 60) * 0.3
        wave = kick + hats
    elif rng.random() < 0.5:
        pitch = rng.uniform(50, 1500)
        wave = sum(np.sin(2 * np.pi * pitch * k * t) / k for k in range(1, 5))
        wave *= np.exp(-t * rng.uniform(1, 12))
    else:
        wave = rng.standard_normal(n) * np.exp(-t * rng.uniform(5, 40))
    wave = wave + 0.005 * rng.standard_normal(n)
    return (0.6 * wave / (np.abs(wave).max() + 1e-9)).astype(np.float32)


def make_library(folder: Path, count: int = 48, duplicates: int = 3, seed: int = 0) -> list[Path]:
    """Write `count` audio files (of which `duplicates` are byte-identical copies) into `folder`.

    Durations follow a sample library: ~70 % one-shots of 0.2 to 4 s, ~20 % loops of 4 to 10 s
    (one model window either way) and ~10 % long loops of 10 to 30 s (two or three windows).
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    originals = count - duplicates
    for i in range(originals):
        draw = rng.random()
        if draw < 0.7:
            seconds, loop, kind = rng.uniform(0.2, 4.0), False, "oneshot"
        elif draw < 0.9:
            seconds, loop, kind = rng.uniform(4.0, 10.0), True, "loop"
        else:
            seconds, loop, kind = rng.uniform(10.0, 30.0), True, "longloop"
        rate = int(rng.choice(RATES))
        subtype = str(rng.choice(SUBTYPES))
        channels = int(rng.choice((1, 2)))
        mono = _sound(rng, seconds, rate, loop)
        data = np.stack([mono, np.roll(mono, 7)], axis=1) if channels == 2 else mono
        path = folder / kind / f"{kind}_{i:03d}_{rate}_{subtype[-2:]}bit_{channels}ch.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, data, rate, subtype=subtype)
        paths.append(path)
    for j in range(duplicates):
        source = paths[j * 5 % len(paths)]
        copy = folder / "copies" / f"copy_{j}_{source.name}"
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, copy)
        paths.append(copy)
    return paths


def rss_mb() -> float:
    """Resident memory of this process now, in MB (Linux /proc; 0 elsewhere)."""
    try:
        with open("/proc/self/statm") as handle:
            pages = int(handle.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError):
        return 0.0


def children_rss_mb() -> float:
    """Resident memory of this process's child processes (the decoders), in MB; 0 elsewhere."""
    total = 0.0
    try:
        children = set()
        for task in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{task}/children") as handle:
                children.update(handle.read().split())
        for pid in children:
            with open(f"/proc/{pid}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError):
        pass
    return total


class PeakRss:
    """Samples RSS every 50 ms while in a `with` block and keeps the peak."""

    def __init__(self, measure: Callable[[], float] | None = None) -> None:
        self.measure = measure or rss_mb
        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.measure())
            time.sleep(0.05)

    def __enter__(self) -> PeakRss:
        self.peak = self.measure()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.measure())


def load_average() -> float | None:
    """The 1-minute load average: figures taken on a busy machine say so."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None
