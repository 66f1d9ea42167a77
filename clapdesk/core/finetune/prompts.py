"""From a library's tags to the texts a fine-tuning run pairs with its sounds.

Tags come from folders, file names, the user and an optional CSV. Each sample gets several
texts built from varied templates ("a kick one-shot", "deep kick sample", "bass loop at 120
BPM in A minor"; never a pack's name, which a pack it never saw cannot have): varied phrasing is what lets a fine-tuned CLAP understand queries worded in
ways the templates never used. Every text remembers which tags it names, so the loss can treat
every sample carrying those tags as a match.

Pure functions apart from reading the CSV; no torch.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from clapdesk.core.analysis.names import INSTRUMENT_NUMBERS, name_tokens

TAG_SOURCES = ("folder", "filename", "user", "csv")
DEFAULT_TAG_SOURCES = ("folder", "filename", "user")
# A tag on more than this share of the files says nothing that tells them apart ("samples",
# the label's name); a tag on fewer than MIN_FILES_PER_TAG files cannot be learned from.
MAX_TAG_SHARE = 0.5
MIN_FILES_PER_TAG = 2
TEXTS_PER_SAMPLE = 4
MAX_TEXTS = 256  # different texts per run: each is a pass through the text encoder

_SINGLE_TEMPLATES = ("{t}", "a {t} sound", "the sound of a {t}", "{t} sample", "a {t}")
_KIND_TEMPLATES = ("a {t} {kind}", "{t} {kind}")
_MUSIC_TEMPLATES = ("{t} at {bpm} BPM", "{t} in {key}", "{t} at {bpm} BPM in {key}")
log = logging.getLogger(__name__)
_CSV_SPLIT_RE = re.compile(r"[;|,]+")
# csv's default limit of 128 KiB per field made one long notes column reject the whole file;
# a field may be this long, and a tag longer than _CSV_TAG_CHARS is skipped, not taught.
_CSV_FIELD_BYTES = 64 << 20
_CSV_TAG_CHARS = 200


def is_splice_path(path: str) -> bool:
    """True inside a Splice downloads folder: Splice's licence forbids training AI on its sounds."""
    parts = os.path.normpath(path).split(os.sep)
    return any("splice" in part.lower() for part in parts[:-1])


def pack_of(path: str, root: str) -> str:
    """The first folder level under the library root: the pack a sample came in."""
    relative = os.path.relpath(path, root) if root else os.path.basename(path)
    parts = relative.split(os.sep)
    if len(parts) < 2 or parts[0] == "..":
        return ""
    return parts[0]


def read_tags_csv(csv_path: str) -> dict[str, list[str]]:
    """`path,tags` rows to absolute path -> tags. Tags may be split by ';', '|' or further columns.

    Relative paths are taken relative to the CSV's folder, where such a file usually lives.
    """
    base = os.path.dirname(os.path.abspath(csv_path))
    out: dict[str, list[str]] = {}
    if csv.field_size_limit() < _CSV_FIELD_BYTES:
        csv.field_size_limit(_CSV_FIELD_BYTES)
    with open(csv_path, newline="", encoding="utf-8-sig") as handle:
        for row in csv.reader(handle):
            if not row or not row[0].strip() or row[0].strip().lower() == "path":
                continue
            path = os.path.abspath(os.path.join(base, os.path.expanduser(row[0].strip())))
            tags = out.setdefault(path, [])
            for cell in row[1:]:
                for piece in _CSV_SPLIT_RE.split(cell):
                    tag = " ".join(piece.lower().split())
                    if len(tag) > _CSV_TAG_CHARS:
                        log.warning("%s: a tag of %d characters for %s was skipped",
                                    csv_path, len(tag), row[0].strip()[:200])
                        continue
                    if tag and tag not in tags:
                        tags.append(tag)
    return out


