"""A match a person can read, from CLAP's tiny cosines.

CLAP's cosines between a description and a sound sit around 0.01-0.3, and between two sounds
around 0.5-0.95, with no fixed meaning: what counts as close depends on the query. Printing
them ("0.132", "-0.01") tells a producer nothing. So each result's cosine is calibrated against
the same query's scores over the library itself:

    z = (cosine - mean) / std          over a fixed sample of the library's vectors
    match = 100 % * (1 - exp(-z / 2))  for z > 0, else 0 %

Why this and not a scale within the result list: scaling the list's best to 100 % and its
worst to 0 % gives the first result 100 % even when nothing in the library fits, changes a
file's figure with -k and from page to page, and means nothing for a single result. The
calibrated match depends only on the query, the file and the library: the same file shows
the same figure on any page, alone or in a list of 500, and a query that nothing fits gives
low figures even to its best results. The typical file of the library reads 0 %; one standard
deviation above it 39 %, two 63 %, three 78 %, four 86 %, nine 99 %: it approaches 100 %
slowly, so the top results stay distinguishable. A percentile would saturate at 100 % for the
whole first page of a large library.

The sample (up to SAMPLE_SIZE vectors, spread evenly over the file ids) is read once per
library and model key and read again when the library has grown or shrunk by a tenth; one
matrix product with it costs well under a millisecond.
"""

from __future__ import annotations

import math
import threading
import weakref
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from clapdesk.core.library import Library

SAMPLE_SIZE = 2048
Z_SCALE = 2.0  # standard deviations per 1 - 1/e of the way to 100 %
MIN_SAMPLE = 3  # fewer files than this: no distribution to calibrate against

_samples: weakref.WeakKeyDictionary[Any, tuple[str, int, np.ndarray]] = \
    weakref.WeakKeyDictionary()
_lock = threading.Lock()


def readable_match(cosine: float, mean: float, std: float) -> float:
    """0-100: how far above the library's typical score for this query `cosine` stands."""
    if not math.isfinite(cosine) or std <= 1e-9:
        return 0.0
    z = (cosine - mean) / std
    return 0.0 if z <= 0 else 100.0 * (1.0 - math.exp(-z / Z_SCALE))


def query_distribution(library: Library, vector: np.ndarray) -> tuple[float, float] | None:
    """Mean and standard deviation of the query's cosines over the library's sample."""
    sample = _sample(library)
    if sample is None or len(sample) < MIN_SAMPLE:
        return None
    scores = sample @ np.asarray(vector, np.float32)
    return float(scores.mean()), float(scores.std())


def _sample(library: Library) -> np.ndarray | None:
    index = library.vector_index()
    key, size = str(library.model_key), len(index)
    with _lock:
        kept = _samples.get(library)
    if kept is not None and kept[0] == key and abs(kept[1] - size) <= 0.1 * max(kept[1], 1):
        return kept[2]
    if size == 0:
        return None
    # The index's live ids, evenly strided: a fixed sample, so a query's figures do not
    # change between two searches of an unchanged library.
    all_ids = sorted(index.live)
    step = max(1, len(all_ids) // SAMPLE_SIZE)
    _, matrix = library.catalog.vectors(library.model_key, all_ids[::step][:SAMPLE_SIZE])
    if len(matrix) == 0:
        return None
    matrix = np.ascontiguousarray(matrix, np.float32)
    with _lock:
        _samples[library] = (key, size, matrix)
    return matrix
