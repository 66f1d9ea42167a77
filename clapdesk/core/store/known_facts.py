"""Facts clapdesk measured once and keeps in the cache folder, so a later start pays nothing.

Each kind of fact is one small JSON file (a model folder's weight digest, a text tower's
health, a fast audio tower's check), keyed by everything the fact depends on; arrays (the
auto-tag prompts' vectors) are .npy files in a folder of their own. Only a cache: an
unreadable file is treated as empty, and a read-only disk just measures again next time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class KnownFacts:
    """One kind of fact: `name`.json in the cache folder (or in `folder`)."""

    def __init__(self, name: str, folder: Path | None = None) -> None:
        from clapdesk.core.store.paths import cache_dir

        self.path = (folder or cache_dir()) / f"{name}.json"

    def read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, key: str) -> Any:
        return self.read().get(key)

    def put(self, key: str, value: Any) -> None:
        """Keep `value` under `key`, written whole (another process reads all or nothing)."""
        data = self.read()
        data[key] = value
        _write_whole(self.path, lambda scratch: scratch.write_text(json.dumps(data),
                                                                   encoding="utf-8"))


class KnownArrays:
    """Arrays measured once (the auto-tag prompts' vectors): one .npy file per key, in the
    folder `name` of the cache folder. A file that is missing, unreadable or not of the shape
    asked for reads as None, and the caller computes it again."""

    def __init__(self, name: str, folder: Path | None = None) -> None:
        from clapdesk.core.store.paths import cache_dir

        self.folder = (folder or cache_dir()) / name

    def _path(self, key: str) -> Path:
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:32]}.npy"

    def get(self, key: str, shape: tuple[int, ...]) -> np.ndarray | None:
        try:
            array = np.load(self._path(key), allow_pickle=False)
        except (OSError, ValueError):
            return None
        if array.shape != shape or array.dtype != np.float32 or not np.isfinite(array).all():
            return None
        return array

    def put(self, key: str, array: np.ndarray) -> None:
        """Keep `array` under `key`, written whole (another process reads all or nothing)."""
        kept = np.ascontiguousarray(array, np.float32)
        # A file object, so np.save adds no ".npy" to the scratch name.
        _write_whole(self._path(key), lambda scratch: _save_array(scratch, kept))


def _save_array(path: Path, array: np.ndarray) -> None:
    with path.open("wb") as out:
        np.save(out, array, allow_pickle=False)


def _write_whole(path: Path, write: Callable[[Path], object]) -> None:
    """`write` into a scratch file beside `path`, then put it in place in one step; a cache
    that cannot be written (read-only disk, full disk) is only logged."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        scratch = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        write(scratch)
        os.replace(scratch, path)
    except OSError as exc:
        log.info("%s not kept: %s", path.name, exc)
