"""New files are catalogued from their names and headers before the model has heard them.

On a first indexing run of a large folder the model needs hours; a producer who searches in
the first minute should still find "kick 808" by its name, "loops at 90 BPM in A minor" by what
the names say, and "under 2 s" by the header's length. So right after the scan, while the model
loads and the first files decode, every new file gets its catalog row: path and stamps, the
length, rate and channels from its header (WAV, AIFF and FLAC state them in a few bytes), and
the tempo, key, kind and tags its name and folders state. It has no vector yet: search lists it
as not yet listened to (search/unheard.py) until the model's vector replaces the guess, and the
decoder's analysis then overwrites the row with what the sound itself says.

A run cancelled (or killed) before a file is embedded leaves its row without a vector; the next
run sees that and embeds it (plan.plan_run: a row without features is a job), so nothing is lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Protocol

import soundfile as sf

from clapdesk.core.analysis import names
from clapdesk.core.analysis.tags import name_tags
from clapdesk.core.ingest.audio import open_regular
from clapdesk.core.ingest.scan import FoundFile
from clapdesk.core.store.catalog import Catalog

log = logging.getLogger(__name__)

# Files per transaction: small enough that the indexer looks at the decoders and the model
# between chunks (it catalogues while the model loads), large enough that commits stay cheap.
CHUNK_FILES = 200
# Containers whose header states the length in a fixed place: reading it costs a few hundred
# microseconds. MP3 and OGG may need a scan of the whole file for an exact length; their length
# comes with decoding instead.
HEADER_LENGTH_FORMATS = frozenset({".wav", ".wave", ".aif", ".aiff", ".aifc", ".flac"})


class NewFile(Protocol):
    """What the indexer knows of a new file before decoding it."""

    found: FoundFile
    root_id: int
    file_id: int | None
    placeholder: int | None  # the row catalogued here, before decoding
    settled: bool  # the indexer wrote its real row (or its failure): no placeholder then


def header_fields(path: str) -> dict[str, object]:
    """Length, rate, channels, format and subtype from the header, or nothing when unsure."""
    if os.path.splitext(path)[1].lower() not in HEADER_LENGTH_FORMATS:
        return {}
    try:
        # Opened as the decoders open files: without blocking, and only a regular file (a pipe
        # or a device swapped in after the scan would wait or read for ever).
        fd, _stat = open_regular(path)
        with sf.SoundFile(fd, closefd=True) as handle:
            rate, frames, channels = handle.samplerate, handle.frames, handle.channels
            fmt, subtype = handle.format, handle.subtype
    except Exception as exc:  # a broken header fails properly when the file is decoded
        log.debug("header of %s not read: %s", path, exc)
        return {}
    if rate <= 0 or frames < 0:
        return {}
    return {"duration": frames / rate, "sample_rate": int(rate), "channels": int(channels),
            "format": fmt, "subtype": subtype}


def name_fields(path: str) -> dict[str, object]:
    """Kind, tempo and key as the file's name and folder state them (sources: "filename")."""
    near_name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    kind = names.kind_from_name(near_name)
    # The analysis reads a named tempo for loops only ("Kick 120" is not a tempo): the same here.
    bpm = names.bpm_from_name(near_name) if kind == "loop" else None
    key = names.key_from_name(near_name)
    return {"kind": kind, "bpm": bpm, "bpm_source": "filename" if bpm is not None else None,
            "musical_key": key, "key_source": "filename" if key is not None else None}


class FirstCatalogue:
    """Writes the rows of new files in chunks; `step()` does one chunk and says if any is left."""

    def __init__(self, catalog: Catalog, jobs: Sequence[NewFile],
                 root_path: Callable[[int], str]) -> None:
        self.catalog = catalog
        self.jobs = jobs
        self.todo = [job for job in jobs if job.file_id is None and job.placeholder is None
                     and not job.settled]
        self.root_path = root_path
        self.written = 0
        self.last_chunk: list[NewFile] = []
        self.durations: dict[int, float] = {}  # id(job) -> length its header states

    @property
    def finished(self) -> bool:
        return not self.todo

    def step(self) -> bool:
        """Catalogue the next CHUNK_FILES files (those already decoded or taken are skipped)."""
        chunk, self.todo = self.todo[:CHUNK_FILES], self.todo[CHUNK_FILES:]
        self.last_chunk = []
        with self.catalog.transaction():
            for job in chunk:
                if job.placeholder is not None or job.settled:
                    continue  # decoded and written before its turn came
                found = job.found
                header = header_fields(found.path)
                fields = {"error": None, "error_transient": 0, "ctime_ns": found.ctime_ns,
                          **header, **name_fields(found.path)}
                job.placeholder = self.catalog.upsert_file(
                    found.path, job.root_id, found.size, found.mtime_ns, None, **fields)
                for source, tags in name_tags(found.path, self.root_path(job.root_id)).items():
                    self.catalog.set_tags(job.placeholder, [(t, 1.0) for t in tags], source)
                self.written += 1
                self.last_chunk.append(job)
                if isinstance(header.get("duration"), float):
                    self.durations[id(job)] = header["duration"]  # type: ignore[assignment]
        return not self.finished

    def undo(self) -> int:
        """Take back the rows of files not settled: the model never loaded (a broken or missing
        model), and a library whose model cannot load should be left as it was."""
        rows = [job.placeholder for job in self.jobs
                if job.placeholder is not None and not job.settled]
        if rows:
            self.catalog.delete_files([r for r in rows if r is not None])
        return len(rows)

    def run_all(self) -> None:
        while self.step():
            pass
