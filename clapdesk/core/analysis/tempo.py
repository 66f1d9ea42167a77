"""A loop's tempo from its onset envelopes, with octave errors decided by bars and drum pattern.

A periodicity estimate alone cannot tell 80 BPM from 160: the envelope repeats at both. Two
things a producer would listen for decide it here:
- the loop's length: a loop from a pack is a whole number of 4/4 bars, so a file of D seconds
  can only be at 60 * beats / D for beats = 4, 8, 12, 16 ... (1, 2, 3, 4 ... bars). Those
  tempos are the candidates, and the envelope's periodicity at each one's beat (and at two and
  four beats) says which of them the audio supports;
- the kick/snare pattern: read at the right tempo from the loop's start (its downbeat), the
  snare falls on 2 and 4 and the onsets come two to four to a beat (eighth or sixteenth hats).
  Read at half the tempo the snare falls on the "and"s and the hats run in thirty-seconds; at
  double, the snare comes once a bar and the hats in quarters; at 2:3 it falls off the eighth
  grid. A half-time groove (snare on 3) counts as such only when its hats run in sixteenths, as
  trap's do, since otherwise it is the same audio as a backbeat at half the tempo.

A loop heard whole is read as whole bars whenever one of those tempos has support in the audio;
files that are not (or were cut to their first seconds) get the same scoring over candidates
taken from the envelope's own periodicity, snapped to whole bars when within 3 %. The weights
were chosen on generated loops of one seed set and are measured on another
(tests/loopfactory.py, tests/test_tempo_accuracy.py, benchmarks/bench_tempo_accuracy.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

TEMPO_LOW, TEMPO_HIGH = 70.0, 180.0
RANGE_MARGIN = 0.04   # 69.8 stays 69.8 rather than doubling
SNAP_TOLERANCE = 0.03
# Beats in a loop of whole bars, and how much more likely than others each is: 1, 2, 4 and 8
# bars are the norm, 3 and 6 exist, a half bar is a fill.
BAR_BEATS = {4: 0.0, 8: 0.0, 16: 0.0, 32: 0.0, 64: 0.0, 12: -0.08, 24: -0.08, 2: -0.15, 48: -0.1}

# Scoring weights, chosen on tests/loopfactory.TUNING_SEEDS (never on the held-out seeds).
W_PERIODIC = 1.0      # the envelope repeats at one beat, two beats and a bar
W_BACKBEAT = 0.25     # the snare's weight on 2 and 4
W_SNARE_ON_AND = 0.25  # ... on the "and"s: the tempo read is half the real one
W_SNARE_OFF = 0.25    # ... off the eighth-note grid: a 2:3 or 3:4 misreading
W_HALF_TIME = 1.0     # the snare on 3 alone, with sixteenth hats
W_DENSITY = 0.25      # onsets per beat outside 1.5..4.5
W_BAR_PRIOR = 2.0     # how much the bar count's own likelihood (BAR_BEATS) counts
OFF_BAR_PENALTY = 0.2  # a whole file whose tempo does not make whole bars is unusual
BAR_SUPPORT = 0.5     # see estimate_tempo: when a whole-bar tempo is preferred outright


@dataclass(frozen=True)
class Candidate:
    bpm: float
    whole_bars: bool
    prior: float = 0.0


def estimate_tempo(bands: np.ndarray, fps: float, duration: float, circular: bool,
                   onset_count: int) -> float | None:
    """Tempo in BPM (70..180) of a loop, or None when nothing in it repeats.

    `bands`: onset envelopes (low, mid, presence, high) at `fps` frames a second; `circular`
    when they cover the whole file, which then wraps around as a loop does."""
    low, mid = bands[0], bands[1]  # kicks, snares; presence and hats count in `everything`
    everything = bands.sum(axis=0)
    n = len(everything)
    if n < 16 or float(everything.max()) <= 1e-9:
        return None
    r_all = _autocorrelation(everything, circular)
    r_drums = _autocorrelation(low + mid, circular)
    # The snare's body is in the mid band; a kick's click is there too, but with its low band.
    snare = np.maximum(0.0, mid - 0.5 * low) ** 2  # squared: the hits, not the hats' leakage
    # A circular envelope repeats trivially at its own length: lags near it say nothing.
    longest = int(0.9 * n) if circular else n - 2
    candidates = _candidates(r_all, fps, duration, circular, longest)
    if not candidates:
        return None
    seconds = n / fps

    def features(c: Candidate) -> dict[str, float]:
        beat = 60.0 * fps / c.bpm
        per_beat = onset_count / max(1e-6, seconds * c.bpm / 60.0)
        return {"periodic": _salience(r_all, beat, longest) + 0.5 * _salience(r_drums, beat, longest),
                "per_beat": per_beat, **_fold(snare, beat)}

    measured = {c: features(c) for c in candidates}

    def score(c: Candidate) -> float:
        f = measured[c]
        # Half time: the snare on 3 and not on 1 (on_1_3 counts both), hats in sixteenths.
        half_time = max(0.0, 2 * f["on_3"] - f["on_1_3"]) if f["per_beat"] >= 3.0 else 0.0
        density = max(0.0, f["per_beat"] - 4.5) + max(0.0, 1.5 - f["per_beat"])
        off_bar = OFF_BAR_PENALTY if circular and not c.whole_bars else 0.0
        return (W_PERIODIC * f["periodic"] + W_BACKBEAT * f["on_2_4"]
                - W_SNARE_ON_AND * f["on_and"] - W_SNARE_OFF * f["off"] + W_HALF_TIME * half_time
                - W_DENSITY * density + W_BAR_PRIOR * c.prior - off_bar)

    if circular:
        # A loop heard whole is read as whole bars whenever the audio supports one of those
        # tempos at least half as well as its best period: a pattern such as dembow's 3+3+2
        # has strong periods that are no beat at all.
        bars = [c for c in candidates if c.whole_bars]
        strongest = max(measured[c]["periodic"] for c in candidates)
        if bars and max(measured[c]["periodic"] for c in bars) >= BAR_SUPPORT * strongest:
            candidates = bars
    best = max(candidates, key=score)
    tempo = best.bpm
    if not best.whole_bars and circular:
        tempo = _snap_to_bars(tempo, duration)
    return tempo


def _candidates(r: np.ndarray, fps: float, duration: float, circular: bool,
                longest: int) -> list[Candidate]:
    low, high = TEMPO_LOW * (1 - RANGE_MARGIN), TEMPO_HIGH * (1 + RANGE_MARGIN)
    out: list[Candidate] = []
    if circular and duration > 0:
        for beats, prior in BAR_BEATS.items():
            bpm = 60.0 * beats / duration
            if low <= bpm <= high:
                out.append(Candidate(bpm, True, prior))
    # The envelope's own strongest periods, folded into the range with their octaves.
    shortest = max(2, int(60 * fps / 400))
    top = min(longest, int(60 * fps / 30))
    if top > shortest + 2:
        window = r[shortest: top + 1]
        peaks, _ = signal.find_peaks(window)
        for peak in peaks[np.argsort(window[peaks])[::-1][:6]]:
            if window[peak] < 0.1:
                continue
            bpm = 60.0 * fps / _peak_lag(r, int(peak) + shortest)
            for candidate in _octaves(bpm, low, high):
                if not any(abs(c.bpm / candidate - 1) < 0.015 for c in out):
                    out.append(Candidate(candidate, False))
    return out


def _fold(envelope: np.ndarray, beat: float) -> dict[str, float]:
    """Where a drum falls in the bar at this beat length, from the file's start (loops start
    on the downbeat): fractions of its weight on 2 and 4, on 1 and 3 (and on 3 alone), on the
    "and"s, and elsewhere."""
    total = float(envelope.sum())
    if total <= 1e-12:
        return {"on_2_4": 0.0, "on_1_3": 0.0, "on_and": 0.0, "off": 0.0, "on_3": 0.0}
    # A flux peak comes about a frame before the hit it marks.
    position = ((np.arange(len(envelope)) + 1.0) / beat) % 4.0
    nearest = np.round(position * 2) / 2
    near = np.abs(position - nearest) <= 0.1
    slot = (nearest % 4.0)
    weight = envelope / total
    on_2_4 = float(weight[near & ((slot == 1) | (slot == 3))].sum())
    on_1_3 = float(weight[near & ((slot == 0) | (slot == 2))].sum())
    on_3 = float(weight[near & (slot == 2)].sum())
    on_and = float(weight[near & (slot % 1 == 0.5)].sum())
    return {"on_2_4": on_2_4, "on_1_3": on_1_3, "on_and": on_and, "on_3": on_3,
            "off": max(0.0, 1.0 - on_2_4 - on_1_3 - on_and)}


def _octaves(bpm: float, low: float, high: float) -> list[float]:
    while bpm > high:
        bpm /= 2
    while bpm < low:
        bpm *= 2
    out = [bpm]
    if bpm * 2 <= high:
        out.append(bpm * 2)
    if bpm / 2 >= low:
        out.append(bpm / 2)
    return out


def _at(r: np.ndarray, lag: float, longest: int) -> float | None:
    """The autocorrelation's peak near a fractional lag (a frame either side), None past the end."""
    centre = int(round(lag))
    if centre < 1 or centre + 1 > longest:
        return None
    return float(r[centre - 1: centre + 2].max())


