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
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            scratch = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
            scratch.write_text(json.dumps(data), encoding="utf-8")
            os.replace(scratch, self.path)
        except OSError as exc:
            log.info("%s not kept: %s", self.path.name, exc)


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
        path = self._path(key)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            scratch = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npy")
            np.save(scratch, np.ascontiguousarray(array, np.float32), allow_pickle=False)
            os.replace(scratch, path)
        except OSError as exc:
            log.info("%s not kept: %s", path.name, exc)
