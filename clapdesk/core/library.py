"""A library: one catalog, its vector index and the model that made the vectors.

This is the object the CLI and the GUI hold. It opens fast (no torch import), loads the model
lazily and only once, and takes an exclusive lock for anything that writes vectors, so a second
clapdesk on the same library can search but never corrupts it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from clapdesk.core import model_switch
from clapdesk.core.embed.embedder import ClapEmbedder, pick_device
from clapdesk.core.embed.hub import DEFAULT_MODEL, ModelIdentity, resolve_model
from clapdesk.core.index import precision_choice
from clapdesk.core.index.device_plan import precision_for
from clapdesk.core.index.indexer import Indexer, IndexReport, Progress
from clapdesk.core.index.model_loader import Timeline, model_rate
from clapdesk.core.index.precision_choice import PrecisionChoice
from clapdesk.core.index.precision_trial import AutoPrecision, PrecisionTrial
from clapdesk.core.store.catalog import Catalog, CatalogError
from clapdesk.core.store.connections import CatalogPerThread
from clapdesk.core.store.model_key import ModelKey
from clapdesk.core.store.paths import LibraryPaths
from clapdesk.core.store.vector_index import VectorIndex, model_slug
from clapdesk.core.store.writer_lock import LibraryBusy, WriterLock

__all__ = ["Library", "LibraryBusy"]

log = logging.getLogger(__name__)


def _refuse_damaged(catalog: Catalog) -> None:
    """No indexing into a damaged catalog: writing next to a bad page can spread the damage."""
    from clapdesk.core.store.integrity import DAMAGED_ADVICE, NOT_FINISHED, quick_check

    problem = quick_check(catalog)
    if problem == NOT_FINISHED:
        log.info("the catalog check ran out of time; indexing goes on")
    elif problem:
        raise CatalogError(
            f"the catalog {catalog.path} is damaged ({problem}); nothing was written. "
            f"{DAMAGED_ADVICE}")


class LibraryReadOnly(CatalogError):
    """The library's folder or catalog cannot be written (read-only file system, permissions)."""


