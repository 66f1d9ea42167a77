"""How a fine-tuning run is judged: the split into train, validation and test, the figures, and
what they mean in words a producer reads.

Everything a run chooses (the setting, its step) is chosen on validation files; the figures
shown and stored are those of test files, which nothing chose. Files are split by pack (the
first folder under a library root): a pack's own sound leaks into every file of it, so a
random split flatters the figures. With too few packs for three parts the packs take turns
(cross-validation by pack). Pure numpy, no torch.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from clapdesk.core.finetune.prompts import SampleTags

RECALL_KS = (1, 5, 10)
METRICS = ("R@1", "R@5", "R@10", "P@10")
MIN_PACKS = 3  # fewer: held out at random
ROTATE_BELOW = 5  # packs: fewer take turns instead of one split
ROTATE_FILES_BELOW = 100  # files held out at random: fewer take turns in five groups


@dataclass
class Fold:
    """One split: rows (indices into the samples) to learn from, to choose on, to judge on."""

    train: list[int]
    validation: list[int]
    test: list[int]
    # Validation in two halves: one chooses the setting and step, the other says whether the
    # gain is real (the best of many tries is flattered by luck on the files that chose it).
    choose: list[int] = field(default_factory=list)
    confirm: list[int] = field(default_factory=list)
    choose_tags: list[str] = field(default_factory=list)
    confirm_tags: list[str] = field(default_factory=list)
    test_tags: list[str] = field(default_factory=list)

    def halve_validation(self, samples: Sequence[SampleTags], seed: int) -> None:
        """Whole packs to each half when validation has several, else alternate files."""
        groups = _groups([samples[i] for i in self.validation], "pack")
        rng = random.Random(seed)
        names = sorted(groups)
        rng.shuffle(names)
        halves: list[list[int]] = [[], []]
        if len(names) >= 2:
            for name in names:
                smaller = 0 if len(halves[0]) <= len(halves[1]) else 1
                halves[smaller] += [self.validation[i] for i in groups[name]]
        else:
            rows = list(self.validation)
            rng.shuffle(rows)
            halves = [rows[0::2], rows[1::2]]
        self.choose, self.confirm = sorted(halves[0]), sorted(halves[1])


def _groups(samples: Sequence[SampleTags], by: str) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(samples):
        key = (s.pack or f"\0{s.path}") if by == "pack" else f"\0{s.path}"
        groups.setdefault(key, []).append(i)  # loose files: a group each
    return groups


def _one_split(groups: dict[str, list[int]], n: int, shares: tuple[float, float],
               rng: random.Random) -> Fold | None:
    names = sorted(groups)
    rng.shuffle(names)
    targets = [max(1, round(share * n)) for share in shares]
    parts: list[list[int]] = [[], [], []]  # test, validation, train
    for name in names:
        rows = groups[name]
        for k, target in enumerate(targets):
            # A part takes whole groups until it is big enough, but never one so big that
            # it would starve training (a single huge pack goes to training instead).
            size = len(parts[k]) + len(rows)
            if (not parts[k] or abs(size - target) < abs(len(parts[k]) - target)) \
                    and size <= max(target, 0.4 * n):
                parts[k] += rows
                break
        else:
            parts[2] += rows
    if not all(parts):
        return None
    return Fold(sorted(parts[2]), sorted(parts[1]), sorted(parts[0]))


def _rotations(groups: dict[str, list[int]], rng: random.Random) -> list[Fold]:
    names = sorted(groups)
    rng.shuffle(names)
    folds = []
    for k, name in enumerate(names):
        nxt = names[(k + 1) % len(names)]
        train = [i for other in names if other not in (name, nxt) for i in groups[other]]
        folds.append(Fold(sorted(train), sorted(groups[nxt]), sorted(groups[name])))
    return folds


def split_folds(samples: Sequence[SampleTags], by: str, test_share: float,
                validation_share: float, seed: int) -> tuple[list[Fold], str]:
    """The folds and how files were split ("pack" or "random").

    By pack with at least ROTATE_BELOW packs: one split of whole packs. With MIN_PACKS up to
    ROTATE_BELOW: every pack is the test part once (validation the next pack, training the
    rest). Fewer packs, or `by="random"`: one split of files drawn at random.
    """
    rng = random.Random(seed)
    n = len(samples)
    shares = (test_share, validation_share)
    if by == "pack":
        groups = _groups(samples, "pack")
        if len(groups) >= ROTATE_BELOW:
            fold = _one_split(groups, n, shares, rng)
            if fold is not None:
                return [fold], "pack"
        if len(groups) >= MIN_PACKS:
            return _rotations(groups, rng), "pack"
    files = _groups(samples, "random")
    if n < ROTATE_FILES_BELOW:  # a small library: five turns, so more files judge each choice
        names = sorted(files)
        rng.shuffle(names)
        return _rotations({f"{k}": [files[name][0] for name in names[k::5]]
                           for k in range(5)}, rng), "random"
    fold = _one_split(files, n, shares, rng)
    if fold is None:  # only with a handful of files; the caller refuses fewer than ten
        raise ValueError("too few files to split")
    return [fold], "random"


def tags_between(samples: Sequence[SampleTags], words: set[str], a: Sequence[int],
                 b: Sequence[int]) -> list[str]:
    """Taught words found on both sides: the only ones a held-out part can judge."""
    left = {t for i in a for t in samples[i].tags if t in words}
    right = {t for i in b for t in samples[i].tags if t in words}
    return sorted(left & right)


# -- figures -----------------------------------------------------------------------------------
@dataclass
class QueryFigures:
    """Figures per query (one query per tag), so folds can be pooled before averaging."""

    tags: list[str]
    values: dict[str, np.ndarray]  # metric -> one value per query
    hits: np.ndarray  # files carrying the tag among the top `top`
    top: np.ndarray  # how many best matches were looked at (10, or fewer files)
    relevant: np.ndarray  # files carrying the tag in the part judged

    def means(self) -> dict[str, float]:
        return {m: round(float(np.mean(v)), 4) if len(v) else 0.0 for m, v in self.values.items()}

    @staticmethod
    def pooled(parts: Sequence[QueryFigures]) -> QueryFigures:
        return QueryFigures([t for p in parts for t in p.tags],
                            {m: np.concatenate([p.values[m] for p in parts]) for m in METRICS},
                            np.concatenate([p.hits for p in parts]),
                            np.concatenate([p.top for p in parts]),
                            np.concatenate([p.relevant for p in parts]))

    def per_tag(self) -> dict[str, dict[str, float]]:
        """Tag -> mean hits in the top, the top's size and relevant files (over folds)."""
        out: dict[str, dict[str, float]] = {}
        for tag in dict.fromkeys(self.tags):
            rows = [k for k, t in enumerate(self.tags) if t == tag]
            out[tag] = {"P@10": round(float(np.mean(self.values["P@10"][rows])), 4),
                        "hits": round(float(np.mean(self.hits[rows])), 1),
                        "top": int(self.top[rows[0]]),
                        "relevant": round(float(np.mean(self.relevant[rows])), 1)}
        return out


