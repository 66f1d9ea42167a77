"""What to do to one file so that it fits the project: how fast to play it, how far to shift it.

Pure functions on the catalog's facts (`kind`, `bpm`, `key`), no audio:
- a loop is played at the speed that brings its tempo to the project's, read as the loop's
  own tempo, double or half, whichever needs the smallest change (a 70 BPM loop in a 140 BPM
  project plays as it is: it is a half-time feel of the same grid);
- a loop with a key is shifted to the project key the shortest way round the circle (never more
  than 6 semitones), a relative major/minor counting as the same key (A minor fits C major);
- a one-shot keeps its timing; with key lock on and a known pitch (its key's root) it is shifted
  to the nearest note of the project's scale, chord tones first when two are equally near.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from clapdesk.core.analysis.names import (
    KEY_NAMES,
    PITCH_CLASSES,
    canonical_key,
    format_key_short,
    key_from_token,
    key_pitch_class,
)

TEMPO_MIN, TEMPO_MAX = 20.0, 999.0  # what a DAW's tempo field accepts
MAJOR_SCALE = (0, 2, 4, 5, 7, 9, 11)
MINOR_SCALE = (0, 2, 3, 5, 7, 8, 10)  # natural minor
CHORD_TONES = {0: 0, 7: 1, 4: 2, 3: 2}  # tonic, fifth, third: the order ties are broken in


@dataclass(frozen=True)
class RenderPlan:
    """Speed > 1 plays faster (shorter); semitones shifts the pitch, formants kept."""

    speed: float = 1.0
    semitones: int = 0
    tempo: float | None = None  # the project tempo the file is stretched to, for names
    key: str | None = None  # the project key it is shifted to (canonical), for names

    @property
    def is_identity(self) -> bool:
        return abs(self.speed - 1.0) < 1e-6 and self.semitones == 0

    def cache_token(self) -> str:
        return f"s{self.speed:.6f}_p{self.semitones:+d}"


def parse_key(text: str | None) -> str | None:
    """"A minor", "Am", "a min", "F#m", "Bb major" -> canonical ("A minor"); "" / None -> None.
    Raises ValueError with the accepted forms for anything else."""
    if text is None or not text.strip():
        return None
    cleaned = text.strip()
    if cleaned in KEY_NAMES:
        return cleaned
    parts = re.split(r"[\s_]+", cleaned)
    parts[0] = parts[0][:1].upper() + parts[0][1:]  # "a minor", "f#m": typed, not a file name
    key = key_from_token(parts[0], parts[1] if len(parts) > 1 else None, loose=True)
    if key is None or len(parts) > 2:
        raise ValueError(f"{text!r} is not a key: write it as \"A minor\", \"Am\", \"F# major\" "
                         "or \"Bb\"")
    return key


def check_tempo(bpm: float) -> float:
    if not math.isfinite(bpm) or not TEMPO_MIN <= bpm <= TEMPO_MAX:
        raise ValueError(f"a tempo of {bpm:g} BPM is outside {TEMPO_MIN:g}-{TEMPO_MAX:g} BPM")
    return float(bpm)


def tempo_speed(file_bpm: float, project_bpm: float) -> float:
    """The playback speed that fits a loop of `file_bpm` to `project_bpm`: of the readings
    x, 2x and x/2 of the loop's tempo, the one that needs the least stretching."""
    if file_bpm <= 0 or project_bpm <= 0:
        return 1.0
    candidates = (project_bpm / file_bpm, project_bpm / (2 * file_bpm),
                  2 * project_bpm / file_bpm)
    return min(candidates, key=lambda s: abs(math.log(s)))


def _relative_root(pitch: int, minor: bool, to_minor: bool) -> int:
    """The root of the same notes in the other mode (A minor <-> C major)."""
    if minor == to_minor:
        return pitch
    return (pitch + 3) % 12 if minor else (pitch + 9) % 12


def key_shift(file_key: str, project_key: str) -> int:
    """Semitones from `file_key` to `project_key` by the shortest path, -6..+5, relative
    major/minor being the same notes."""
    src, src_minor = key_pitch_class(file_key)
    dst, dst_minor = key_pitch_class(project_key)
    src = _relative_root(src, src_minor, dst_minor)
    return (dst - src + 6) % 12 - 6


def note_shift(file_key: str, project_key: str) -> int:
    """Semitones that put a one-shot's note (its key's root) on the nearest note of the
    project's scale; 0 when it already is one. Ties go to the chord tone, then downwards."""
    note, _ = key_pitch_class(file_key)
    root, minor = key_pitch_class(project_key)
    scale = MINOR_SCALE if minor else MAJOR_SCALE

    def rank(shift: int) -> tuple[int, int, int]:
        degree = (note + shift - root) % 12
        return abs(shift), CHORD_TONES.get(degree, 3), shift

    fitting = [s for s in range(-6, 7) if (note + s - root) % 12 in scale]
    return min(fitting, key=rank)


def plan_for(kind: str | None, file_bpm: float | None, file_key: str | None,
             project_bpm: float | None, project_key: str | None,
             tempo_lock: bool, key_lock: bool) -> RenderPlan:
    """The plan for one file; the identity when a lock is off or a fact is missing."""
    loop = kind == "loop"
    speed, tempo = 1.0, None
    if tempo_lock and loop and file_bpm and project_bpm:
        speed, tempo = tempo_speed(file_bpm, project_bpm), project_bpm
    semitones, key = 0, None
    if key_lock and project_key and file_key:
        try:
            semitones = key_shift(file_key, project_key) if loop else note_shift(file_key,
                                                                                   project_key)
            key = project_key
        except ValueError:  # a key this version does not read: play it unshifted
            semitones = 0
    return RenderPlan(round(speed, 6), semitones, tempo, key)


def rendered_name(stem: str, plan: RenderPlan) -> str:
    """"kick_loop" -> "kick_loop 120bpm Am.wav": what a producer sees in the DAW."""
    parts = [stem]
    if plan.tempo is not None:
        parts.append(f"{plan.tempo:g}bpm")
    if plan.key is not None:
        parts.append(format_key_short(plan.key))
    name = " ".join(parts)
    return re.sub(r'[\\/:*?"<>|\x00-\x1f]', "_", name) + ".wav"


def key_choices() -> list[str]:
    """The keys in the order a key box lists them: C major, C minor, C# major, ..."""
    return [canonical_key(pc, minor) for pc in range(len(PITCH_CLASSES)) for minor in (False, True)]


class TapTempo:
    """Tempo from taps: the last few intervals, a pause of 2 s starting afresh."""

    def __init__(self, keep: int = 8, reset_after: float = 2.0) -> None:
        self.keep, self.reset_after = keep, reset_after
        self.times: list[float] = []

    def tap(self, at: float) -> float | None:
        """Record a tap at `at` seconds; the tempo once there are two taps, else None."""
        if self.times and at - self.times[-1] > self.reset_after:
            self.times = []
        self.times = (self.times + [at])[-self.keep:]
        if len(self.times) < 2:
            return None
        # The slope of tap time against tap number: steadier than the mean of the intervals
        # when one tap is late and the next early.
        n = len(self.times)
        mean_i, mean_t = (n - 1) / 2, sum(self.times) / n
        slope = sum((i - mean_i) * (t - mean_t) for i, t in enumerate(self.times)) \
            / sum((i - mean_i) ** 2 for i in range(n))
        return round(min(TEMPO_MAX, max(TEMPO_MIN, 60.0 / slope)), 2) if slope > 0 else None
