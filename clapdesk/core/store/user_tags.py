"""Tags the producer writes or corrects: their own tags, and automatic or name tags they hide.

Indexing stores automatic tags (source 'auto') and name tags ('folder', 'filename'); each
source is replaced only by its own writer, so the user's tags (source 'user') survive a
re-index, and a hidden automatic tag stays hidden when indexing suggests it again.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from clapdesk.core.analysis.names import name_tokens
from clapdesk.core.store.catalog import Catalog

USER = "user"
_SPACES = re.compile(r"\s+")
_WORD = re.compile(r"[\w'&+#.-]+")  # a query word: letters, digits and "lo-fi", "r&b", "c#"


def normalise_tag(tag: str) -> str:
    """"  Dusty   Drums " -> "dusty drums": how every user tag is stored and compared."""
    return _SPACES.sub(" ", tag.strip().lower())


def normalise_tags(tags: Iterable[str]) -> list[str]:
    """Normalised, without empties or repeats, in the order given."""
    out: list[str] = []
    for tag in tags:
        clean = normalise_tag(tag)
        if clean and clean not in out:
            out.append(clean)
    return out


def parse_tag_text(text: str) -> list[str]:
    """A comma-separated field ("dusty, lo-fi kick,") as normalised tags."""
    return normalise_tags(text.split(","))


def user_tags(catalog: Catalog, file_ids: Sequence[int]) -> dict[int, list[str]]:
    """file id -> the user's own tags, in the order they were written."""
    out: dict[int, list[str]] = {int(i): [] for i in file_ids}
    for fid, tag in catalog.tags_from_source(file_ids, USER):
        out[fid].append(tag)
    return out


def other_tags(catalog: Catalog, file_ids: Sequence[int]) -> dict[int, list[tuple[str, bool]]]:
    """file id -> [(tag, hidden)] of automatic and name tags, de-duplicated, best score first.

    A tag is hidden when every row of it (in any non-user source) is hidden.
    """
    out: dict[int, list[tuple[str, bool]]] = {int(i): [] for i in file_ids}
    for fid, tag, hidden in catalog.tags_not_from_source(file_ids, USER):
        out[fid].append((tag, hidden))
    return out


def set_user_tags(catalog: Catalog, file_ids: Iterable[int], tags: Iterable[str]) -> list[str]:
    """Replace the user tags of each file with `tags` (normalised); returns what was stored."""
    clean = normalise_tags(tags)
    with catalog.transaction():
        for file_id in file_ids:
            catalog.set_tags(int(file_id), [(t, 1.0) for t in clean], USER)
    return clean


def add_user_tag(catalog: Catalog, file_ids: Iterable[int], tag: str) -> str:
    """Add one user tag to each file, keeping the tags it has; returns the normalised tag."""
    clean = normalise_tag(tag)
    if not clean:
        return clean
    with catalog.transaction():
        catalog.add_tag(file_ids, clean, USER)
    return clean


def hide_tag(catalog: Catalog, file_id: int, tag: str, hidden: bool = True) -> int:
    """Hide (or show again) an automatic or name tag of one file; returns the rows changed.

    User tags are never hidden: to drop one, set the user tags without it.
    """
    with catalog.transaction():
        return catalog.set_tag_hidden(file_id, normalise_tag(tag), hidden, except_source=USER)


def tags_for_display(catalog: Catalog, file_ids: Sequence[int]) -> dict[int, list[str]]:
    """file id -> visible tags: the user's first, then the rest, hidden ones left out, unique."""
    out: dict[int, list[str]] = {}
    # tags_of already lists user tags first, in the order written, and leaves hidden ones out.
    for file_id, tags in catalog.tags_of([int(i) for i in file_ids]).items():
        out[int(file_id)] = list(dict.fromkeys(tag for tag, _, _ in tags))
    return out


def files_with_user_tags(catalog: Catalog, tags: Iterable[str]) -> dict[int, set[str]]:
    """file id -> which of `tags` the user gave it."""
    return catalog.files_with_tags(tags, USER)


def query_tag_candidates(text: str) -> set[str]:
    """The tags a query could name: its words (as typed and as name tokens), neighbouring word
    pairs, and the whole query, so that "dusty" and "dusty drums" both find "dusty drums"."""
    words = [w.strip(".'") for w in _WORD.findall(text.lower()) if w.strip(".'")]
    out = set(words) | set(name_tokens(text))
    out |= {f"{a} {b}" for a, b in zip(words, words[1:])}
    if words:
        out.add(" ".join(words))
    return out


def all_tags(catalog: Catalog, limit: int = 5000) -> list[str]:
    """Every tag in the library, most used first (for completion)."""
    return catalog.tags_by_use(limit)

