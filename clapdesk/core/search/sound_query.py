"""Searching with a sound: a file (in the library or not) or a recording, steered by words.

A sound query is made once (decoding and embedding are the costly part) and searched again
as the producer types words, moves the amount slider or picks an aspect.

Steering. Words beside a sound ("darker, more punch, -reverb, at 120 BPM") are read in three
parts: constraints the search box knows (tempo, key, loop/one-shot, length) filter as usual;
the rest is split at commas into phrases, and a phrase after "-", "no", "without" or "less"
pushes away instead of toward ("more punch" is "punch"). The direction is a difference of text
vectors, so it is the same for every sound:

    d = sum over toward-phrases (t(w) - t(n))  -  sum over away-phrases (t(w) - t(n))

with t() the model's unit text vector and n the neutral caption NEUTRAL_CAPTION. The sound's
unit vector q is then turned toward d within the plane of q and d:

    u  = d - (d . q) q, normalised       (the part of d that q does not already point along)
    q' = cos(a) q + sin(a) u,  a = amount * MAX_STEER_DEGREES

so q' stays a unit vector, amount 0 is the sound alone, and each step of the slider turns the
query by the same angle whatever the sound and whatever the words' vectors' lengths.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from clapdesk.core.ingest import audio
from clapdesk.core.ingest.recording import decode_samples
from clapdesk.core.search import aspects
from clapdesk.core.search.query import ParsedQuery, parse_query

if TYPE_CHECKING:
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import Filters, SearchResponse

NEUTRAL_CAPTION = "a sound"
MAX_STEER_DEGREES = 60.0
DEFAULT_AMOUNT = 0.5
_AWAY = re.compile(r"^(?:-|−|no\s+|without\s+|less\s+|not\s+)", re.I)
_TOWARD = re.compile(r"^(?:more\s+|with\s+|\+)", re.I)
_CONSTRAINT_GROUPS = (("bpm", "bpm_min", "bpm_max"), ("key",), ("kind",),
                      ("duration_min", "duration_max"))


@dataclass
class SoundQuery:
    """A sound to search with: its vector and what analysis says of it."""

    name: str  # what the chip and the title show: "kick_07", "your recording (3.2 s)"
    vector: np.ndarray  # unit vector of the library's current model
    facts: aspects.Facts
    path: str | None = None  # the file, when it is one
    file_id: int | None = None  # set when the file is in the library (left out of results)
    seconds_to_make: float = 0.0  # decoding + embedding time, for the figures


@dataclass(frozen=True)
class Steering:
    """What the words beside a sound ask for."""

    toward: tuple[str, ...] = ()
    away: tuple[str, ...] = ()
    constraints: ParsedQuery = field(default_factory=ParsedQuery)

    @property
    def steers(self) -> bool:
        return bool(self.toward or self.away)


def read_words(words: str) -> Steering:
    """Split the words beside a sound into constraints and toward/away phrases."""
    toward: list[str] = []
    away: list[str] = []
    constraints = ParsedQuery()
    for raw in re.split(r"[,;]+", words or ""):
        parsed = parse_query(raw)
        for group in _CONSTRAINT_GROUPS:  # the first phrase that states one decides it
            mine = [getattr(constraints, name) for name in group]
            theirs = [getattr(parsed, name) for name in group]
            if all(v is None for v in mine) and any(v is not None for v in theirs):
                constraints = replace(constraints, **dict(zip(group, theirs)))
        away.extend(w for w in parsed.exclude if w not in away)  # "-reverb" pushes away
        phrase = " ".join(parsed.text.split()).strip(" .")
        if not phrase:
            continue
        target = away if _AWAY.match(phrase) else toward
        phrase = (_AWAY if target is away else _TOWARD).sub("", phrase).strip()
        if phrase and phrase not in target:
            target.append(phrase)
    return Steering(tuple(toward), tuple(away), constraints)


def direction(library: Library, steering: Steering) -> np.ndarray | None:
    """d, the sum of the phrases' differences from the neutral caption (None: no words)."""
    if not steering.steers:
        return None
    embedder = library.embedder()
    embedder.refuse_text_search()  # an untrained text tower would steer at random
    phrases = [*steering.toward, *steering.away]
    vectors = embedder.embed_text([NEUTRAL_CAPTION, *phrases])
    neutral, rest = vectors[0], vectors[1:]
    signs = np.array([1.0] * len(steering.toward) + [-1.0] * len(steering.away), np.float32)
    return ((rest - neutral) * signs[:, None]).sum(axis=0)


