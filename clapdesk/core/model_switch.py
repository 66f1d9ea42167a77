"""Switching a library to another model: a decision, never a side effect of `--model`.

A library's vectors are keyed by the model that made them, so another model's vectors can sit
beside them and search keeps using the old ones until the new ones are complete. The rules:

- A library adopts the first model it loads. After that, a model becomes the library's model
  only when every one of its sounds has that model's vectors: at the end of an indexing run
  with it (`clapdesk models switch OTHER`, `clapdesk index --model OTHER`, or the window's
  switch). A cancelled or partial run leaves the library on its old model.
- Naming another model for a search (`--model OTHER`, CLAPDESK_MODEL, the Settings) uses that
  model when the library already has its vectors for every sound. Otherwise the command line
  says what a switch would do and exits 1, and the window searches with the library's own model
  and says the same in its status bar: an empty result list never stands for "wrong model".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from clapdesk.core.embed import known_models

if TYPE_CHECKING:
    from clapdesk.core.index.indexer import IndexReport
    from clapdesk.core.library import Library
    from clapdesk.core.store.catalog import Catalog

# Catalog meta: the model whose untrained text tower a library was told about.
TOLD_KEY = "told_untrained_text_tower"

SPEED_KEY = "seconds_per_file"
# Until this library has been indexed once: about 6 files a second on a 2-core CPU with the full
# larger_clap_music (README, Performance), rounded up for laptops and long files.
DEFAULT_SECONDS_PER_FILE = 0.25
MIN_FILES_TO_MEASURE = 8  # fewer files than this say more about start-up than about speed


@dataclass(frozen=True)
class SwitchPlan:
    """What switching `current` to `target` would cost: `files` to re-embed, about `seconds`."""

    current: str
    target: str
    files: int
    seconds: float

    @property
    def estimate(self) -> str:
        return describe_seconds(self.seconds)

    def message(self) -> str:
        noun = "file" if self.files == 1 else "files"
        return (f"this library's sounds are embedded with {self.current}; run `clapdesk models "
                f"switch {self.target}` to re-embed {self.files} {noun} ({self.estimate})")


def describe_seconds(seconds: float) -> str:
    if seconds < 60:
        return "under a minute"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"about {minutes} minute{'s' if minutes != 1 else ''}"
    return f"about {seconds / 3600:.1f} hours"


def seconds_per_file(catalog: Catalog) -> float:
    """Measured on this library's last indexing run of some size, else a default."""
    try:
        measured = float(catalog.get_meta(SPEED_KEY) or 0)
    except ValueError:
        measured = 0.0
    return measured if measured > 0 else DEFAULT_SECONDS_PER_FILE


def plan_switch(library: Library) -> SwitchPlan | None:
    """None when the library can search with `library.model_ref` as it is; else what a switch to
    it would take. Resolves the model (cheap, no torch): raises ModelError when it cannot."""
    remembered = library.catalog.get_meta("model")
    if not remembered or remembered == library.model_ref:
        return None
    missing = library.catalog.files_missing_vectors(library.model_key)
    if not missing:
        return None
    seconds = len(missing) * seconds_per_file(library.catalog)
    return SwitchPlan(remembered, library.model_ref, len(missing), seconds)


def after_index(library: Library, catalog: Catalog, report: IndexReport) -> None:
    """Called by Library.index_folders after a run: remember its speed, and adopt its model once
    every sound has that model's vectors."""
    if report.indexed >= MIN_FILES_TO_MEASURE and report.seconds > 0:
        catalog.set_meta(SPEED_KEY, f"{report.seconds / report.indexed:.4f}")
    if report.cancelled or catalog.get_meta("model") == library.model_ref:
        return
    if not catalog.files_missing_vectors(library.model_key):
        catalog.set_meta("model", library.model_ref)


def untrained_text_notice(library: Library) -> str | None:
    """Once per library: why text search is off with its model, and what switching costs.

    Only for a library that already holds sounds embedded with a model whose text tower is
    known to be untrained (laion/larger_clap_music); remembered in the catalog once said."""
    # The model of its vectors, which may not be the one loaded now.
    model = known_models.known(library.catalog.get_meta("model") or library.model_ref)
    if model is None or model.text_search or library.catalog.get_meta(TOLD_KEY) == model.id:
        return None
    files = library.catalog.count_files()
    if not files:
        return None
    try:
        library.catalog.set_meta(TOLD_KEY, model.id)
    except Exception:  # a read-only library: said again next time, which is still right
        pass
    noun = "file" if files == 1 else "files"
    recommended = known_models.RECOMMENDED
    takes = known_models.describe_duration(known_models.reembed_seconds(files))
    return (f"This library's sounds were embedded with {model.id}, whose text tower is reported "
            "untrained, so text search is off with it (sound-alikes still work). "
            f"{recommended} has the same audio tower and a trained text tower: switching "
            f"re-embeds {files} {noun}, {takes} on a 2-core "
            f"CPU (clapdesk --model {recommended} index, or Settings › Model).")
