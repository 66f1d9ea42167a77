"""Drum loops of known tempo for the tempo-accuracy test and benchmark, written as real files.

Each loop is a whole number of 4/4 bars (1-4) at 70..180 BPM, in one of several genres' kick and
snare patterns, with hi-hats in eighths or sixteenths, straight or swung, a randomised kit,
velocities and timing, sometimes a bass line and a noise floor; written as a WAV or FLAC at
44.1 or 48 kHz with a neutral name (so only the audio can tell the tempo).

Seeds pick the loops: the analysis was tuned on TUNING_SEEDS and is measured on HELD_OUT_SEEDS,
which it never saw while its weights were chosen.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

TUNING_SEEDS = range(1000, 1240)
VALIDATION_SEEDS = (*range(7000, 7160), *range(9000, 9200))  # looked at while deciding
HELD_OUT_SEEDS = range(11000, 11200)

# Where kick ("k") and snare ("s") fall, in beats from the bar's start, for one bar.
GENRES: dict[str, dict[str, tuple[float, ...]]] = {
    "rock": {"k": (0, 2), "s": (1, 3)},
    "pop": {"k": (0, 1.5, 2), "s": (1, 3)},
    "boom-bap": {"k": (0, 1.5, 2.75), "s": (1, 3)},
    "house": {"k": (0, 1, 2, 3), "s": (1, 3)},
    "funk": {"k": (0, 0.75, 2.5), "s": (1, 3)},
    "drum-and-bass": {"k": (0, 2.5), "s": (1, 3)},
    "half-time": {"k": (0, 0.75, 3.5), "s": (2,)},       # trap: snare on 3, hats in sixteenths
    "dembow": {"k": (0, 1, 2, 3), "s": (0.75, 1.5, 2.75, 3.5)},
}
BAR_CHOICES = (1, 2, 3, 4)
BAR_WEIGHTS = (0.3, 0.35, 0.1, 0.25)  # three-bar loops exist, but are rare


@dataclass(frozen=True)
class LoopSpec:
    seed: int
    bpm: float
    bars: int
    genre: str
    hats: str       # "eighths" or "sixteenths"
    swing: float    # 0.5 straight; the off-beat's place within its pair (0.5..0.68)
    rate: int
    subtype: str
    extras: tuple[str, ...]

    @property
    def label(self) -> str:
        swing = "straight" if self.swing == 0.5 else f"swing {self.swing:.2f}"
        extra = "+".join(self.extras) or "plain"
        return (f"seed {self.seed}: {self.genre} {self.bpm:.1f} BPM x{self.bars} bars, "
                f"{self.hats} {swing}, {extra}, {self.rate} Hz")


def spec_for(seed: int) -> LoopSpec:
    rng = np.random.default_rng(seed)
    genre = str(rng.choice(list(GENRES)))
    hats = "sixteenths" if genre == "half-time" or rng.random() < 0.4 else "eighths"
    swing = 0.5 if rng.random() < 0.6 else float(rng.uniform(0.56, 0.68))
    extras = tuple(name for name, p in (("ghosts", 0.3), ("open hats", 0.25), ("bass", 0.3),
                                        ("noise", 0.4)) if rng.random() < p)
    return LoopSpec(
        seed=seed, bpm=round(float(rng.uniform(70, 180)), 2),
        bars=int(rng.choice(BAR_CHOICES, p=BAR_WEIGHTS)), genre=genre, hats=hats, swing=swing,
        rate=int(rng.choice([44100, 48000])), subtype=str(rng.choice(["PCM_16", "PCM_24", "FLAC"])),
        extras=extras)


def _kit(rng: np.random.Generator, sr: int) -> dict[str, np.ndarray]:
    t = np.arange(int(0.45 * sr)) / sr
    high, low = rng.uniform(100, 190), rng.uniform(40, 65)
    sweep = low + (high - low) * np.exp(-t / rng.uniform(0.015, 0.06))
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / rng.uniform(0.1, 0.3))
    kick[: int(0.002 * sr)] += rng.uniform(0.0, 0.6)
    ts = t[: int(0.3 * sr)]
    noise = rng.standard_normal(len(ts))
    snare = (noise * rng.uniform(0.4, 0.8) * np.exp(-ts / rng.uniform(0.05, 0.16))
             + np.sin(2 * np.pi * rng.uniform(150, 250) * ts) * np.exp(-ts / rng.uniform(0.03, 0.08)))
    if rng.random() < 0.4:  # a clap: three quick bursts
        for offset in (0.0, 0.011, 0.022):
            start = int(offset * sr)
            snare[start: start + int(0.006 * sr)] += noise[: int(0.006 * sr)] * 0.7
    th = t[: int(0.1 * sr)]
    hat_noise = np.diff(np.diff(rng.standard_normal(len(th) + 2)))
    hat = hat_noise * np.exp(-th / rng.uniform(0.012, 0.04))
    to = t[: int(0.35 * sr)]
    open_hat = np.diff(np.diff(rng.standard_normal(len(to) + 2))) * np.exp(-to / rng.uniform(0.08, 0.2))
    return {"kick": kick, "snare": snare, "hat": hat, "open_hat": open_hat}


def render(spec: LoopSpec) -> np.ndarray:
    """The loop as mono float32 at spec.rate, exactly spec.bars bars long."""
    rng = np.random.default_rng(spec.seed + 1)
    sr = spec.rate
    kit = _kit(rng, sr)
    beat = 60.0 / spec.bpm
    out = np.zeros(int(round(spec.bars * 4 * beat * sr)))
    jitter = rng.uniform(0.0, 0.006)

    def place(sample: np.ndarray, at_beats: float, gain: float) -> None:
        start = int(round((at_beats * beat + rng.normal(0, jitter)) * sr)) % len(out)
        stop = min(len(out), start + len(sample))
        out[start:stop] += gain * sample[: stop - start]
        rest = min(len(sample) - (stop - start), len(out))
        if rest > 0:  # a loop wraps: the last hit's tail sounds at the start
            out[:rest] += gain * sample[stop - start: stop - start + rest]

    pattern = GENRES[spec.genre]
    step = 0.5 if spec.hats == "eighths" else 0.25
    for bar in range(spec.bars):
        origin = bar * 4
        for at in pattern["k"]:
            place(kit["kick"], origin + at, rng.uniform(0.75, 1.0))
        for at in pattern["s"]:
            place(kit["snare"], origin + at, rng.uniform(0.7, 1.0))
        for i in range(int(round(4 / step))):
            at = i * step
            if i % 2 == 1:  # the second of each pair is where swing moves it
                at = (i - 1) * step + 2 * step * spec.swing
            accent = 1.25 if i % 2 == 0 else 1.0
            place(kit["hat"], origin + at, rng.uniform(0.12, 0.3) * accent)
        if "ghosts" in spec.extras:
            for at in (1.75, 3.25):
                place(kit["snare"], origin + at, rng.uniform(0.08, 0.2))
        if "open hats" in spec.extras:
            for b in range(4):
                place(kit["open_hat"], origin + b + 0.5, rng.uniform(0.1, 0.2))
    if "bass" in spec.extras:
        tonic = 33 + int(rng.integers(12))
        length = int(round(beat * sr / 2))
        t = np.arange(length) / sr
        for i in range(spec.bars * 8):
            note = tonic + int(rng.choice([0, 0, 0, 7, 12, 10]))
            freq = 440.0 * 2 ** ((note - 69) / 12)
            tone = np.sin(2 * np.pi * freq * t) * np.minimum(1.0, t / 0.005) * np.exp(-t / 0.3)
            start = i * length
            out[start: start + length] += 0.35 * tone[: len(out) - start]
    peak = float(np.max(np.abs(out))) + 1e-9
    if "noise" in spec.extras:
        out += rng.standard_normal(len(out)) * 10 ** (rng.uniform(-55, -40) / 20) * peak
    return (rng.uniform(0.3, 0.9) * out / (np.max(np.abs(out)) + 1e-9)).astype(np.float32)


def write_loop(folder: Path, spec: LoopSpec) -> Path:
    """Write the loop under a neutral name; returns its path."""
    suffix = ".flac" if spec.subtype == "FLAC" else ".wav"
    path = folder / f"audio_{spec.seed:05d}{suffix}"
    subtype = "PCM_16" if spec.subtype == "FLAC" else spec.subtype
    sf.write(path, render(spec), spec.rate, subtype=subtype)
    return path


def tempo_verdict(got: float | None, true_bpm: float, tolerance: float = 0.04) -> str:
    """"exact" within tolerance, "octave" at half or double, else "wrong"."""
    if got is None:
        return "wrong"
    if abs(got / true_bpm - 1) <= tolerance:
        return "exact"
    if any(abs(got * f / true_bpm - 1) <= tolerance for f in (0.5, 2.0)):
        return "octave"
    return "wrong"
