"""Audio analysis on synthesised sounds with known tempo, key and shape."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from clapdesk.core.analysis.sound import Analysis, analyse

SR = 44100


def _kit(rng: np.random.Generator) -> dict[str, np.ndarray]:
    t = np.arange(int(0.4 * SR)) / SR
    sweep = 50 + 100 * np.exp(-t / 0.04)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / SR) * np.exp(-t / 0.18)
    ts = t[: int(0.25 * SR)]
    snare = rng.standard_normal(len(ts)) * 0.6 * np.exp(-ts / 0.1) + np.sin(2 * np.pi * 200 * ts) * np.exp(-ts / 0.05)
    th = t[: int(0.08 * SR)]
    hat = np.diff(rng.standard_normal(len(th) + 1)) * np.exp(-th / 0.025)
    return {"kick": kick, "snare": snare, "hat": hat}


def drum_loop(bpm: float, bars: int, seed: int = 0) -> np.ndarray:
    """Kick on 1 and 3, snare on 2 and 4, hi-hats on eighths; exactly `bars` bars long."""
    rng = np.random.default_rng(seed)
    kit = _kit(rng)
    beat = 60.0 / bpm
    out = np.zeros(int(round(bars * 4 * beat * SR)))
    for step in range(bars * 8):
        at = int(round(step * beat / 2 * SR))
        hits = [("hat", 0.3)]
        if step % 2 == 0:
            hits.append(("kick" if step % 4 == 0 else "snare", 0.9))
        for name, gain in hits:
            sample = kit[name][: len(out) - at]
            out[at : at + len(sample)] += gain * sample
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def _note(midi: int, seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    freq = 440.0 * 2 ** ((midi - 69) / 12)
    wave = sum(0.6 ** (h - 1) / h * np.sin(2 * np.pi * freq * h * t) for h in range(1, 6))
    return wave * np.minimum(1, t / 0.01) * np.minimum(1, (len(t) - np.arange(len(t))) / (0.03 * SR))


def chord_loop(tonic: int, minor: bool, bpm: float = 100.0) -> np.ndarray:
    """Four bars, i-iv-V-i (minor, with the leading tone) or I-IV-V-I, over a bass line."""
    bar = 4 * 60.0 / bpm
    third = 3 if minor else 4
    chords = [(0, third, 7), (5, 5 + third, 12), (7, 11, 14), (0, third, 7)]
    parts = []
    for chord in chords:
        notes = [_note(48 + tonic + n, bar) for n in chord] + [_note(36 + tonic + chord[0], bar)]
        parts.append(sum(notes))
    out = np.concatenate(parts)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def _write_and_read(tmp_path: Path, name: str, audio: np.ndarray) -> tuple[np.ndarray, int]:
    path = tmp_path / name
    sf.write(path, audio, SR, subtype="PCM_16")
    data, rate = sf.read(path, dtype="float32")
    return data, rate


@pytest.mark.parametrize(("bpm", "bars"), [(75, 2), (92, 2), (110, 4), (128, 2), (145, 1), (174, 2)])
def test_drum_loop_tempo_within_four_percent(tmp_path: Path, bpm: float, bars: int) -> None:
    audio, rate = _write_and_read(tmp_path, "audio_07.wav", drum_loop(bpm, bars, seed=bpm))
    result = analyse(audio, rate, name="audio_07.wav")
    assert result.kind == "loop"
    assert result.bpm_source == "audio"
    assert result.bpm is not None and abs(result.bpm / bpm - 1) <= 0.04


def test_backbeat_tells_one_bar_at_80_from_two_bars_at_160() -> None:
    slow, fast = drum_loop(80, 1, seed=1), drum_loop(160, 2, seed=1)
    assert len(slow) == len(fast)  # the same length: only the pattern can tell them apart
    assert analyse(slow, SR).bpm == pytest.approx(80, rel=0.04)
    assert analyse(fast, SR).bpm == pytest.approx(160, rel=0.04)


def test_tempo_of_a_long_file_cut_to_its_first_seconds() -> None:
    audio = np.tile(drum_loop(124, 4, seed=3), 6)  # ~46 s
    result = analyse(audio, SR, max_seconds=30, total_duration=len(audio) / SR)
    assert result.duration == pytest.approx(len(audio) / SR, abs=1e-3)
    assert result.bpm == pytest.approx(124, rel=0.04)


@pytest.mark.parametrize(("tonic", "minor", "key"), [(0, False, "C major"), (9, True, "A minor"),
                                                    (6, True, "F# minor"), (3, False, "D# major"),
                                                    (7, False, "G major"), (2, True, "D minor")])
def test_chord_loop_key(tonic: int, minor: bool, key: str) -> None:
    result = analyse(chord_loop(tonic, minor), SR, name="synth_03.wav")
    assert result.key == key
    assert result.key_source == "audio"


def test_noise_and_drums_have_no_key() -> None:
    rng = np.random.default_rng(0)
    noise = (0.2 * rng.standard_normal(3 * SR)).astype(np.float32)
    assert analyse(noise, SR).key is None
    assert analyse(drum_loop(100, 2), SR).key is None


def test_decaying_hit_is_a_one_shot_without_tempo() -> None:
    t = np.arange(int(1.5 * SR)) / SR
    hit = (np.sin(2 * np.pi * 55 * t) * np.exp(-t / 0.25)).astype(np.float32)
    result = analyse(hit, SR, name="boom_02.wav")
    assert result.kind == "one-shot"
    assert result.bpm is None and result.bpm_source is None
    assert result.key == "A major"  # a pitched hit has a root: 55 Hz is an A


def test_file_name_wins_for_tempo_and_key() -> None:
    result = analyse(drum_loop(100, 2), SR, name="Packs/Loop_94bpm_Cmin.wav")
    assert (result.bpm, result.bpm_source) == (94.0, "filename")
    assert (result.key, result.key_source) == ("C minor", "filename")
    shot = analyse(drum_loop(100, 2), SR, name="One Shots/Weird_Kick_One_Shot.wav")
    assert shot.kind == "one-shot" and shot.bpm is None


def test_levels_and_brightness() -> None:
    t = np.arange(3 * SR) / SR
    sine = (0.1 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)  # -20 dBFS peak
    result = analyse(sine, SR)
    assert result.peak_db == pytest.approx(-20.0, abs=0.1)
    assert result.loudness_db == pytest.approx(-23.0, abs=0.7)  # BS.1770: full-scale 1 kHz sine is -3 LUFS
    low = analyse((0.5 * np.sin(2 * np.pi * 80 * t)).astype(np.float32), SR).brightness
    rng = np.random.default_rng(1)
    hiss = analyse(np.diff(rng.standard_normal(3 * SR + 1)).astype(np.float32) * 0.1, SR).brightness
    assert 0.0 <= low < 0.2 < 0.8 < hiss <= 1.0


@pytest.mark.parametrize(
    "audio",
    [
        np.zeros(0, np.float32),
        np.zeros(1, np.float32),
        np.ones(1, np.float32),
        np.zeros(3 * SR, np.float32),
        np.full(SR, np.nan, np.float32),
        np.array([np.inf, -np.inf, np.nan, 0.5] * 5000, np.float32),
        np.full(2 * SR, 1e6, np.float32),
        np.zeros((SR, 2), np.float32),
        np.arange(100, dtype=np.float64) / 100,
    ],
    ids=["empty", "one-zero", "one-one", "silence", "nan", "inf-mix", "huge", "stereo", "float64"],
)
def test_odd_input_never_raises_and_is_json(audio: np.ndarray) -> None:
    for rate in (SR, 48000, 8000, 0):
        result = analyse(audio, rate, name="x.wav")
        assert isinstance(result, Analysis)
        data = json.loads(json.dumps(result.to_json(), allow_nan=False))
        assert data["kind"] in ("loop", "one-shot")
        assert math.isfinite(data["peak_db"]) and math.isfinite(data["loudness_db"])
        assert 0.0 <= data["brightness"] <= 1.0


def test_silence_is_quiet_and_plain() -> None:
    result = analyse(np.zeros(2 * SR, np.float32), SR, name="Loop_120bpm.wav")
    assert result.peak_db == result.loudness_db == -120.0
    assert result.key is None and result.duration == pytest.approx(2.0)
