"""The catalog row of each file an indexing run settles, and the copy of a duplicate's.

A file's row is written when its vector is (indexer._flush), in the same transaction, so a file
is either fully indexed or still to do. Written here: what decoding and analysis found, the
tags its name and folders give, and, for a new path, the tags and favourite of the vanished
file it turns out to be (store.missing).
"""

from __future__ import annotations

import logging

import numpy as np

from clapdesk.core.analysis.tags import name_tags
from clapdesk.core.embed.embedder import ClapEmbedder
from clapdesk.core.index.decode_queue import Decoded
from clapdesk.core.store import missing
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.vector_index import VectorIndex

log = logging.getLogger("clapdesk.core.index.indexer")


class FileRows:
    """Writes the rows of one indexing run."""

    def __init__(self, catalog: Catalog, index: VectorIndex) -> None:
        self.catalog = catalog
        self.index = index
        self._roots: dict[int, str] | None = None
        self._missing_left = missing.count(catalog)  # vanished files that may come back

    def copy_twin(self, item: Decoded, twin: int, embedder: ClapEmbedder) -> None:
        """Identical content is embedded once: the copy reuses its twin's feature and vector."""
        found = item.job.found
        _, feats = self.catalog.features(embedder.encoder_key, [twin])
        _, vectors = self.catalog.vectors(embedder.model_key, [twin])
        # The twin's own vector, not a re-projection: identical files, identical vectors.
        vector = vectors[0] if len(vectors) else embedder.project_audio(feats)[0]
        twin_record = self.catalog.get_file(twin)
        if item.decoded is None and twin_record is not None:
            item.analysis = {
                "duration": twin_record.duration, "sample_rate": twin_record.sample_rate,
                "channels": twin_record.channels, "format": twin_record.format,
                "subtype": twin_record.subtype, "bpm": twin_record.analysed_bpm,
                "bpm_source": twin_record.analysed_bpm_source, "musical_key": twin_record.analysed_key,
                "key_source": twin_record.analysed_key_source, "kind": twin_record.kind,
                "peak_db": twin_record.peak_db, "loudness_db": twin_record.loudness_db,
                "brightness": twin_record.brightness, "onset_rate": twin_record.onset_rate,
            }
        with self.catalog.transaction():
            file_id = self.write(item)
            self.catalog.put_feature(file_id, embedder.encoder_key, feats[0])
            self.catalog.put_vector(file_id, embedder.model_key, vector)
        self.index.add(np.array([file_id]), vector[None, :])
        log.debug("%s duplicates file %d", found.path, twin)

    def write(self, item: Decoded) -> int:
        """The file's row, with what its decoding and analysis found, its name's tags, and
        the tags and favourite of the vanished file it turns out to be, if any."""
        found, decoded = item.job.found, item.decoded
        info = decoded.info if decoded else None
        fields: dict[str, object] = {"error": None, "error_transient": 0, "ctime_ns": found.ctime_ns}
        if info is not None:
            fields.update(duration=info.duration, sample_rate=info.sample_rate,
                          channels=info.channels, format=info.format, subtype=info.subtype)
        fields.update(item.analysis)
        file_id = self.catalog.upsert_file(found.path, item.job.root_id, found.size,
                                           found.mtime_ns, item.digest, **fields)
        item.job.settled = True
        if item.job.file_id is None and self._missing_left:
            # A new file may be a vanished one come back: its own tags and favourite return.
            if missing.restore(self.catalog, file_id, found.path, item.digest):
                self._missing_left -= 1
        for source, tags in name_tags(found.path, self.root_path(item.job.root_id)).items():
            self.catalog.set_tags(file_id, [(t, 1.0) for t in tags], source)
        return file_id

    def root_path(self, root_id: int) -> str:
        """The library folder a file was found in, by its root's id."""
        if self._roots is None or root_id not in self._roots:
            self._roots = dict(self.catalog.roots())
        return self._roots.get(root_id, "")
