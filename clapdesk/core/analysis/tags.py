"""What indexing reads about a file besides its vector: tags from its folders and name, and the
catalog columns of its analysis (tempo, key, kind, loudness, brightness)."""

from __future__ import annotations

import functools
import os

from clapdesk.core.analysis.names import name_tokens
from clapdesk.core.ingest.audio import DecodedAudio
from clapdesk.core.ingest.text import readable


def name_tags(path: str, root: str) -> dict[str, list[str]]:
    """Tags read from the folders between the library root and the file, and from its name."""
    stem = os.path.splitext(os.path.basename(path))[0]
    return {"folder": list(_folder_words(os.path.dirname(path), root)),
            "filename": name_tokens(readable(stem))}


@functools.lru_cache(maxsize=4096)
def _folder_words(folder: str, root: str) -> tuple[str, ...]:
    """A folder's words, once per folder: the files of a pack share them (an import of 100k
    files spent 40 % of its time here)."""
    relative = os.path.relpath(folder, root) if root else ""
    words: list[str] = []
    if relative and relative != ".":
        for part in relative.split(os.sep):
            for token in name_tokens(readable(part)):  # a Latin-1 folder name is words too
                if token not in words:
                    words.append(token)
    return tuple(words)


def analyse_file(decoded: DecodedAudio, path: str) -> dict[str, object]:
    """Catalog columns from the analysis of the decoded start of a file."""
    from clapdesk.core.analysis.sound import analyse

    # Only the first stretch is decoded for analysis: the real length still decides loop or hit.
    # The parent folder counts too: "Drum Loops/dusty 01.wav" is a loop.
    near_name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    result = analyse(decoded.analysis, decoded.analysis_rate, name=near_name,
                     total_duration=decoded.info.duration)
    return {
        "bpm": result.bpm, "bpm_source": result.bpm_source,
        "musical_key": result.key, "key_source": result.key_source, "kind": result.kind,
        "peak_db": result.peak_db, "loudness_db": result.loudness_db,
        "brightness": result.brightness, "onset_rate": result.onset_rate,
    }