def evaluate(audio: np.ndarray, queries: np.ndarray, relevant: np.ndarray,
             tags: Sequence[str] | None = None) -> QueryFigures:
    """Text-to-audio figures over normalised vectors; relevant is queries x files (bool).

    Recall@K is the share of a query's relevant files found in its top K, out of as many as
    could fit (min(K, relevant)), so 1.0 always means perfect. P@10 is the share of the top 10
    carrying the tag.
    """
    return evaluate_scores(queries @ audio.T, relevant, tags)


def evaluate_scores(scores: np.ndarray, relevant: np.ndarray,
                    tags: Sequence[str] | None = None) -> QueryFigures:
    """evaluate() from a queries x files matrix of similarities."""
    order = np.argsort(-scores, axis=1, kind="stable")
    hits = np.take_along_axis(relevant, order, axis=1)
    n_rel = relevant.sum(axis=1)
    values: dict[str, np.ndarray] = {}
    for k in RECALL_KS:
        found = hits[:, :k].sum(axis=1)
        values[f"R@{k}"] = found / np.maximum(1, np.minimum(k, n_rel))
    top = min(10, scores.shape[1])
    in_top = hits[:, :top].sum(axis=1)
    values["P@10"] = in_top / max(1, top)
    names = list(tags) if tags is not None else [str(k) for k in range(len(scores))]
    return QueryFigures(names, values, in_top, np.full(len(scores), top), n_rel)


def overall_score(figures: dict[str, float]) -> float:
    """One number to choose by: the mean of the four figures."""
    return sum(figures[m] for m in METRICS) / len(METRICS)


def gain_low_bound(pairs: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], seed: int,
                   rounds: int = 200, quantile: float = 0.05) -> float:
    """A cautious gain: the `quantile` of the validation gain over files drawn again with
    replacement. `pairs` holds (before scores, after scores, relevant) per fold, each
    queries x files; the gain of a round is the mean over folds.

    The best of several settings and many steps is flattered by luck; a gain that a different
    draw of the same files would take away was luck, and is not enough to keep a version.
    """
    rng = np.random.default_rng(seed)
    gains = np.zeros(rounds)
    for r in range(rounds):
        total = 0.0
        for before, after, relevant in pairs:
            pick = rng.integers(0, relevant.shape[1], relevant.shape[1])
            keep = relevant[:, pick].any(axis=1)  # a query with nothing to find says nothing
            if not keep.any():
                continue
            rel = relevant[keep][:, pick]
            total += (overall_score(evaluate_scores(after[keep][:, pick], rel).means())
                      - overall_score(evaluate_scores(before[keep][:, pick], rel).means()))
        gains[r] = total / len(pairs)
    return float(np.quantile(gains, quantile))


# -- words -------------------------------------------------------------------------------------
def _count(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.1f}"


def tag_sentence(tag: str, before: dict[str, float], after: dict[str, float],
                 rotated: bool) -> str:
    """"of the 10 best matches for 'hi-hat' in packs it never saw, 8 are hi-hat, was 3"."""
    where = "in a pack it never saw, on average" if rotated else "in packs it never saw,"
    top = int(after["top"])
    line = (f"of the {top} best matches for '{tag}' {where} {_count(after['hits'])} are "
            f"tagged '{tag}', was {_count(before['hits'])}")
    if after["relevant"] < top:
        line += f" (there are {_count(after['relevant'])})"
    return line


def changes_in_words(per_tag_before: dict[str, dict[str, float]],
                     per_tag_after: dict[str, dict[str, float]], rotated: bool,
                     limit: int = 6) -> list[str]:
    """The tags that changed most first, then the rest, up to `limit` sentences."""
    order = sorted(per_tag_after, key=lambda t: (-abs(per_tag_after[t]["hits"]
                                                      - per_tag_before[t]["hits"]), t))
    return [tag_sentence(t, per_tag_before[t], per_tag_after[t], rotated) for t in order[:limit]]
