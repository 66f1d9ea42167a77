"""Facts clapdesk measured once and keeps in the cache folder, so a later start pays nothing.

Each kind of fact is one small JSON file (a model folder's weight digest, a text tower's
health, a fast audio tower's check), keyed by everything the fact depends on. Only a cache: an
unreadable file is treated as empty, and a read-only disk just measures again next time.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

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
