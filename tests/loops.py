"""Generated loops of known tempo and key, and measurements of rendered audio.

A loop here is a click on every beat (a 1 ms noise burst, a clear onset at a known sample) over a
sustained tone at the key's root, so that the output's tempo (the beat grid), start offset and
pitch can all be measured on what a stretcher returns.
"""

from __future__ import annotations

import numpy as np
import soundfile as sf

from clapdesk.core.analysis.names import key_pitch_class

CLICK_SECONDS = 0.001
FIRST_BEAT_SECONDS = 0.0  # the loop starts on its first beat, as a producer's loop does


def root_hz(key: str, octave: int = 3) -> float:
    """The root of `key` in the given octave (A3 = 220 Hz)."""
    pitch, _ = key_pitch_class(key)
    midi = 12 * (octave + 1) + pitch
    return 440.0 * 2 ** ((midi - 69) / 12)


def make_loop(bpm: float, bars: int, key: str | None, rate: int = 44100,
              channels: int = 2, seed: int = 0) -> np.ndarray:
    beats = 4 * bars
    frames = round(beats * 60.0 / bpm * rate)
    t = np.arange(frames) / rate
    out = np.zeros(frames, np.float64)
    if key is not None:
        out += 0.25 * np.sin(2 * np.pi * root_hz(key) * t)
    rng = np.random.default_rng(seed)
    click = rng.uniform(-0.9, 0.9, max(1, int(CLICK_SECONDS * rate)))
    for beat in range(beats):
        start = round((FIRST_BEAT_SECONDS + beat * 60.0 / bpm) * rate)
        out[start:start + len(click)] += click[:frames - start]
    data = np.repeat(out[:, None], channels, axis=1).astype(np.float32)
    return data


def write_loop(path, bpm: float, bars: int, key: str | None, rate: int = 44100,
               channels: int = 2) -> None:
    sf.write(str(path), make_loop(bpm, bars, key, rate, channels), rate, subtype="PCM_24")


def onset_times(data: np.ndarray, rate: int, min_gap: float = 0.1) -> np.ndarray:
    """Seconds of each click: where the high-passed envelope first reaches half its peak."""
    mono = data.mean(axis=1) if data.ndim == 2 else data
    high = np.abs(np.diff(mono, prepend=mono[:1]))
    window = max(1, int(0.0005 * rate))
    envelope = np.convolve(high, np.ones(window) / window, mode="same")
    threshold = 0.5 * float(envelope.max())
    above = np.flatnonzero(envelope >= threshold)
    onsets: list[int] = []
    for index in above:
        if not onsets or index - onsets[-1] > min_gap * rate:
            onsets.append(int(index))
    return np.asarray(onsets, dtype=np.float64) / rate


def measured_tempo(data: np.ndarray, rate: int) -> tuple[float, float]:
    """(BPM, start offset in seconds) from a straight line through the click times."""
    times = onset_times(data, rate)
    beats = np.arange(len(times))
    slope, intercept = np.polyfit(beats, times, 1)
    return 60.0 / slope, intercept - FIRST_BEAT_SECONDS


def pitch_hz(data: np.ndarray, rate: int, low: float = 60.0, high: float = 1000.0) -> float:
    """The strongest frequency between `low` and `high`: an FFT of the whole sound, zero-padded,
    refined by a parabola through the peak and its neighbours."""
    mono = data.mean(axis=1) if data.ndim == 2 else data
    size = 1 << int(np.ceil(np.log2(len(mono) * 4)))
    spectrum = np.abs(np.fft.rfft(mono * np.hanning(len(mono)), size))
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    band = np.flatnonzero((freqs >= low) & (freqs <= high))
    peak = band[np.argmax(spectrum[band])]
    a, b, c = np.log(spectrum[peak - 1:peak + 2] + 1e-12)
    offset = 0.5 * (a - c) / (a - 2 * b + c)
    return float((peak + offset) * rate / size)


def cents(measured: float, expected: float) -> float:
    return float(1200 * np.log2(measured / expected))