class Library:
    def __init__(self, root: str | Path | None = None, model: str | None = None,
                 device: str | None = None, precision: str | None = "float32",
                 allow_download: bool = True) -> None:
        self.paths = LibraryPaths(root)
        self.paths.root.mkdir(parents=True, exist_ok=True)
        self._catalogs = CatalogPerThread(self.paths.catalog)
        remembered = self.catalog.get_meta("model")
        self.model_ref = model or os.environ.get("CLAPDESK_MODEL") or remembered or DEFAULT_MODEL
        # A library remembers its model. Naming another one searches with it only where its
        # vectors are all there; switching is a re-embedding run of its own (model_switch.py).
        self.device = device
        # "auto": float32 until the first indexing has chosen (index/precision_choice.py).
        self.precision = precision
        self.precision_choice: PrecisionChoice | None = None
        self.allow_download = allow_download
        self._identity: ModelIdentity | None = None
        self._embedder: ClapEmbedder | None = None
        self._index: VectorIndex | None = None
        self._model_lock = threading.Lock()
        self._identity_lock = threading.Lock()
        self._model_loading = False  # a thread is loading the model now (see model_loading)
        self._indexing = False  # an indexing run is going on (it loads the model when it needs it)
        self.writer_lock = WriterLock(self.paths.lock, self.paths.root)
        self.load_warning: str | None = None  # set when a fine-tuned version fell back
        self.timeline: Timeline | None = None  # the last indexing run's (index/model_loader.py)

    @property
    def catalog(self) -> Catalog:
        """The calling thread's connection to the catalog: the window's thread, the model pool
        and each general pool thread have their own, so no thread commits another's writes."""
        return self._catalogs.get()

    # -- the model ------------------------------------------------------------------------------
    @property
    def identity(self) -> ModelIdentity:
        """Resolving is cheap (no torch): the hub cache or the folder is looked up."""
        if self._identity is None:
            with self._identity_lock:  # once: a plain folder's weights are hashed (seconds)
                if self._identity is None:
                    self._identity = resolve_model(self.model_ref,
                                                   allow_download=self.allow_download)
        return self._identity

    @property
    def model_key_if_known(self) -> ModelKey | None:
        """The model key when the model is resolved already, else None (never waits: a search
        during a first run's first seconds must not wait for the weights to be hashed)."""
        return self.model_key if self._identity is not None else None

    @property
    def active_version(self) -> str | None:
        return self.catalog.get_meta(f"active_version:{self.identity.encoder_key}")

    @property
    def model_key(self) -> ModelKey:
        """The key of the vectors searched now: the encoder plus any fine-tuned version."""
        return ModelKey.of(self.identity.encoder_key, self.active_version)

    def use_model(self, ref: str) -> None:
        """Use another model from now on (before it has loaded: the window's fallback to the
        library's own model when the one named has no vectors here yet)."""
        with self._model_lock:
            self.model_ref = ref
            self._identity, self._embedder, self._index = None, None, None

    @property
    def model_loaded(self) -> bool:
        return self._embedder is not None

    @property
    def model_loading(self) -> bool:
        """True while another thread loads the model (an indexing run's first seconds): a
        search then answers by names, tags, tempo and key at once instead of waiting."""
        return (self._model_loading or self._indexing) and self._embedder is None

    def embedder(self) -> ClapEmbedder:
        """The loaded model, loading it once (thread-safe); raises ModelError with a plain message."""
        with self._model_lock:
            if self._embedder is None:
                self._model_loading = True
                try:
                    device = pick_device(self.device)
                    embedder = ClapEmbedder(self.identity, device=device,
                                            precision=self._precision_to_load(device))
                    self._apply_version(embedder)
                finally:
                    self._model_loading = False
                self._embedder = embedder
                # The exact commit (or weights digest) the vectors come from, in full: their
                # key holds only its first 16 characters.
                revision_key = f"revision:{self.identity.encoder_key}"
                try:
                    if self.catalog.get_meta(revision_key) != self.identity.revision:
                        self.catalog.set_meta(revision_key, self.identity.revision)
                except Exception as exc:  # a read-only library still searches
                    log.info("model revision not recorded: %s", exc)
                if self.catalog.get_meta("model") is None:
                    # The first model a library loads is its own; another one becomes its
                    # own only once every sound has its vectors (model_switch.after_index).
                    self.catalog.set_meta("model", self.model_ref)
            return self._embedder

    def _auto_precision(self, catalog: Catalog) -> AutoPrecision | None:
        """What an indexing run needs to choose the precision, when "auto" has not chosen yet
        (once per library, model and CPU: the first indexing's first files decide)."""
        if self.precision != precision_choice.AUTO:
            return None
        key = self.identity.encoder_key
        self.precision_choice = precision_choice.stored(catalog, key)
        if self.precision_choice is not None:
            return None

        def prepare(embedder: ClapEmbedder) -> PrecisionTrial | PrecisionChoice | None:
            # The device is known once the model is: asking before would import torch on the
            # indexing thread, 2.4 s before the folders are even scanned on a 2-core CPU.
            if embedder.device != "cpu":
                return None  # a GPU runs half precision (device_plan): nothing to choose
            return PrecisionTrial.prepare(embedder)

        def chosen(choice: PrecisionChoice) -> None:
            self.precision_choice = choice
            precision_choice.record(catalog, key, choice)

        return AutoPrecision(prepare, chosen)

    def _precision_to_load(self, device: str) -> str:
        if self.precision != precision_choice.AUTO:
            return self.precision
        if device != "cpu":
            return precision_for(device, self.precision)  # half precision on a GPU
        self.precision_choice = precision_choice.stored(self.catalog, self.identity.encoder_key)
        return self.precision_choice.precision if self.precision_choice else "float32"

    def _apply_version(self, embedder: ClapEmbedder) -> None:
        version = self.active_version
        if not version:
            return
        try:
            from clapdesk.core.finetune.versions import load_heads

            audio_head, text_head = load_heads(self.paths.models, version, embedder)
        except Exception as exc:
            log.warning("fine-tuned version %s failed to load (%s); using the base model",
                        version, exc)
            self.catalog.set_meta(f"active_version:{self.identity.encoder_key}", None)
            self.load_warning = (f"The fine-tuned version '{version}' could not be loaded "
                                 f"({exc}); clapdesk fell back to the base model.")
            return
        embedder.use_heads(audio_head, text_head, self.model_key)

    def set_active_version(self, version: str | None) -> None:
        """Switch heads (a fine-tuned version or the base); vectors are re-projected, not re-made."""
        self.catalog.set_meta(f"active_version:{self.identity.encoder_key}", version)
        with self._model_lock:
            if self._embedder is not None:
                if version:
                    self._apply_version(self._embedder)
                else:
                    model = self._embedder.model
                    self._embedder.use_heads(model.audio_projection, model.text_projection,
                                             self.model_key)
        self._index = None

    # -- the index ------------------------------------------------------------------------------
    def vector_index(self) -> VectorIndex:
        if self._index is None or self._index.model_key != self.model_key:
            index = VectorIndex(self.paths.index_file(model_slug(self.model_key)), self.model_key)
            index.open(self.catalog)
            self._index = index
        return self._index

    # -- writing --------------------------------------------------------------------------------
    def acquire_writer(self) -> None:
        """Take the library's writer lock, or raise LibraryBusy (see store/writer_lock.py), or
        LibraryReadOnly where the library cannot be written at all."""
        if self.catalog.readonly or not os.access(self.paths.root, os.W_OK):
            raise LibraryReadOnly(
                f"the library is read-only ({self.paths.root}: a read-only file system or no "
                "permission to write): searching works, indexing and tagging need it writable")
        self.writer_lock.acquire()

    def release_writer(self) -> None:
        self.writer_lock.release()

    @property
    def holds_writer(self) -> bool:
        """True while this Library holds the writer lock (an indexing run, for one)."""
        return self.writer_lock.held

    def index_folders(self, folders: list[str], progress: Callable[[Progress], None] | None = None,
                      cancel: threading.Event | None = None, workers: int | None = None,
                      purge_missing: bool = False) -> IndexReport:
        """Add folders to the library and bring it up to date with them.

        `purge_missing` forgets the tags and favourites of vanished files (kept otherwise
        until they come back, or for store.missing.PURGE_AFTER_DAYS)."""
        self.acquire_writer()
        self._indexing = True
        try:
            # The indexer gets its own connection: it commits from its own thread while the
            # GUI keeps reading through ours (WAL lets both proceed).
            catalog = Catalog(self.paths.catalog)
            try:
                _refuse_damaged(catalog)
                if self.active_version:
                    # Load first: a version that fails falls back to the base model, and the
                    # index must be the base model's, not the broken version's.
                    self.embedder()
                indexer = Indexer(catalog, self.vector_index(), self.embedder, workers=workers,
                                  model_rate=lambda: model_rate(self.identity.folder),
                                  auto=self._auto_precision(catalog))
                self.timeline = indexer.timeline  # the run's moments, for diagnostics
                report = indexer.run([os.path.abspath(f) for f in folders], progress, cancel,
                                     purge_missing=purge_missing)
                report.precision = self.precision_choice
                model_switch.after_index(self, catalog, report)
                return report
            finally:
                catalog.close()
        finally:
            self._indexing = False
            self.release_writer()

    def rescan(self, progress: Callable[[Progress], None] | None = None,
               cancel: threading.Event | None = None) -> IndexReport:
        return self.index_folders([path for _, path in self.catalog.roots()], progress, cancel)

    def purge_missing(self) -> int:
        """Forget every vanished file's tags and favourite now; returns how many."""
        from clapdesk.core.store import missing

        self.acquire_writer()
        try:
            return missing.purge(self.catalog)
        finally:
            self.release_writer()

    def remove_folder(self, folder: str) -> int:
        self.acquire_writer()
        try:
            gone = self.catalog.remove_root(folder)
            if self._index is not None:
                self._index.sync(self.catalog)
                self._index.save()
            return gone
        finally:
            self.release_writer()

    def close(self) -> None:
        if self._index is not None and self._index.dirty and not self.holds_writer:
            try:
                self.acquire_writer()
                self._index.save()
            except (LibraryBusy, LibraryReadOnly, OSError) as exc:
                log.info("index not saved on close: %s", exc)
            finally:
                self.release_writer()
        self._catalogs.close()

