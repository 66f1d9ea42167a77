"""Similar in timbre, in pitch or in rhythm: CLAP's closeness blended with what analysis stored.

The CLAP cosine says "sounds alike" as a whole. An aspect re-ranks the nearest candidates by
a blend of that cosine (scaled to 0-1 over the candidates, so its spread does not drown the
rest) and closeness in the facts the catalog already holds for every file:

- timbre: the cosine 0.5, brightness (spectral centroid, 0-1) 0.3, loudness (LUFS) 0.2;
- pitch:  the cosine 0.3, key 0.7: the share of scale notes two keys have in common (the
  same key 1, relative major/minor 6/7 with a different tonic, a fifth apart 6/7 x 0.85 ...);
- rhythm: the cosine 0.3, tempo 0.4 (log-ratio, half and double time count at 0.8), onset rate
  (onsets per second, log-ratio) 0.2, loop/one-shot 0.1.

A fact the query sound lacks (a drum hit has no key) gives its weight back to the cosine; a
candidate that lacks it scores 0 on it. Each hit's `match` is the blend in per cent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from clapdesk.core.analysis import names

if TYPE_CHECKING:
    from clapdesk.core.search.ranking import Hit

ASPECTS = ("timbre", "pitch", "rhythm")
BRIGHTNESS_SCALE = 0.15  # a brightness difference of this much: closeness 1/e
LOUDNESS_SCALE_DB = 6.0
TEMPO_SCALE = 0.08  # log2 ratio: 4 % apart is closeness 0.7, 10 % apart 0.25
ONSET_SCALE = 0.5  # log2 ratio: 40 % more onsets per second is closeness 1/e
HALF_DOUBLE_CREDIT = 0.8
WEIGHTS: dict[str, dict[str, float]] = {
    "timbre": {"cosine": 0.5, "brightness": 0.3, "loudness": 0.2},
    "pitch": {"cosine": 0.3, "key": 0.7},
    "rhythm": {"cosine": 0.3, "tempo": 0.4, "onsets": 0.2, "kind": 0.1},
}
_MAJOR_STEPS = (0, 2, 4, 5, 7, 9, 11)
_MINOR_STEPS = (0, 2, 3, 5, 7, 8, 10)


@dataclass(frozen=True)
class Facts:
    """What analysis knows of a sound, as the catalog stores it."""

    key: str | None = None
    bpm: float | None = None
    kind: str | None = None
    loudness_db: float | None = None
    brightness: float | None = None
    duration: float | None = None
    onset_rate: float | None = None

    @classmethod
    def of_record(cls, record: Any) -> Facts:
        return cls(record.key, record.bpm, record.kind, record.loudness_db, record.brightness,
                   record.duration, record.onset_rate)

    @classmethod
    def of_analysis(cls, analysis: Any) -> Facts:
        return cls(analysis.key, analysis.bpm, analysis.kind, analysis.loudness_db,
                   analysis.brightness, analysis.duration, analysis.onset_rate)


def scale_notes(key: str | None) -> frozenset[int] | None:
    """The pitch classes of a key's scale ("A minor" -> A B C D E F G), None when unknown."""
    if not key:
        return None
    try:
        tonic, minor = names.key_pitch_class(key)
    except ValueError:
        return None
    return frozenset((tonic + s) % 12 for s in (_MINOR_STEPS if minor else _MAJOR_STEPS))


def key_closeness(a: str | None, b: str | None) -> float | None:
    """1 for the same key, the shared share of scale notes (x 0.85 unless the tonic is the
    same) otherwise; None when `a` is unknown, 0 when only `b` is."""
    notes_a = scale_notes(a)
    if notes_a is None:
        return None
    notes_b = scale_notes(b)
    if notes_b is None:
        return 0.0
    if a == b:
        return 1.0
    shared = len(notes_a & notes_b) / 7.0
    same_tonic = a.split()[0] == b.split()[0]  # type: ignore[union-attr]
    return shared * (1.0 if same_tonic else 0.85)


def tempo_closeness(a: float | None, b: float | None) -> float | None:
    if not a or not math.isfinite(a) or a <= 0:
        return None
    if not b or not math.isfinite(b) or b <= 0:
        return 0.0
    best = 0.0
    for factor, credit in ((1.0, 1.0), (2.0, HALF_DOUBLE_CREDIT), (0.5, HALF_DOUBLE_CREDIT)):
        distance = math.log2(b * factor / a)
        best = max(best, credit * math.exp(-(distance / TEMPO_SCALE) ** 2))
    return best


def onset_closeness(a: float | None, b: float | None) -> float | None:
    """Onsets per second compared as a ratio; a sound without onsets (a pad) is its own kind.
    None where either is unknown: files indexed before the catalog stored onset rates are not
    counted as different, their weight goes to the rest of the blend."""
    if a is None or not math.isfinite(a) or b is None or not math.isfinite(b):
        return None
    if a <= 0 or b <= 0:
        return 1.0 if a <= 0 and b <= 0 else 0.0
    return math.exp(-(math.log2(b / a) / ONSET_SCALE) ** 2)


def _gauss(a: float | None, b: float | None, scale: float) -> float | None:
    if a is None or not math.isfinite(a):
        return None
    if b is None or not math.isfinite(b):
        return 0.0
    return math.exp(-((a - b) / scale) ** 2)


def closeness(query: Facts, other: Facts) -> dict[str, float | None]:
    """Each fact's closeness 0-1 (None where the query sound does not have that fact)."""
    return {
        "brightness": _gauss(query.brightness, other.brightness, BRIGHTNESS_SCALE),
        "loudness": _gauss(query.loudness_db, other.loudness_db, LOUDNESS_SCALE_DB),
        "key": key_closeness(query.key, other.key),
        "tempo": tempo_closeness(query.bpm, other.bpm),
        "onsets": onset_closeness(query.onset_rate, other.onset_rate),
        "kind": None if query.kind is None else float(other.kind == query.kind),
    }


def blend(cosine_scaled: float, query: Facts, other: Facts, aspect: str) -> float:
    """The aspect's score 0-1 for one candidate."""
    facts = closeness(query, other)
    total, weight_sum = 0.0, 0.0
    for name, weight in WEIGHTS[aspect].items():
        value = cosine_scaled if name == "cosine" else facts[name]
        if value is None:
            continue  # the query has no such fact: its weight goes to what it has
        total += weight * value
        weight_sum += weight
    return total / weight_sum if weight_sum else cosine_scaled


def rerank(hits: list[Hit], query: Facts, aspect: str) -> list[Hit]:
    """`hits` (scored by cosine) ordered by the aspect's blend; score and match are the blend."""
    if not hits:
        return hits
    cosines = [h.cosine if h.cosine is not None else h.score for h in hits]
    low, high = min(cosines), max(cosines)
    spread = high - low
    for hit, cosine in zip(hits, cosines):
        scaled = (cosine - low) / spread if spread > 1e-9 else 1.0
        hit.score = blend(scaled, query, Facts.of_record(hit.file), aspect)
        hit.match = 100.0 * hit.score
    return sorted(hits, key=lambda h: -h.score)