def steer(vector: np.ndarray, towards: np.ndarray | None, amount: float) -> np.ndarray:
    """q turned toward d by amount * MAX_STEER_DEGREES (see the module's docstring)."""
    q = np.asarray(vector, np.float64)
    q = q / (np.linalg.norm(q) or 1.0)
    if towards is None or amount <= 0:
        return q.astype(np.float32)
    d = np.asarray(towards, np.float64)
    u = d - float(d @ q) * q
    length = float(np.linalg.norm(u))
    if length <= 1e-5 * float(np.linalg.norm(d)):  # the words point where the sound does
        return q.astype(np.float32)
    angle = math.radians(min(float(amount), 1.0) * MAX_STEER_DEGREES)
    out = math.cos(angle) * q + math.sin(angle) * (u / length)
    return (out / np.linalg.norm(out)).astype(np.float32)


def from_file(library: Library, path: str) -> SoundQuery:
    """A file's sound query: its stored vector when the library has it, else decoded now
    through the indexing path (true rate, soxr to the model's rate) and never added."""
    import time

    started = time.perf_counter()
    name = os.path.splitext(os.path.basename(path))[0]
    record = library.catalog.file_by_path(path)
    if record is not None:
        _, matrix = library.catalog.vectors(library.model_key, [record.id])
        if len(matrix):
            return SoundQuery(name, matrix[0], aspects.Facts.of_record(record), path, record.id,
                              time.perf_counter() - started)
    embedder = library.embedder()
    decoded = audio.decode_for_index(path, embedder.sampling_rate)
    near_name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    return _embedded(library, decoded, name, near_name, path,
                     None if record is None else record.id, started)


def from_samples(library: Library, mono: np.ndarray, rate: int, name: str) -> SoundQuery:
    """A recording's sound query (already trimmed), through the same windows and resampler."""
    import time

    started = time.perf_counter()
    decoded = decode_samples(mono, rate, library.embedder().sampling_rate)
    return _embedded(library, decoded, name, name, None, None, started)


def _embedded(library: Library, decoded: audio.DecodedAudio, name: str, near_name: str,
              path: str | None, file_id: int | None, started: float) -> SoundQuery:
    import time

    embedder = library.embedder()
    vector = embedder.project_audio(embedder.pooled_features([decoded.windows]))[0]
    # Imported here: the analysis brings scipy.signal, half a second the window's start
    # need not pay for a feature used after it.
    from clapdesk.core.analysis.sound import analyse

    analysis = analyse(decoded.analysis, decoded.analysis_rate, name=near_name,
                       total_duration=decoded.info.duration)
    return SoundQuery(name, vector, aspects.Facts.of_analysis(analysis), path, file_id,
                      time.perf_counter() - started)


def search_sound(library: Library, sound: SoundQuery, k: int = 50, filters: Filters | None = None,
                 words: str = "", amount: float = DEFAULT_AMOUNT, aspect: str | None = None,
                 where: str = "") -> SearchResponse:
    """Sound-alikes of `sound`, steered by `words` by `amount` (0-1), ranked for `aspect`
    ("timbre", "pitch", "rhythm" or None for the sound as a whole). Constraints in the words,
    and in `where` (constraints only: its words name user tags, never steer), filter as in a
    text search."""
    from clapdesk.core.search import ranking

    if aspect is not None and aspect not in aspects.ASPECTS:
        raise ValueError(f"unknown aspect {aspect!r}: one of {', '.join(aspects.ASPECTS)}")
    filters = filters or ranking.Filters()
    steering = read_words(words)
    vector = steer(sound.vector, direction(library, steering) if amount > 0 else None, amount)
    parsed = _merged(parse_query(where), steering.constraints)
    tagged = ranking._user_tagged(library, parsed, vector)
    exclude = {sound.file_id} if sound.file_id is not None else set()
    if aspect is None:
        hits, exact = ranking._rank(library, vector, k, parsed, filters, exclude, tagged)
        ranking._readable(library, vector, hits, tagged)
    else:
        wide = max(k * ranking.ANN_OVERFETCH, ranking.ANN_MIN_CANDIDATES)
        hits, exact = ranking._rank(library, vector, wide, parsed, filters, exclude, tagged)
        hits = aspects.rerank(hits, sound.facts, aspect)[:k]
    waiting = ranking._not_heard(library)
    ranking._mark_not_heard(library, hits, waiting)
    return ranking.SearchResponse(hits, parsed, exact, not_heard=waiting)


def _merged(base: ParsedQuery, extra: ParsedQuery) -> ParsedQuery:
    """`base` with the constraints it does not state taken from `extra`."""
    for group in _CONSTRAINT_GROUPS:
        if all(getattr(base, name) is None for name in group):
            base = replace(base, **{name: getattr(extra, name) for name in group})
    return base
