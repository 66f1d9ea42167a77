"""Musical facts about one decoded sound: length, loop or one-shot, tempo, key, level, brightness.

Pure numpy/scipy, safe to call from worker threads. The indexer passes mono float32 audio at
the file's rate (up to 48 kHz), possibly only its first `max_seconds`; the work is done on a
copy resampled to about 11 kHz, which is plenty for onsets and pitch and keeps a 30 s loop
well under 100 ms.

Where the file name states a tempo or key it wins: pack authors know their loops. Otherwise:
- tempo (loops only): spectral-flux onset envelopes in four bands (kick, snare, presence,
  hats), read by analysis/tempo.py: the candidates are the tempos at which the loop is a
  whole number of 4/4 bars, and the envelope's periodicity with the kick/snare pattern and
  the hats' density decide between them (80 or 160, 120 or 180); 70..180 BPM.
- key: a pitch-class profile from sustained spectral peaks (a median over time removes drum
  hits; the bass register counts double), correlated with Krumhansl-Kessler major/minor
  profiles. Keys within 0.1 of the best (relative major/minor share their notes) are told
  apart by the opening quarter, since loops usually open on their tonic chord. None when the
  sound is not tonal (flat spectrum, flat profile or weak correlation).
- loudness_db: BS.1770-style integrated loudness (K-weighting, 400 ms blocks, -70 LUFS
  absolute and -10 LU relative gates) of the resampled copy, so content above ~5 kHz is not
  counted: close to LUFS for most material, a little low for hi-hats.
- brightness: the spectral centroid at the full rate mapped from 150 Hz (0) to 8 kHz (1) on
  a log scale.
- onset_rate: onsets per second of the whole band's onset envelope (the same onsets that
  tell a loop from a one-shot), what "similar in rhythm" compares beside the tempo.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
from scipy import fft, signal

from clapdesk.core.analysis import names, tempo

ANALYSIS_RATE = 11025
SILENCE_DB = -120.0
LOOP_MIN_SECONDS = 0.75
KEY_TIE_MARGIN = 0.1
OPENING_WEIGHT = 0.5

# Krumhansl-Kessler probe-tone profiles, tonic first.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


@dataclass(frozen=True)
class Analysis:
    duration: float
    kind: str
    bpm: float | None
    bpm_source: str | None
    key: str | None
    key_source: str | None
    peak_db: float
    loudness_db: float
    brightness: float
    onset_rate: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)


def analyse(
    mono: np.ndarray,
    sr: int,
    name: str = "",
    max_seconds: float = 30.0,
    total_duration: float | None = None,
) -> Analysis:
    """Analyse decoded audio. `mono` may be the first `max_seconds` of a longer file, whose
    real length `total_duration` (seconds) the caller then passes. Never raises on odd
    input: silence, one sample, NaN/Inf (read as 0) all give an Analysis."""
    sr = int(sr) if sr and sr > 0 else ANALYSIS_RATE
    x = _clean(mono, int(max_seconds * sr) if max_seconds and max_seconds > 0 else None)
    analysed_seconds = len(x) / sr
    duration = float(total_duration) if total_duration and math.isfinite(total_duration) else analysed_seconds
    duration = max(duration, analysed_seconds)
    whole_file = duration <= analysed_seconds + 1e-3

    peak = max(float(x.max()), -float(x.min())) if len(x) else 0.0
    peak_db = _to_db(peak)
    brightness = _brightness(x, sr)
    y, rate = _resample(x, sr)
    loudness_db = _integrated_loudness(y, rate)

    bands, fps = _onset_bands(y, rate)
    kind = _kind(name, bands, fps, y, rate, duration)
    onsets = _onset_times(bands.sum(axis=0), fps) if bands.size else np.zeros(0)
    onset_rate = len(onsets) / analysed_seconds if analysed_seconds > 0 else 0.0

    bpm, bpm_source = None, None
    if kind == "loop":
        named = names.bpm_from_name(name)
        if named is not None:
            bpm, bpm_source = named, "filename"
        elif peak_db > -90:
            estimated = tempo.estimate_tempo(bands, fps, duration, whole_file, _onset_count(bands, fps))
            if estimated is not None:
                bpm, bpm_source = round(estimated, 2), "audio"

    key, key_source = names.key_from_name(name), "filename"
    if key is None:
        key = _estimate_key(y, rate) if peak_db > -90 else None
        key_source = "audio" if key else None

    return Analysis(
        duration=round(duration, 4), kind=kind, bpm=bpm, bpm_source=bpm_source, key=key,
        key_source=key_source, peak_db=round(peak_db, 2), loudness_db=round(loudness_db, 2),
        brightness=round(brightness, 4), onset_rate=round(onset_rate, 3),
    )


# --- preparation --------------------------------------------------------------------------


def _clean(mono: np.ndarray, max_samples: int | None) -> np.ndarray:
    x = np.asarray(mono, dtype=np.float32)
    if x.ndim > 1:
        # Accept (frames, channels) or (channels, frames): average the shorter axis.
        x = x.mean(axis=int(np.argmin(x.shape))) if x.size else x.reshape(-1)
    x = x.reshape(-1)[:max_samples]
    if len(x) and not (np.isfinite(x.min()) and np.isfinite(x.max())):
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)
    if len(x) and (x.max() > 4.0 or x.min() < -4.0):
        x = np.clip(x, -4.0, 4.0)  # a broken file's wild values must not swamp everything
    return x


def _to_db(value: float) -> float:
    return max(SILENCE_DB, 20.0 * math.log10(value)) if value > 0 else SILENCE_DB


def _resample(x: np.ndarray, sr: int) -> tuple[np.ndarray, int]:
    factor = max(1, round(sr / ANALYSIS_RATE))
    if factor == 1 or len(x) < 64 * factor:
        return x.astype(np.float32, copy=False), sr
    rate = sr // factor
    try:  # soxr is several times faster than a polyphase FIR in numpy
        import soxr

        y = soxr.resample(x, sr, rate, quality="LQ")
    except Exception:  # a missing or failing soxr must not stop the analysis
        y = signal.resample_poly(x, 1, factor, window=("kaiser", 5.0))
    return np.asarray(y, dtype=np.float32), rate


def _frames(x: np.ndarray, size: int, hop: int, center: bool = True) -> np.ndarray:
    if center:
        x = np.pad(x, (size // 2, size // 2))
    if len(x) < size:
        x = np.pad(x, (0, size - len(x)))
    return np.lib.stride_tricks.sliding_window_view(x, size)[::hop]


# --- level and colour ---------------------------------------------------------------------


def _brightness(x: np.ndarray, sr: int) -> float:
    """Spectral centroid of up to 48 frames spread over the sound, on a 0..1 log scale."""
    size = 2048
    if len(x) < 64:
        return 0.0
    frames = _frames(x, size, max(size // 2, (len(x) - size) // 48 + 1), center=len(x) < size)
    power = (np.abs(fft.rfft(frames * np.hanning(size).astype(np.float32), axis=1)) ** 2).sum(axis=0)
    total = float(power.sum())
    if total <= 1e-12:
        return 0.0
    centroid = float((np.fft.rfftfreq(size, 1.0 / sr) * power).sum() / total)
    return float(np.clip(math.log(max(centroid, 1.0) / 150.0) / math.log(8000.0 / 150.0), 0.0, 1.0))


def _k_weighting(rate: int) -> np.ndarray:
    """BS.1770 K-weighting (high shelf + high pass) designed for any rate, as second-order sections."""
    sections = []
    for f0, q, gain_db, shelf in ((1681.97, 0.7072, 3.9998, True), (38.135, 0.5003, 0.0, False)):
        f0 = min(f0, 0.45 * rate)
        w0 = 2 * math.pi * f0 / rate
        alpha = math.sin(w0) / (2 * q)
        cos = math.cos(w0)
        if shelf:
            a = 10 ** (gain_db / 40)
            sq = 2 * math.sqrt(a) * alpha
            b = [a * ((a + 1) + (a - 1) * cos + sq), -2 * a * ((a - 1) + (a + 1) * cos),
                 a * ((a + 1) + (a - 1) * cos - sq)]
            den = [(a + 1) - (a - 1) * cos + sq, 2 * ((a - 1) - (a + 1) * cos), (a + 1) - (a - 1) * cos - sq]
        else:
            b = [(1 + cos) / 2, -(1 + cos), (1 + cos) / 2]
            den = [1 + alpha, -2 * cos, 1 - alpha]
        sections.append([v / den[0] for v in b] + [1.0] + [v / den[0] for v in den[1:]])
    return np.array(sections)


def _integrated_loudness(y: np.ndarray, rate: int) -> float:
    if len(y) == 0 or not np.any(y):
        return SILENCE_DB
    weighted = signal.sosfilt(_k_weighting(rate).astype(np.float32), y).astype(np.float64)
    block, step = int(0.4 * rate), int(0.1 * rate)
    if len(weighted) <= block:
        powers = np.array([np.mean(weighted**2)])
    else:
        squares = np.concatenate(([0.0], np.cumsum(weighted**2)))
        starts = np.arange(0, len(weighted) - block + 1, step)
        powers = (squares[starts + block] - squares[starts]) / block
    loudness = -0.691 + 10 * np.log10(np.maximum(powers, 1e-20))
    gated = powers[loudness > -70]
    if len(gated) == 0:
        return max(SILENCE_DB, float(-0.691 + 10 * np.log10(max(float(powers.mean()), 1e-20))))
    relative = -0.691 + 10 * math.log10(float(gated.mean())) - 10
    gated = gated[-0.691 + 10 * np.log10(gated) > relative]
    return max(SILENCE_DB, -0.691 + 10 * math.log10(float(gated.mean())))


# --- onsets, kind and tempo ---------------------------------------------------------------


def _onset_bands(y: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Spectral flux of log magnitudes in low (<150 Hz: kicks), mid (150-1500 Hz: snares),
    presence (1.5-3 kHz) and high (hats) bands: shape (4, frames), each band scaled to a
    comparable height."""
    hop = 2 ** max(5, round(math.log2(rate / 86)))  # ~86 frames a second, a power-of-two FFT
    size = 4 * hop
    fps = rate / hop
    if len(y) < 2:
        return np.zeros((4, 1)), fps
    spectrum = np.abs(fft.rfft(_frames(y, size, hop) * np.hanning(size).astype(np.float32), axis=1))
    top = float(spectrum.max())
    if top <= 1e-9:
        return np.zeros((4, len(spectrum))), fps
    logmag = np.log1p(spectrum * np.float32(1000.0 / top))
    # Silence before the file: a sound that starts at once has an onset at 0.
    flux = np.maximum(0.0, np.diff(logmag, axis=0, prepend=np.zeros_like(logmag[:1])))
    freqs = np.fft.rfftfreq(size, 1.0 / rate)
    edges = [(20.0, 150.0), (150.0, 1500.0), (1500.0, 3000.0), (3000.0, rate / 2 + 1)]
    to_bands = np.stack([(freqs >= lo) & (freqs < hi) for lo, hi in edges], axis=1).astype(flux.dtype)
    bands = (flux @ to_bands).T
    # Scale each band by its own strong peaks, but never blow up a nearly empty band.
    heights = np.percentile(bands, 99, axis=1)
    floor = 0.1 * float(heights.max()) + 1e-9
    return bands / np.maximum(heights, floor)[:, None], fps