def _salience(r: np.ndarray, beat: float, longest: int) -> float:
    """How strongly the envelope repeats at one beat, two beats and a bar."""
    values = [v for v in (_at(r, m * beat, longest) for m in (1, 2, 4)) if v is not None]
    return float(np.mean(values)) if values else 0.0


def _autocorrelation(envelope: np.ndarray, circular: bool) -> np.ndarray:
    e = envelope - envelope.mean()
    n = len(e)
    size = n if circular else 2 * n
    spectrum = np.fft.rfft(e, size)
    r = np.fft.irfft(spectrum * np.conj(spectrum), size)[:n]
    if not circular:
        r = r / np.maximum(n - np.arange(n), n // 4)  # unbiased, but not wild at long lags
    return r / r[0] if r[0] > 1e-12 else np.zeros(n)


def _peak_lag(r: np.ndarray, lag: int) -> float:
    """Parabolic interpolation of a peak at integer `lag`."""
    if 0 < lag < len(r) - 1:
        a, b, c = r[lag - 1], r[lag], r[lag + 1]
        denominator = a - 2 * b + c
        if denominator < 0:
            return lag + 0.5 * (a - c) / denominator
    return float(lag)


def _snap_to_bars(tempo: float, duration: float) -> float:
    """The tempo at which the loop is a whole number of 4/4 bars (or a half bar), if near."""
    best, best_error = tempo, SNAP_TOLERANCE
    for beats in BAR_BEATS:
        candidate = 60.0 * beats / duration
        error = abs(candidate / tempo - 1)
        if error < best_error:
            best, best_error = candidate, error
    return best
