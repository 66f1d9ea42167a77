"""Finding files the model has not heard yet, by what their names, folders and tags say.

During a first indexing run most of the library is catalogued (index/first_catalogue.py) long
before the model has embedded it. A text query then still finds "kick 808" or "vocal chop" in
those files: every query word is looked up among the files' name and folder words (and any tag
they have), a file ranks by how many of the query's words it carries, and tempo, key, kind and
length constraints apply as usual (from the name and header until the analysis replaces them).
Such results are marked not yet listened to; they move into the sound ranking as their vectors
land. While the model itself is still loading, the whole library is searched this way.
"""

from __future__ import annotations

import math

from clapdesk.core.analysis.names import name_tokens, singular
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.not_heard import files_named

# Words that say nothing about which file is meant ("a sound of a warm pad").
STOP_WORDS = frozenset({"a", "an", "the", "of", "with", "and", "or", "in", "at", "for", "to",
                        "sound", "sounds", "sample", "samples", "some", "like", "that", "is"})


def query_words(text: str) -> list[str]:
    """The query's words as name tokens (normalised, singular), without filler words."""
    words: list[str] = []
    for token in name_tokens(text):
        for word in (token, singular(token)):
            if word not in STOP_WORDS and word not in words:
                words.append(word)
    return words


def by_name(catalog: Catalog, text: str, not_heard_by: str | None) -> list[tuple[int, float]]:
    """(file id, share of the query's words it carries), best first, only files that carry at
    least one; only files without a vector for `not_heard_by` when given."""
    words = query_words(text)
    if not words:
        return []
    # A word and its singular count once: "chops" and "chop" are one query word.
    groups = {w: {w, singular(w)} for w in name_tokens(text) if w not in STOP_WORDS}
    if not groups:
        return []
    found = files_named(catalog, words, not_heard_by)
    scored = []
    for file_id, tags in found.items():
        carried = sum(1 for forms in groups.values() if forms & tags)
        if carried:
            scored.append((file_id, carried / len(groups)))
    scored.sort(key=lambda pair: (-pair[1], pair[0]))
    return scored


def share_of_results(k: int, not_heard: int, total: int, heard_hits: int = 0) -> int:
    """How many of k places files not heard yet may take: their share of the library, at
    least one (so a name match always shows), at most k, and at most k - 1 when the sound
    ranking has hits. Early in a first run nearly every file waits (1,996 of 2,000): rounded
    up, their share was all 50 places, so what the model had heard never showed until 2 % of
    the library was in."""
    if not_heard <= 0 or total <= 0 or k <= 0:
        return 0
    most = k - 1 if heard_hits > 0 and k > 1 else k
    return max(1, min(most, math.ceil(k * not_heard / total)))