@dataclass
class SampleTags:
    """One sample with everything its texts can be built from."""

    file_id: int
    path: str
    pack: str
    tags: list[str]  # in order of trust: user, csv, filename, folder
    bpm: float | None = None
    key: str | None = None
    kind: str | None = None
    splice: bool = False
    own_tags: frozenset[str] = frozenset()  # the user's (in the app or a CSV): always taught


@dataclass
class TextPair:
    """A text for a sample and the vocabulary tags the text names."""

    file_id: int
    text: str
    tags: frozenset[str]


@dataclass
class Vocabulary:
    tags: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    dropped_common: list[str] = field(default_factory=list)  # on too many files to mean anything
    # Words not taught, with the reason in plain words; the user may add any of them back.
    excluded: dict[str, str] = field(default_factory=dict)

    def index(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tags)}


def merge_tags(by_source: dict[str, Iterable[str]], sources: Sequence[str]) -> list[str]:
    """Tags of the chosen sources, most trusted first, each once; multi-word tags kept whole."""
    out: list[str] = []
    for source in ("user", "csv", "filename", "folder"):
        if source not in sources:
            continue
        for tag in by_source.get(source, ()):
            tag = " ".join(str(tag).lower().split())
            if tag and tag not in out:
                out.append(tag)
    return out


def is_code(tag: str) -> bool:
    """Numbers and codes ("03", "v2", "bja01") name a take or a catalogue, not a sound;
    drum-machine numbers ("808") do describe one."""
    return any(ch.isdigit() for ch in tag) and not set(tag.split()) <= INSTRUMENT_NUMBERS


def pack_words(pack: str) -> set[str]:
    """The words of a pack's name, as folder tags would carry them."""
    return set(name_tokens(pack)) | {pack.lower()} if pack else set()


def strip_pack_words(samples: Sequence[SampleTags], keep: Iterable[str] = ()
                     ) -> tuple[list[SampleTags], set[str]]:
    """Samples without the words of their own pack's name (pack and author names: "millo",
    "bja"): a pack it never saw cannot teach them, so they only blur the figures. The user's
    own tags and the words in `keep` stay. Returns the samples and the words taken away."""
    kept = set(keep)
    out: list[SampleTags] = []
    stripped: set[str] = set()
    for s in samples:
        words = pack_words(s.pack) - kept - s.own_tags
        gone = words.intersection(s.tags)
        if gone:
            stripped |= gone
            s = replace(s, tags=[t for t in s.tags if t not in gone])
        out.append(s)
    return out, stripped


def choose_vocabulary(samples: Sequence[SampleTags], by_pack: bool = True,
                      keep: Iterable[str] = (), pack_names: Iterable[str] = (),
                      max_share: float = MAX_TAG_SHARE,
                      min_files: int = MIN_FILES_PER_TAG) -> Vocabulary:
    """The words worth teaching: words that describe sounds, on at least `min_files` files
    and on no more than `max_share` of them.

    With `by_pack`, a word found in a single pack is not taught: the packs it never saw, where
    it is judged, cannot have it. Numbers and codes are not taught either. The user's own tags
    and the words in `keep` skip those two rules (the user knows what they mean).
    `pack_names` are words already taken off their own packs (see strip_pack_words); they are
    listed as excluded when nothing of them is left.
    """
    counts = Counter(t for s in samples for t in set(s.tags))
    packs: dict[str, set[str]] = {}
    for s in samples:
        for t in s.tags:
            packs.setdefault(t, set()).add(s.pack)
    trusted = set(keep) | {t for s in samples for t in s.own_tags}
    limit = max(min_files, int(max_share * len(samples)))
    kept: list[str] = []
    common: list[str] = []
    excluded: dict[str, str] = {}
    for tag in sorted(counts):
        n = counts[tag]
        if n < min_files:
            excluded[tag] = f"on only {n} file" + ("" if n == 1 else "s")
        elif n > limit:
            common.append(tag)
            excluded[tag] = f"on {n} of {len(samples)} files: too common to tell sounds apart"
        elif tag in trusted:
            kept.append(tag)
        elif is_code(tag):
            excluded[tag] = "a number or code"
        elif by_pack and len(packs[tag]) < 2:
            excluded[tag] = f"only in the pack '{next(iter(packs[tag])) or 'loose files'}'"
        else:
            kept.append(tag)
    for word in sorted(set(pack_names) - set(counts) - set(keep)):
        excluded[word] = "a pack or author name"
    return Vocabulary(kept, {t: counts[t] for t in kept}, common, excluded)


