"""The data side of fine-tuning: options, the tagged samples, the held-out split and the figures.

Kept apart from the training loop so the wizard can preview what will be trained on, and the
figures can be computed the same way before and after, without importing the training code.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from clapdesk.core.finetune.prompts import (
    DEFAULT_TAG_SOURCES,
    TAG_SOURCES,
    SampleTags,
    TextPair,
    Vocabulary,
    build_pairs,
    choose_vocabulary,
    is_splice_path,
    merge_tags,
    pack_of,
    read_tags_csv,
    strip_pack_words,
)
from clapdesk.core.finetune.protocol import Fold, split_folds, tags_between
from clapdesk.core.store.catalog import Catalog

if TYPE_CHECKING:  # the library is the face above this package; only its type is named here
    from clapdesk.core.library import Library

log = logging.getLogger(__name__)

MIN_FILES = 10
TEXT_BATCH = 64


class FineTuneError(Exception):
    """Input fine-tuning cannot use; the message says what is needed. Nothing was changed."""


class FineTuneCancelled(Exception):
    """The run was cancelled; nothing was written."""


@dataclass
class FineTuneOptions:
    sources: tuple[str, ...] = DEFAULT_TAG_SOURCES
    csv_path: str | None = None
    mode: str = "quick"  # "deep" is not available in this version
    holdout_by: str = "pack"  # or "random"
    include_splice: bool = False
    activate: bool = True
    restore_tags: tuple[str, ...] = ()  # words left out by the rules that the user adds back
    steps: int | None = None  # most steps per setting tried; None: each setting's own
    batch_size: int = 128
    temperature: float = 0.05
    eval_every: int = 10
    patience: int = 6  # evaluations without improvement before a setting stops
    test_share: float = 0.2
    validation_share: float = 0.3
    seed: int = 0


@dataclass
class FineTuneProgress:
    phase: str  # "reading tags", "reading texts", "training", "saving", "done"
    done: int = 0
    total: int = 0
    score: float | None = None


@dataclass
class Dataset:
    """Everything a run needs, read from the catalog: samples, their features and texts,
    and the parts they were split into (one split, or several when packs are rotated)."""

    encoder_key: str
    samples: list[SampleTags]
    features: np.ndarray  # one row per sample
    vocabulary: Vocabulary
    folds: list[Fold]
    pairs: list[TextPair]  # texts of every sample; each fold trains on its own samples' texts
    holdout_by: str
    splice_excluded: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def rotated(self) -> bool:
        return len(self.folds) > 1

    @property
    def train(self) -> list[int]:
        return self.folds[0].train

    @property
    def validation(self) -> list[int]:
        return self.folds[0].validation

    @property
    def test(self) -> list[int]:
        return self.folds[0].test

    @property
    def eval_tags(self) -> list[str]:
        """The tags judged on test packs: those seen in both training and test packs."""
        return sorted({t for fold in self.folds for t in fold.test_tags})

    def packs_of(self, rows: Sequence[int]) -> list[str]:
        return sorted({self.samples[i].pack for i in rows if self.samples[i].pack})

    def test_packs(self) -> list[str]:
        return sorted({p for fold in self.folds for p in self.packs_of(fold.test)})

    def preview(self, count: int = 20, seed: int = 0) -> list[tuple[str, str]]:
        """A sample of (file path, text) pairs, for the wizard to show before training."""
        paths = {s.file_id: s.path for s in self.samples}
        picked = random.Random(seed).sample(self.pairs, min(count, len(self.pairs)))
        return [(paths[p.file_id], p.text) for p in picked]

    def describe_split(self) -> str:
        """The protocol in one sentence, for the wizard and the CLI."""
        if self.rotated:
            unit = "packs" if self.holdout_by == "pack" else "groups of files drawn at random"
            return (f"too few for one split, so {len(self.folds)} {unit} took turns: each was "
                    "judged by a model that learnt without it and was tuned on another")
        unit = "packs" if self.holdout_by == "pack" else "files at random"
        return (f"learns from {len(self.train)} files, tunes on {len(self.validation)} and is "
                f"judged on {len(self.test)} ({unit} it never saw)")


@dataclass
class FineTuneResult:
    """What a run found; `saved` is False when no setting gave a real gain on validation."""

    saved: bool
    reason: str  # why it was or was not saved, in plain words
    version: str | None
    model_key: str
    counts: dict[str, int]  # files in train, validation and test, test packs, test queries
    before: dict[str, float]  # test figures of the model searched now
    after: dict[str, float]  # test figures of the chosen setting
    per_tag: dict[str, dict[str, Any]]  # tag -> before/after P@10 and counts, test packs only
    chosen: dict[str, Any]  # the setting kept, its step, and its validation figures
    tried: list[dict[str, Any]]
    summary: list[str]  # what changed, in words a producer reads
    seconds: float
    activated: bool
    holdout_by: str
    rotated: bool
    splice_excluded: int
    notes: list[str]
    test_packs: list[str] = field(default_factory=list)
    excluded_tags: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return int(self.chosen.get("step", 0))

    def to_json(self) -> dict[str, Any]:
        return {"saved": self.saved, "reason": self.reason, "model": self.model_key,
                "version": self.version, **self.counts, "before": self.before,
                "after": self.after, "per_tag": self.per_tag, "chosen": self.chosen,
                "tried": self.tried, "summary": self.summary,
                "seconds": round(self.seconds, 2), "activated": self.activated,
                "holdout_by": self.holdout_by, "rotated": self.rotated,
                "test_packs": self.test_packs, "splice_excluded": self.splice_excluded,
                "excluded_tags": self.excluded_tags, "notes": self.notes}


ProgressCallback = Callable[[FineTuneProgress], None]


# -- reading the library -----------------------------------------------------------------------
def parse_sources(text: str) -> tuple[tuple[str, ...], str | None]:
    """`folder,filename,csv:FILE` to (sources, csv path)."""
    sources: list[str] = []
    csv_path = None
    for item in (p.strip() for p in text.split(",")):
        if not item:
            continue
        if item.startswith("csv:"):
            csv_path = item[4:]
            sources.append("csv")
        elif item in TAG_SOURCES and item != "csv":
            sources.append(item)
        else:
            raise FineTuneError(f"unknown tag source '{item}': use folder, filename, user or csv:FILE")
    if not sources:
        raise FineTuneError("no tag source chosen: use folder, filename, user or csv:FILE")
    return tuple(dict.fromkeys(sources)), csv_path


def read_samples(catalog: Catalog, encoder_key: str, options: FineTuneOptions,
                 with_features: bool = True) -> tuple[list[SampleTags], np.ndarray, int]:
    """Indexed files with their tags from the chosen sources and their stored features
    (an empty matrix without `with_features`: a preview need not read them all)."""
    if with_features:
        ids, feats = catalog.features(encoder_key)
    else:
        ids = np.array(catalog.live_feature_file_ids(encoder_key), np.int64)
        feats = np.zeros((len(ids), 0), np.float32)
    if not len(ids):
        return [], feats, 0
    csv_tags: dict[str, list[str]] = {}
    if "csv" in options.sources and options.csv_path:
        try:
            csv_tags = read_tags_csv(options.csv_path)
        except (OSError, UnicodeDecodeError) as exc:
            raise FineTuneError(f"the tag file '{options.csv_path}' cannot be read: {exc}") from exc
    roots = dict(catalog.roots())
    records = {r.id: r for r in catalog.files([int(i) for i in ids])}
    tags = catalog.tags_of([int(i) for i in ids])
    samples, rows, splice = [], [], 0
    for row, file_id in enumerate(int(i) for i in ids):
        record = records.get(file_id)
        if record is None:
            continue
        if is_splice_path(record.path) and not options.include_splice:
            splice += 1
            continue
        by_source: dict[str, list[str]] = {}
        for tag, source, _score in tags.get(file_id, []):
            by_source.setdefault(source, []).append(tag)
        by_source["csv"] = csv_tags.get(os.path.abspath(record.path), [])
        root = roots.get(record.root_id or -1, "")
        own = frozenset(merge_tags(by_source, [x for x in options.sources if x in ("user", "csv")]))
        samples.append(SampleTags(file_id, record.path, pack_of(record.path, root),
                                  merge_tags(by_source, options.sources), record.bpm, record.key,
                                  record.kind, is_splice_path(record.path), own))
        rows.append(row)
    return samples, feats[rows] if rows else feats[:0], splice


def count_splice(catalog: Catalog) -> int:
    """Files inside Splice folders, for the wizard's warning."""
    # LIKE narrows in SQL (ASCII case-insensitive); the folder rule is checked in Python.
    rows = catalog.live_files_path_like("splice")
    return sum(1 for r in rows if is_splice_path(r.path))


