"""Search: text or a sound in, ranked files out, honouring tempo, key, type and length.

CLAP ranks by sound; what CLAP cannot count (tempo, key, length) is parsed out of the query and
applied as constraints. The ANN index answers first; when its candidates hold too few files
that meet the constraints, an exact search over the catalog's matching files takes over, so a
query never comes back empty while matching files exist.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from clapdesk.core.search import unheard
from clapdesk.core.search.match import query_distribution, readable_match
from clapdesk.core.search.query import ParsedQuery, parse_query
from clapdesk.core.store.catalog import FileRecord, display_path, prefix_range
from clapdesk.core.store.not_heard import count_not_heard, not_heard_among, without_any_vector
from clapdesk.core.store.user_tags import (
    files_with_user_tags,
    query_tag_candidates,
    tags_for_display,
)

if TYPE_CHECKING:  # the library is the face above this package; only its type is named here
    from clapdesk.core.library import Library

ANN_OVERFETCH = 10  # candidates per wanted result when constraints must be checked
ANN_MIN_CANDIDATES = 400
# Past this many ANN candidates, matching files are rare enough that scoring them all is cheaper.
ANN_MAX_CANDIDATES = 6400
# Added to the cosine of a file whose own user tag the query names: the producer's word about a
# sound outranks CLAP's guess among close matches, without lifting a sound that is far off.
USER_TAG_BOOST = 0.05


@dataclass(frozen=True)
class Filters:
    """Constraints that come from the user interface rather than the query text."""

    folder: str | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    formats: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.folder or self.formats or self.min_duration is not None
                    or self.max_duration is not None)


@dataclass
class Hit:
    file: FileRecord
    score: float  # what results are ranked by: the cosine, plus USER_TAG_BOOST when tagged
    note: str | None = None  # "half" or "double" when only half/double time matches
    tags: list[str] = field(default_factory=list)
    cosine: float | None = None  # the model's raw cosine (None when nothing was compared)
    match: float | None = None  # 0-100, what a person reads (see match.py)
    # False while the model has no vector for the file (a first indexing run is still going):
    # it was found by its name, tags, tempo or key, and is shown as not yet listened to.
    heard: bool = True

    @property
    def match_text(self) -> str:
        """"86 %", or "" where there is no match to show."""
        return "" if self.match is None else f"{self.match:.0f} %"

    def to_json(self) -> dict[str, object]:
        f = self.file
        return {
            "path": display_path(f.path),
            "match": None if self.match is None else round(self.match, 1),
            "cosine": None if self.cosine is None else round(self.cosine, 4),
            "duration": None if f.duration is None else round(f.duration, 3),
            "bpm": None if f.bpm is None else round(f.bpm, 1), "bpm_source": f.bpm_source,
            "key": f.key, "key_source": f.key_source, "kind": f.kind,
            "tempo_match": self.note, "format": f.format, "sample_rate": f.sample_rate,
            "channels": f.channels, "tags": self.tags, "heard": self.heard,
        }


@dataclass
class SearchResponse:
    hits: list[Hit]
    query: ParsedQuery | None = None
    exact: bool = False  # True when the exact filtered search was needed
    # The model was still loading: every result was found by name, tags and constraints. The
    # window searches again once it is ready.
    model_loading: bool = False
    not_heard: int = 0  # files in the library the model has not heard yet

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"results": [h.to_json() for h in self.hits]}
        if self.model_loading or self.not_heard:
            out["model_loading"] = self.model_loading
            out["not_heard"] = self.not_heard
        if self.query is not None:
            out["query"] = self.query.to_json()
        return out


def search_text(library: Library, text: str, k: int = 50, filters: Filters | None = None,
                parsed: ParsedQuery | None = None) -> SearchResponse:
    """Natural language to the best k files. `parsed` lets the GUI pass a query with chips removed."""
    parsed = parsed or parse_query(text)
    filters = filters or Filters()
    vector = None
    loading = library.model_loading  # the index and the model key may not be there yet
    if parsed.text and not loading:
        embedder = library.embedder()
        embedder.refuse_text_search()  # an untrained text tower: one plain line, not noise
        vector = embedder.embed_text([parsed.text])[0]
    waiting = _not_heard(library)
    if loading:
        # No model yet (an indexing run is loading it): names, tags and constraints answer now.
        hits, exact = _by_name(library, parsed, filters, k, set(), heard_too=True), True
    else:
        tagged = _user_tagged(library, parsed, vector)
        hits, exact = _rank(library, vector, k, parsed, filters, set(), tagged)
        _readable(library, vector, hits, tagged)
        if waiting and vector is not None:
            hits = _with_not_heard(library, hits, parsed, filters, k, waiting)
    _mark_not_heard(library, hits, waiting)
    return SearchResponse(hits, parsed, exact, model_loading=loading, not_heard=waiting)


def _not_heard(library: Library) -> int:
    """Files without a vector yet; the exact count is asked only when the index holds fewer
    vectors than the catalog has files (the usual case, a library fully indexed, pays a COUNT)."""
    key = library.model_key_if_known
    if key is None:  # the model is being resolved (its weights hashed): any model's vectors
        return count_not_heard(library.catalog, None)
    if len(library.vector_index()) >= library.catalog.count_files():
        return 0
    return count_not_heard(library.catalog, key)


def _by_name(library: Library, parsed: ParsedQuery, filters: Filters, k: int,
             exclude: set[int], heard_too: bool) -> list[Hit]:
    """Files whose names, folders or tags carry the query's words, meeting its constraints;
    with `heard_too` every file, else only those the model has not heard yet."""
    if not parsed.text:  # constraints alone: every matching file, by path
        ids = _matching_ids(library, parsed, filters, exclude)
        paths = {r.id: r.path for r in library.catalog.files(ids)}
        return _accepted(library, [(i, 0.0) for i in sorted(paths, key=paths.__getitem__)],
                         parsed, filters, k)
    scored = unheard.by_name(library.catalog, parsed.text,
                             None if heard_too else library.model_key)
    if parsed.has_constraints or filters.active:
        allowed = set(_matching_ids(library, parsed, filters, exclude))
        scored = [(i, s) for i, s in scored if i in allowed]
    hits = _accepted(library, [(i, s) for i, s in scored if i not in exclude], parsed, filters, k)
    for hit in hits:
        hit.score = 0.0  # no sound score: the order is the share of the query's words named
    return hits


def _with_not_heard(library: Library, hits: list[Hit], parsed: ParsedQuery, filters: Filters,
                    k: int, waiting: int) -> list[Hit]:
    """The sound ranking, with the files not heard yet that the query names after it: they take
    up to their share of the library's places (see unheard.share_of_results)."""
    named = _by_name(library, parsed, filters, k, {h.file.id for h in hits}, heard_too=False)
    if not named:
        return hits
    share = unheard.share_of_results(k, waiting, max(waiting + len(library.vector_index()), 1),
                                     heard_hits=len(hits))
    named = named[:share]
    return hits[: max(0, k - len(named))] + named