def _phrase(tags: Sequence[str]) -> str:
    return " ".join(tags)


def texts_for(sample: SampleTags, vocabulary: set[str], rng: random.Random,
              count: int = TEXTS_PER_SAMPLE) -> list[TextPair]:
    """Up to `count` different texts for one sample, each naming at least one vocabulary tag."""
    tags = [t for t in sample.tags if t in vocabulary]
    if not tags:
        return []
    kind = sample.kind if sample.kind in ("loop", "one-shot") else None
    key = sample.key or ""  # "A minor" reads better to a text encoder than "Am"
    candidates: list[tuple[str, tuple[str, ...]]] = []
    for tag in tags[:3]:
        candidates.append((rng.choice(_SINGLE_TEMPLATES).format(t=tag), (tag,)))
    chosen = tuple(tags[:2]) if len(tags) > 1 else (tags[0],)
    if len(chosen) > 1:
        candidates.append((rng.choice(_SINGLE_TEMPLATES).format(t=_phrase(chosen)), chosen))
    if kind:
        candidates.append((rng.choice(_KIND_TEMPLATES).format(t=_phrase(chosen), kind=kind), chosen))
    if sample.bpm and key:
        text = rng.choice(_MUSIC_TEMPLATES).format(t=tags[0], bpm=round(sample.bpm), key=key)
        candidates.append((text, (tags[0],)))
    elif sample.bpm:
        candidates.append((f"{tags[0]} at {round(sample.bpm)} BPM", (tags[0],)))
    seen: set[str] = set()
    pairs: list[TextPair] = []
    # The single-tag texts come first so every tag is taught; the rest are shuffled for variety.
    head, tail = candidates[: min(len(tags), 2)], candidates[min(len(tags), 2):]
    rng.shuffle(tail)
    for text, named in head + tail:
        if text in seen:
            continue
        seen.add(text)
        pairs.append(TextPair(sample.file_id, text, frozenset(named)))
        if len(pairs) >= count:
            break
    return pairs


def build_pairs(samples: Sequence[SampleTags], vocabulary: Vocabulary, seed: int = 0,
                count: int = TEXTS_PER_SAMPLE, max_texts: int = MAX_TEXTS) -> list[TextPair]:
    """Texts for every sample, with at most `max_texts` different texts in all.

    Every different text costs a pass through the text encoder, the slow part of a quick run,
    so past the cap the texts shared by the most samples are kept (the bare tag words always),
    and a sample left without a text gets its first tag's word.
    """
    words = set(vocabulary.tags)
    # A draw per file: one file's tags never change another file's texts.
    pairs = [pair for sample in samples
             for pair in texts_for(sample, words, random.Random(f"{seed}:{sample.file_id}"), count)]
    uses = Counter(p.text for p in pairs)
    if len(uses) <= max_texts:
        return pairs
    keep = set(vocabulary.tags)
    for text, _ in uses.most_common():
        if len(keep) >= max_texts:
            break
        keep.add(text)
    kept = [p for p in pairs if p.text in keep]
    covered = {p.file_id for p in kept}
    for sample in samples:
        tags = [t for t in sample.tags if t in words]
        if sample.file_id not in covered and tags:
            kept.append(TextPair(sample.file_id, tags[0], frozenset({tags[0]})))
    return kept


def query_text(tag: str) -> str:
    """How evaluation asks for a tag: the bare word, as a producer types it in the search box."""
    return tag
