"""Window features embedded before the indexing of this run, found again by their samples.

The automatic precision choice (precision_choice.py) embeds a sample of the producer's files,
up to 40 of them, in float32 and in a candidate precision, before the first indexing of a
library. The precision it keeps has then already embedded those files: the indexer takes their
features from here instead of sending the same windows through the audio tower again. On a
2-core CPU that is about 45 windows, some 15 s of a first indexing.

Windows are found by a digest of their samples, so a file counts as known only when it decodes
to exactly the windows that were embedded (the same file, unchanged, at the same rate).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def window_key(window: np.ndarray) -> bytes:
    data = np.ascontiguousarray(window, dtype=np.float32)
    return hashlib.blake2b(data.tobytes(), digest_size=16).digest()


class KnownWindows:
    """Features by window, filled once by the precision choice and read by the indexer."""

    def __init__(self) -> None:
        self._features: dict[bytes, np.ndarray] = {}
        self.paths: set[str] = set()  # the files embedded, for the time left (see Indexer)

    def __len__(self) -> int:
        return len(self._features)

    def add(self, paths: Sequence[str], files: Sequence[Sequence[np.ndarray]],
            features: np.ndarray) -> None:
        """Each path's windows, and the features of all their windows in that order."""
        windows = [w for file_windows in files for w in file_windows]
        if len(paths) != len(files) or len(windows) != len(features):
            raise ValueError(f"{len(paths)} paths, {len(files)} files, {len(windows)} windows "
                             f"but {len(features)} features")
        for window, feature in zip(windows, features, strict=True):
            self._features[window_key(window)] = np.asarray(feature, dtype=np.float32)
        self.paths.update(paths)

    def features_of(self, path: str, windows: Sequence[np.ndarray]) -> list[np.ndarray] | None:
        """Every window's feature, or None when any of them was not embedded before. Only the
        sample's own paths are looked at: a digest costs 2.9 ms a window (AVX2 EPYC), which
        over a first run of 40,000 files would take the indexer's thread 2 minutes for nothing."""
        if path not in self.paths or not windows:
            return None
        found = [self._features.get(window_key(w)) for w in windows]
        return None if any(f is None for f in found) else found  # type: ignore[misc]