def _mark_not_heard(library: Library, hits: list[Hit], waiting: int) -> None:
    if not waiting or not hits:
        return
    ids, key = [h.file.id for h in hits], library.model_key_if_known
    missing = (not_heard_among(library.catalog, key, ids) if key is not None
               else without_any_vector(library.catalog, ids))
    for hit in hits:
        if hit.file.id in missing:
            hit.heard = False
            hit.match = None


def search_similar(library: Library, path: str, k: int = 50, filters: Filters | None = None,
                   text: str = "", words: str = "", amount: float = 0.5,
                   aspect: str | None = None) -> SearchResponse:
    """Sound-alikes of a file, in the library or not; `text` adds constraints ("at 120 BPM"),
    `words` steer by `amount` and `aspect` ranks by timbre, pitch or rhythm (sound_query.py)."""
    from clapdesk.core.search.sound_query import from_file, search_sound

    return search_sound(library, from_file(library, path), k, filters, words, amount, aspect,
                        where=text)


def _user_tagged(library: Library, parsed: ParsedQuery, vector: np.ndarray | None
                 ) -> dict[int, set[str]]:
    """Files whose own user tag the query names (they get USER_TAG_BOOST), asked once a query:
    on a large catalog this is the query's most costly catalog read."""
    if not parsed.text or vector is None:
        return {}
    return files_with_user_tags(library.catalog, query_tag_candidates(parsed.text))


def _readable(library: Library, vector: np.ndarray | None, hits: list[Hit],
              tagged: dict[int, set[str]]) -> None:
    """Fill in each hit's raw cosine and its calibrated match (see match.py)."""
    if vector is None or not hits:
        return
    distribution = query_distribution(library, vector)
    for hit in hits:
        hit.cosine = hit.score - USER_TAG_BOOST if hit.file.id in tagged else hit.score
        if distribution is not None:
            # The ranking score, boost included, so the figures fall in the order shown.
            hit.match = readable_match(hit.score, *distribution)


