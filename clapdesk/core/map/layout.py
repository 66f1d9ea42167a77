"""Laying vectors out on a plane: PCA to about 50 dimensions, then openTSNE.

openTSNE was chosen over UMAP by benchmarks/bench_map.py: on 10k clustered 512-d vectors it
kept more of each point's 10 nearest neighbours on the map (0.59 against 0.41), peaked lower
(471 MB against 566 MB) and needs no JIT compiler (UMAP pulls numba and pynndescent); UMAP took
a little less CPU (104 s against 132 s, on a loaded 2-core machine). New files are not laid out again:
they are placed at the weighted mean of the positions of their nearest neighbours, found in
the same PCA space, which costs one matrix product instead of an optimisation.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

PCA_DIMS = 50
NEIGHBOURS = 10  # new files are placed by this many neighbours
EXAGGERATION_ITERS = 250  # openTSNE's defaults: the two phases of its optimisation
FINAL_ITERS = 500
PROGRESS_EVERY = 25  # iterations between progress reports (and chances to cancel)
MIN_FOR_TSNE = 8  # fewer points than this: perplexity would be meaningless

Progress = Callable[[float], None]  # a fraction from 0 to 1


class LayoutCancelled(Exception):
    """The layout was cancelled before it finished; nothing was stored."""


@dataclass
class Projection:
    """The PCA a layout was made in: new vectors are placed in the same space."""

    mean: np.ndarray  # (d,)
    components: np.ndarray  # (d, dims)

    def apply(self, vectors: np.ndarray) -> np.ndarray:
        return ((np.asarray(vectors, np.float32) - self.mean) @ self.components).astype(np.float32)


def fit_projection(vectors: np.ndarray, dims: int = PCA_DIMS) -> Projection:
    """The top principal axes, from the d x d covariance (cheap at any number of vectors)."""
    x = np.asarray(vectors, np.float32)
    mean = x.mean(axis=0)
    centred = x - mean
    cov = (centred.T @ centred).astype(np.float64) / max(1, len(x) - 1)
    values, axes = np.linalg.eigh(cov)
    keep = min(dims, x.shape[1])
    components = axes[:, np.argsort(values)[::-1][:keep]]
    # A fixed sign per axis, so the same vectors always give the same picture.
    components *= np.sign(components[np.abs(components).argmax(axis=0), range(keep)])
    return Projection(mean.astype(np.float32), components.astype(np.float32))


def lay_out(reduced: np.ndarray, progress: Progress | None = None,
            cancel: threading.Event | None = None, seed: int = 0, threads: int = 2
            ) -> np.ndarray:
    """(n, 2) float32 positions of PCA-reduced vectors; raises LayoutCancelled when cancelled."""
    n = len(reduced)
    if n < MIN_FOR_TSNE:
        # Too few for t-SNE: their first two principal coordinates already say it all.
        out = np.zeros((n, 2), np.float32)
        out[:, : min(2, reduced.shape[1] if reduced.ndim == 2 else 0)] = reduced[:, :2]
        if progress:
            progress(1.0)
        return out
    from openTSNE import TSNE  # imported here: it loads scikit-learn, which the app need not

    total = EXAGGERATION_ITERS + FINAL_ITERS
    done = [0]

    def report(_iteration: int, _error: float, _embedding: np.ndarray) -> bool:
        done[0] += PROGRESS_EVERY
        if cancel is not None and cancel.is_set():
            raise LayoutCancelled("the map layout was cancelled")
        if progress:
            progress(min(0.99, done[0] / total))
        return False

    tsne = TSNE(n_components=2, perplexity=min(30.0, (n - 1) / 3.0), n_jobs=threads,
                random_state=seed, early_exaggeration_iter=EXAGGERATION_ITERS, n_iter=FINAL_ITERS,
                callbacks=report, callbacks_every_iters=PROGRESS_EVERY, verbose=False)
    positions = np.asarray(tsne.fit(np.ascontiguousarray(reduced, np.float64)), np.float32)
    if progress:
        progress(1.0)
    return positions


def place_by_neighbours(known: np.ndarray, known_positions: np.ndarray, new: np.ndarray,
                        k: int = NEIGHBOURS, chunk: int = 512) -> np.ndarray:
    """Positions for `new` (reduced vectors) among `known` ones already on the map.

    Each new point goes to the mean of its k nearest known neighbours' positions, weighted by
    1/distance², so a near-copy of a sound lands on it and a point between two families is
    pulled to the closer one rather than into the gap between them."""
    if len(new) == 0:
        return np.zeros((0, 2), np.float32)
    if len(known) == 0:
        return np.zeros((len(new), 2), np.float32)
    k = min(k, len(known))
    known = np.asarray(known, np.float32)
    known_sq = (known * known).sum(axis=1)
    out = np.empty((len(new), 2), np.float32)
    buffer = np.empty((min(chunk, len(new)), len(known)), np.float32)
    for at in range(0, len(new), chunk):
        block = np.asarray(new[at: at + chunk], np.float32)
        # Squared distances by one matrix product, |b|² - 2ab (+ |a|², the same along a row, so
        # added only to the k kept): in place, a few passes over the block, no loop over points.
        part = buffer[: len(block)]
        np.matmul(block, known.T, out=part)
        part *= -2.0
        part += known_sq
        nearest = np.argpartition(part, k - 1, axis=1)[:, :k]
        near_d2 = np.take_along_axis(part, nearest, axis=1) + (block * block).sum(axis=1)[:, None]
        near_d2 = np.maximum(near_d2, 0.0)
        weights = 1.0 / (near_d2 + 1e-6)
        weights /= weights.sum(axis=1, keepdims=True)
        out[at: at + len(block)] = (weights[:, :, None] * known_positions[nearest]).sum(axis=1)
    return out


def neighbours_kept(vectors: np.ndarray, positions: np.ndarray, k: int = 10,
                    sample: int = 2000, seed: int = 1) -> float:
    """The mean fraction of a point's k nearest neighbours by cosine in the vectors' space
    that are also among its k nearest on the map (for a sample of points)."""
    from scipy.spatial import cKDTree

    n = len(vectors)
    if n <= k:
        return 1.0
    rng = np.random.default_rng(seed)
    rows = rng.choice(n, min(sample, n), replace=False)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    _, on_map = cKDTree(positions).query(positions[rows], k + 1)
    total = 0.0
    for at in range(0, len(rows), 256):
        part = rows[at: at + 256]
        sims = unit[part] @ unit.T
        sims[np.arange(len(part)), part] = -np.inf  # a point is not its own neighbour
        true = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for i, row in enumerate(part):
            mapped = set(on_map[at + i].tolist()) - {int(row)}
            total += len(set(true[i].tolist()) & mapped) / k
    return total / len(rows)
