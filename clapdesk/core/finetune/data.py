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
)
from clapdesk.core.store.catalog import Catalog

if TYPE_CHECKING:  # the library is the face above this package; only its type is named here
    from clapdesk.core.library import Library

log = logging.getLogger(__name__)

MIN_FILES = 10
RECALL_KS = (1, 5, 10)
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
    steps: int = 300
    batch_size: int = 256
    learning_rate: float = 1e-3
    anchor_decay: float = 0.5  # per step, times the learning rate: the pull back to the start
    temperature: float = 0.05
    eval_every: int = 10
    patience: int = 8  # evaluations without improvement before stopping
    holdout_share: float = 0.2
    seed: int = 0


@dataclass
class FineTuneProgress:
    phase: str  # "reading tags", "reading texts", "training", "saving", "done"
    done: int = 0
    total: int = 0
    score: float | None = None


@dataclass
class Dataset:
    """Everything a run needs, read from the catalog: samples, their features and texts."""

    encoder_key: str
    samples: list[SampleTags]
    features: np.ndarray  # one row per sample
    vocabulary: Vocabulary
    train: list[int]  # indices into samples
    heldout: list[int]
    pairs: list[TextPair]  # texts of training samples
    eval_tags: list[str]  # tags on both sides of the split: the held-out queries
    holdout_by: str
    splice_excluded: int = 0
    notes: list[str] = field(default_factory=list)

    def heldout_packs(self) -> list[str]:
        return sorted({self.samples[i].pack for i in self.heldout if self.samples[i].pack})

    def preview(self, count: int = 20, seed: int = 0) -> list[tuple[str, str]]:
        """A sample of (file path, text) pairs, for the wizard to show before training."""
        paths = {s.file_id: s.path for s in self.samples}
        picked = random.Random(seed).sample(self.pairs, min(count, len(self.pairs)))
        return [(paths[p.file_id], p.text) for p in picked]


@dataclass
class FineTuneResult:
    version: str
    model_key: str
    train: int
    heldout: int
    before: dict[str, float]
    after: dict[str, float]
    per_tag_before: dict[str, float]
    per_tag_after: dict[str, float]
    seconds: float
    activated: bool
    holdout_by: str
    steps: int
    splice_excluded: int
    notes: list[str]
    heldout_packs: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"model": self.model_key, "version": self.version, "train": self.train,
                "heldout": self.heldout, "before": self.before, "after": self.after,
                "per_tag_p10": {t: {"before": self.per_tag_before[t], "after": self.per_tag_after[t]}
                                for t in self.per_tag_after},
                "seconds": round(self.seconds, 2), "activated": self.activated,
                "holdout_by": self.holdout_by, "steps": self.steps,
                "heldout_packs": self.heldout_packs, "splice_excluded": self.splice_excluded,
                "notes": self.notes}


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
        samples.append(SampleTags(file_id, record.path, pack_of(record.path, root),
                                  merge_tags(by_source, options.sources), record.bpm, record.key,
                                  record.kind, is_splice_path(record.path)))
        rows.append(row)
    return samples, feats[rows] if rows else feats[:0], splice


def count_splice(catalog: Catalog) -> int:
    """Files inside Splice folders, for the wizard's warning."""
    # LIKE narrows in SQL (ASCII case-insensitive); the folder rule is checked in Python.
    rows = catalog.live_files_path_like("splice")
    return sum(1 for r in rows if is_splice_path(r.path))


def split(samples: Sequence[SampleTags], by: str, share: float, seed: int
          ) -> tuple[list[int], list[int], str]:
    """(train, held-out, how) indices. By pack when there are packs to split, else at random."""
    rng = random.Random(seed)
    n = len(samples)
    target = max(1, round(share * n))
    if by == "pack":
        packs: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            packs.setdefault(s.pack or f"\0{s.path}", []).append(i)  # loose files: own group
        names = sorted(packs)
        rng.shuffle(names)
        heldout: list[int] = []
        for name in names:
            if len(heldout) >= target:
                break
            if len(heldout) + len(packs[name]) <= max(target, n // 2):
                heldout += packs[name]
        if heldout and len(heldout) < n and len(packs) > 1:
            chosen = set(heldout)
            return [i for i in range(n) if i not in chosen], sorted(heldout), "pack"
    order = list(range(n))
    rng.shuffle(order)
    return sorted(order[target:]), sorted(order[:target]), "random"


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
    vocabulary = choose_vocabulary(samples)
    if not vocabulary.tags:
        raise FineTuneError(
            "no usable tags: fine-tuning learns from tags that at least two files share and that "
            "not every file has. Sort samples into named folders (kick/, pads/ ...), give them "
            "descriptive file names, tag them in the app, or pass a CSV with --tags csv:FILE")
    if len(vocabulary.tags) < 2:
        raise FineTuneError(
            f"only one usable tag ('{vocabulary.tags[0]}'): fine-tuning needs at least two "
            "different tags, each on at least two files, to learn what tells sounds apart")
    words = set(vocabulary.tags)
    tagged = [i for i, s in enumerate(samples) if words.intersection(s.tags)]
    if len(tagged) < MIN_FILES:
        raise FineTuneError(f"only {len(tagged)} files carry a usable tag; fine-tuning needs at "
                            f"least {MIN_FILES} tagged files")
    samples = [samples[i] for i in tagged]
    feats = feats[tagged]
    train, heldout, how = split(samples, options.holdout_by, options.holdout_share, options.seed)
    if how != options.holdout_by:
        notes.append("the library has a single pack, so files were held out at random")
    train_tags = {t for i in train for t in samples[i].tags if t in words}
    held_tags = {t for i in heldout for t in samples[i].tags if t in words}
    eval_tags = sorted(train_tags & held_tags)
    if not eval_tags:
        raise FineTuneError("the held-out files share no tag with the training files, so the "
                            "result could not be measured; add tagged files to more packs "
                            "or use --holdout-by random")
    pairs = build_pairs([samples[i] for i in train], vocabulary, seed=options.seed)
    return Dataset(encoder_key, samples, feats, vocabulary, train, heldout, pairs, eval_tags,
                   how, splice, notes)


# -- measuring ---------------------------------------------------------------------------------
def evaluate(audio: np.ndarray, queries: np.ndarray, relevant: np.ndarray
             ) -> tuple[dict[str, float], np.ndarray]:
    """Text-to-audio figures over normalised vectors; relevant is queries x files (bool).

    Recall@K is the share of a query's relevant files found in its top K, out of as many as
    could fit (min(K, relevant)), so 1.0 always means perfect. P@10 is the share of the top 10
    carrying the tag. Returns the means and P@10 per query.
    """
    scores = queries @ audio.T
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    n_rel = relevant.sum(axis=1)
    out: dict[str, float] = {}
    for k in RECALL_KS:
        found = hits[:, :k].sum(axis=1)
        out[f"R@{k}"] = float(np.mean(found / np.maximum(1, np.minimum(k, n_rel))))
    top = min(10, audio.shape[0])
    p10 = hits[:, :top].sum(axis=1) / max(1, top)
    out["P@10"] = float(np.mean(p10))
    return {k: round(v, 4) for k, v in out.items()}, p10


def overall_score(figures: dict[str, float]) -> float:
    """One number to pick the best training step by: the mean of the four figures."""
    return (figures["R@1"] + figures["R@5"] + figures["R@10"] + figures["P@10"]) / 4