def _rank(library: Library, vector: np.ndarray | None, k: int, parsed: ParsedQuery,
          filters: Filters, exclude: set[int], tagged: dict[int, set[str]]) -> tuple[list[Hit], bool]:
    index = library.vector_index()
    constrained = parsed.has_constraints or filters.active
    if vector is not None and len(index):
        wanted = k + len(exclude)
        fetch = max(wanted * ANN_OVERFETCH, ANN_MIN_CANDIDATES) if constrained else wanted
        while True:
            candidates = [(i, s) for i, s in index.query(vector, fetch) if i not in exclude]
            if tagged:
                candidates = _boost_user_tagged(library, vector, candidates, tagged, exclude)
            hits = _accepted(library, candidates, parsed, filters, k)
            exhausted = fetch >= len(index)
            if len(hits) >= k or not constrained or exhausted:
                return hits, False
            if fetch >= ANN_MAX_CANDIDATES:
                break  # matching files are rare: the exact search below is now the cheaper way
            fetch = min(fetch * 4, ANN_MAX_CANDIDATES, len(index))
    # Exact search over every file that meets the constraints SQL can check.
    ids = _matching_ids(library, parsed, filters, exclude)
    if vector is None:
        paths = {r.id: r.path for r in library.catalog.files(ids)}
        scored = [(i, 0.0) for i in sorted(paths, key=paths.__getitem__)]
    else:
        found, matrix = library.catalog.vectors(library.model_key, ids)
        scores = matrix @ vector if len(found) else np.zeros(0, np.float32)
        scored = [(int(found[j]), float(scores[j])) for j in np.argsort(-scores)]
        if tagged:
            scored = _boost_user_tagged(library, vector, scored, tagged, exclude, join=False)
    return _accepted(library, scored, parsed, filters, k), True


def _accepted(library: Library, scored: list[tuple[int, float]], parsed: ParsedQuery,
              filters: Filters, k: int) -> list[Hit]:
    """The first k scored files that meet every constraint. Records and tags are read in
    slices, best first, so a long candidate list costs only as much as it takes to find k."""
    hits: list[Hit] = []
    step = max(4 * k, 200)
    for at in range(0, len(scored), step):
        chunk = scored[at: at + step]
        ids = [i for i, _ in chunk]
        records = {r.id: r for r in library.catalog.files(ids)}
        tags = tags_for_display(library.catalog, ids)
        for file_id, score in chunk:
            record = records.get(file_id)
            if record is None or not _meets_filters(record, filters):
                continue
            words = tags.get(file_id, [])
            text_fields = " ".join([os.path.basename(record.path), *words])
            ok, note = parsed.accepts(record.bpm, record.key, record.kind, record.duration,
                                      text_fields)
            if ok:
                hits.append(Hit(record, score, note, words))
                if len(hits) >= k:
                    return hits
    return hits


def _boost_user_tagged(library: Library, vector: np.ndarray, scored: list[tuple[int, float]],
                       tagged: dict[int, set[str]], exclude: set[int], join: bool = True
                       ) -> list[tuple[int, float]]:
    """Lift files whose user tags the query names, re-sorted. With `join`, tagged files the
    ANN did not return are scored exactly and join in, so a tag works beyond the nearest k."""
    have = {i for i, _ in scored}
    missing = [i for i in tagged if join and i not in have and i not in exclude]
    extra: list[tuple[int, float]] = []
    if missing:
        ids, matrix = library.catalog.vectors(library.model_key, missing)
        if len(ids):
            extra = [(int(i), float(s)) for i, s in zip(ids, matrix @ vector)]
    boosted = [(i, s + USER_TAG_BOOST if i in tagged else s) for i, s in [*scored, *extra]]
    return sorted(boosted, key=lambda pair: -pair[1])


def _meets_filters(record: FileRecord, filters: Filters) -> bool:
    if filters.folder:
        low, high = prefix_range(filters.folder)
        raw = os.fsencode(record.path)
        if not (low <= raw < high):
            return False
    if filters.formats and (record.format or "").upper() not in filters.formats:
        return False
    duration = record.duration or 0.0
    if filters.min_duration is not None and duration < filters.min_duration:
        return False
    return filters.max_duration is None or duration <= filters.max_duration


def _matching_ids(library: Library, parsed: ParsedQuery, filters: Filters,
                  exclude: set[int]) -> list[int]:
    """Narrow with SQL what SQL can check; `_accepted` checks the rest exactly."""
    bpm_between = None
    if parsed.has_bpm and parsed.bpm_min is not None and parsed.bpm_max is not None:
        # The range itself, or half/double time (bpm_match decides which counts).
        bpm_between = (parsed.bpm_min, parsed.bpm_max)
    low = max(v for v in (parsed.duration_min, filters.min_duration, 0.0) if v is not None)
    highs = [v for v in (parsed.duration_max, filters.max_duration) if v is not None]
    ids = library.catalog.matching_file_ids(
        folder=filters.folder, kind=parsed.kind, key=parsed.key, needs_bpm=parsed.has_bpm,
        bpm_between=bpm_between, min_duration=low if low > 0 else None,
        max_duration=min(highs) if highs else None)
    return [i for i in ids if i not in exclude]