def _onset_times(envelope: np.ndarray, fps: float) -> np.ndarray:
    if len(envelope) < 3 or float(envelope.max()) <= 1e-9:
        return np.zeros(0)
    # Well above the envelope's typical level, so that steady noise has no onsets at all.
    height = max(0.25 * float(envelope.max()), float(envelope.mean() + 1.5 * envelope.std()),
                 3.0 * float(np.median(envelope)))
    peaks, _ = signal.find_peaks(envelope, height=height, distance=max(1, int(0.06 * fps)))
    return peaks / fps


def _onset_count(bands: np.ndarray, fps: float) -> int:
    """Distinct onsets of the drums and of the hats (which the sum hides under the kicks)."""
    hats, _ = signal.find_peaks(bands[3], height=0.12, prominence=0.08, distance=max(1, int(0.045 * fps)))
    return len(_merged(_onset_times(bands[0] + bands[1], fps), hats / fps))


def _merged(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Onset times of both lists, a hit heard in both (within 40 ms) once."""
    times = np.sort(np.concatenate([a, b]))
    if len(times) == 0:
        return times
    return times[np.concatenate(([True], np.diff(times) > 0.04))]


def _kind(name: str, bands: np.ndarray, fps: float, y: np.ndarray, rate: int, duration: float) -> str:
    """Loop or one-shot: the name decides when it says so; otherwise a sound of at least
    ~1.2 s with several onsets spread over its length, or one that keeps its level to the
    end without decaying, is a loop."""
    if duration < LOOP_MIN_SECONDS:
        return "one-shot"
    named = names.kind_from_name(name)
    if named:
        return named
    # Kicks, snares and hats apart: in a short drum loop the sum shows little but its loudest hits.
    onsets = _merged(_onset_times(bands[0], fps),
                     _merged(_onset_times(bands[1] + bands[2], fps), _onset_times(bands[3], fps)))
    spread = (onsets[-1] - onsets[0]) / duration if len(onsets) > 1 else 0.0
    stated_tempo = names.bpm_from_name(name) is not None
    if len(onsets) >= (2 if stated_tempo else 3) and spread >= 0.4 and duration >= 1.2:
        return "loop"
    return "one-shot"


# --- key ----------------------------------------------------------------------------------


def _pitch_class_profile(y: np.ndarray, rate: int) -> tuple[np.ndarray, float]:
    """Sustained pitch-class energy (12) and the spectral flatness of the tonal band."""
    size = 4096 if rate >= 8000 else 2048
    hop = size // 2
    if len(y) < size // 4:
        return np.zeros(12), np.zeros(12), 1.0
    step = rate / size
    first, last = int(40.0 / step), int(2000.0 / step) + 2
    spectrum = np.abs(fft.rfft(_frames(y, size, hop) * np.hanning(size).astype(np.float32), axis=1)[:, first:last])
    if len(spectrum) >= 3:
        # A median over three frames (~0.5 s) keeps held notes and drops drum hits.
        padded = np.pad(spectrum, ((1, 1), (0, 0)), mode="edge")
        a, b, c = padded[:-2], spectrum, padded[2:]
        spectrum = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    mean_power = (spectrum**2).mean(axis=0) + 1e-12
    flatness = float(np.exp(np.mean(np.log(mean_power))) / np.mean(mean_power))
    # Spectral peaks only (a partial is a local maximum across frequency), each placed at its
    # interpolated frequency so that low notes, a few Hz apart, land on the right pitch.
    is_peak = np.zeros_like(spectrum, dtype=bool)
    is_peak[:, 1:-1] = (spectrum[:, 1:-1] > spectrum[:, :-2]) & (spectrum[:, 1:-1] >= spectrum[:, 2:])
    is_peak &= spectrum > 1e-3 * float(spectrum.max() + 1e-12)
    frame_index, bin_index = np.nonzero(is_peak)
    if len(frame_index) == 0:
        return np.zeros(12), np.zeros(12), flatness
    log_spec = np.log(spectrum + 1e-9)
    left, centre, right = (log_spec[frame_index, bin_index + d] for d in (-1, 0, 1))
    curvature = left - 2 * centre + right
    offset = np.where(curvature < 0, 0.5 * (left - right) / np.minimum(curvature, -1e-9), 0.0)
    freqs = (first + bin_index + np.clip(offset, -0.5, 0.5)) * step
    midi = 69 + 12 * np.log2(np.maximum(freqs, 1.0) / 440.0)
    weight = np.clip(1.0 - 2.0 * np.abs(midi - np.round(midi)), 0.0, 1.0)
    weight *= np.sqrt(spectrum[frame_index, bin_index]) * np.where(freqs < 250.0, 2.0, 1.0)
    # (the bass register says most about the tonic, hence double weight below 250 Hz)
    flat_index = frame_index * 12 + np.round(midi).astype(int) % 12
    per_frame = np.bincount(flat_index, weights=weight, minlength=len(spectrum) * 12).reshape(-1, 12)
    whole = per_frame.sum(axis=0)
    opening = per_frame[: max(1, len(per_frame) // 4)].sum(axis=0)
    return whole / (whole.sum() + 1e-12), opening / (opening.sum() + 1e-12), flatness


def _key_scores(profile: np.ndarray) -> np.ndarray:
    """Pearson correlation with the 24 rotated profiles: majors 0..11 then minors 0..11."""
    scores = np.empty(24)
    centred = profile - profile.mean()
    norm = np.linalg.norm(centred) + 1e-12
    for minor, template in enumerate((_MAJOR_PROFILE, _MINOR_PROFILE)):
        for tonic in range(12):
            t = np.roll(template, tonic)
            t = t - t.mean()
            scores[minor * 12 + tonic] = float(centred @ t / (norm * np.linalg.norm(t)))
    return scores


def _estimate_key(y: np.ndarray, rate: int) -> str | None:
    whole, opening, flatness = _pitch_class_profile(y, rate)
    if float(whole.sum()) <= 1e-9:
        return None
    contrast = float(whole.std() / whole.mean())
    scores = _key_scores(whole)
    best = int(np.argmax(scores))
    if flatness > 0.35 or contrast < 0.45 or scores[best] < 0.6:
        return None  # noise, drums or something too ambiguous to name
    # Keys that fit the notes almost as well (A minor and C major share every note of
    # Am-F-C-G) are told apart by the opening: loops usually start on their tonic chord.
    close = np.flatnonzero(scores >= scores[best] - KEY_TIE_MARGIN)
    if len(close) > 1:
        blended = _key_scores(whole + OPENING_WEIGHT * opening)
        best = int(close[np.argmax(blended[close])])
    return names.canonical_key(best % 12, best >= 12)
