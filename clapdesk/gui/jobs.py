"""What the window runs on the model pool: searches. No Qt in here.

Browsing the catalog (places and the overview) is core/search/browse.py, named here too so the
window reads `jobs.load_place`. Searches run on the model pool and carry a generation number: a
search that is no longer the newest when its turn comes is skipped without touching the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from clapdesk.core.library import Library
from clapdesk.core.search.browse import (  # noqa: F401 - the window's names for browsing
    ALL,
    BROWSE_LIMIT,
    DUPLICATES,
    FAVOURITES,
    FOLDER,
    RECENT,
    Overview,
    load_overview,
    load_place,
)
from clapdesk.core.search.query import ParsedQuery
from clapdesk.core.search.ranking import Filters, SearchResponse, search_text

# Library.vector_index() opens the index lazily; two threads opening it at once would make two.
INDEX_OPEN_LOCK = threading.Lock()


@dataclass
class SearchOutcome:
    generation: int
    response: SearchResponse | None  # None: skipped because a newer search came in
    title: str = ""
    similar_to: str = ""  # the sound's name, for a sound-alike search (sound_search.py)


def open_index(library: Library) -> None:
    # Vectors indexed by this app land in this same index object; no per-search sync needed.
    with INDEX_OPEN_LOCK:
        library.vector_index()


def run_search(library: Library, generation: int, newest: Callable[[], int], text: str,
               parsed: ParsedQuery, k: int, filters: Filters) -> SearchOutcome:
    if generation != newest():
        return SearchOutcome(generation, None)
    open_index(library)
    return SearchOutcome(generation, search_text(library, text, k, filters, parsed), text)
