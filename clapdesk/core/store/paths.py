"""Every folder clapdesk reads or writes, in one place.

Nothing is created at import time; callers ask for a folder and get it created on demand.
`CLAPDESK_LIBRARY` (or `--library`) moves the whole library, which is what makes tests trivial.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "clapdesk"


def default_library_dir() -> Path:
    """The library folder: `$CLAPDESK_LIBRARY`, else platformdirs' user data folder."""
    override = os.environ.get("CLAPDESK_LIBRARY")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def config_dir() -> Path:
    override = os.environ.get("CLAPDESK_CONFIG")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    override = os.environ.get("CLAPDESK_CACHE")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def default_exports_dir() -> Path:
    """Regions exported from the waveform: `$CLAPDESK_EXPORTS`, else "clapdesk" in the user's
    Music folder. Not the cache: a DAW project links to these files, and a cleaner must not
    take them away."""
    override = os.environ.get("CLAPDESK_EXPORTS")
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_music_dir()) / APP_NAME


class LibraryPaths:
    """The files that make up one library folder."""

    def __init__(self, root: Path | str | None = None) -> None:
        self.root = Path(root).expanduser() if root else default_library_dir()

    @property
    def catalog(self) -> Path:
        return self.root / "catalog.sqlite3"

    @property
    def lock(self) -> Path:
        return self.root / "library.lock"

    def index_file(self, model_slug: str) -> Path:
        return self.root / "index" / f"{model_slug}.hnsw"

    @property
    def models(self) -> Path:
        """Fine-tuned model versions (the base model stays in the hub cache or its folder)."""
        return self.root / "models"

    @property
    def exports(self) -> Path:
        """Regions dragged out of the waveform are written here (unless the settings say)."""
        return default_exports_dir()