def prepare(library: Library, options: FineTuneOptions, catalog: Catalog | None = None,
            with_features: bool = True) -> Dataset:
    """Read and check everything a run needs; raises FineTuneError saying what is missing."""
    if options.mode != "quick":
        raise FineTuneError(f"'{options.mode}' fine-tuning is not available in this version; "
                            "use --mode quick (the encoders stay frozen, only the heads learn)")
    if options.holdout_by not in ("pack", "random"):
        raise FineTuneError("--holdout-by must be 'pack' or 'random'")
    encoder_key = library.identity.encoder_key
    samples, feats, splice = read_samples(catalog or library.catalog, encoder_key, options,
                                          with_features)
    notes = []
    if splice:
        notes.append(f"{splice} files in Splice folders were left out (Splice's licence forbids "
                     "training AI on its sounds); include them only if you have the right to")
    if len(samples) < MIN_FILES:
        raise FineTuneError(
            f"fine-tuning needs at least {MIN_FILES} indexed files; this library has "
            f"{len(samples)} usable. Index more folders first (clapdesk index FOLDER)")
    # With random hold-out the first folders are not treated as packs (the user said so):
    # their names may be the very categories ("kick/", "pads/").
    by_pack = options.holdout_by == "pack" and len({s.pack for s in samples}) >= 3
    stripped: set[str] = set()
    if by_pack:
        samples, stripped = strip_pack_words(samples, options.restore_tags)
    tagged = [i for i, s in enumerate(samples) if s.tags]
    samples, feats = [samples[i] for i in tagged], feats[tagged]
    if len(samples) < MIN_FILES:
        raise FineTuneError(no_tags_message(len(samples)))
    # The split looks at packs alone, and the words taught are chosen on the files that
    # train and validate: nothing about the test files' tags can change what a run does.
    folds, how = split_folds(samples, options.holdout_by, options.test_share,
                             options.validation_share, options.seed)
    seen = sorted({i for f in folds for i in f.train + f.validation})
    vocabulary = choose_vocabulary([samples[i] for i in seen], by_pack=by_pack,
                                   keep=options.restore_tags, pack_names=stripped)
    if not vocabulary.tags:
        raise FineTuneError(no_tags_message(0))
    if len(vocabulary.tags) < 2:
        raise FineTuneError(
            f"only one usable tag ('{vocabulary.tags[0]}'): fine-tuning needs at least two "
            "different tags, each on at least two files, to learn what tells sounds apart")
    words = set(vocabulary.tags)
    carries = [bool(words.intersection(s.tags)) for s in samples]
    if sum(carries) < MIN_FILES:
        raise FineTuneError(f"only {sum(carries)} files carry a usable tag; fine-tuning needs at "
                            f"least {MIN_FILES} tagged files")
    if how != options.holdout_by:
        notes.append("the library has fewer than three packs, so files were held out at random "
                     "(the figures may flatter: a pack's own sound is on both sides)")
    elif len(folds) > 1 and how == "pack":
        notes.append(f"only {len(folds)} packs: too few for three parts, so the packs took "
                     "turns as the test part (cross-validation by pack)")
    elif len(folds) > 1:
        notes.append(f"a small library: {len(folds)} groups of files drawn at random took "
                     "turns as the test part")
    usable = []
    for fold in folds:
        fold.train, fold.validation, fold.test = (
            [i for i in rows if carries[i]] for rows in (fold.train, fold.validation, fold.test))
        fold.halve_validation(samples, options.seed)
        fold.choose_tags = tags_between(samples, words, fold.train, fold.choose)
        fold.confirm_tags = tags_between(samples, words, fold.train, fold.confirm)
        fold.test_tags = tags_between(samples, words, fold.train, fold.test)
        if fold.choose_tags and fold.confirm_tags and fold.test_tags:
            usable.append(fold)
    if not usable:
        raise FineTuneError("the held-out packs share no taught tag with the packs it would "
                            "learn from, so the result could not be measured; add tagged files "
                            "to more packs or use --holdout-by random")
    # Texts only for files some fold learns from (the per-file draws keep them independent).
    learnt = sorted({i for f in usable for i in f.train} | (set(range(len(samples)))
                                                           if len(usable) > 1 else set()))
    pairs = build_pairs([samples[i] for i in learnt], vocabulary, seed=options.seed)
    return Dataset(encoder_key, samples, feats, vocabulary, usable, pairs, how, splice, notes)


def no_tags_message(found: int) -> str:
    if found:
        return (f"only {found} files carry any tag; fine-tuning needs at least {MIN_FILES} "
                "tagged files")
    return ("no usable tags: fine-tuning learns from words that at least two files share, that "
            "not every file has and, with several packs, that more than one pack uses. Sort "
            "samples into named folders (kick/, pads/ ...), give them descriptive file names, "
            "tag them in the app, or pass a CSV with --tags csv:FILE")
