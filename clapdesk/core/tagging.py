"""What indexing learns about a file besides its vector: name tags, analysis, automatic tags."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np

from clapdesk.core.audio import DecodedAudio
from clapdesk.core.names import name_tokens

log = logging.getLogger(__name__)

# Zero-shot vocabulary for automatic tags: instruments, sample types and moods producers search by.
AUTO_TAG_VOCABULARY: tuple[str, ...] = (
    "kick", "snare", "clap", "hihat", "cymbal", "tom", "percussion", "shaker", "rim",
    "808", "bass", "sub bass", "synth", "pad", "lead", "pluck", "arp", "chord", "piano",
    "keys", "organ", "guitar", "strings", "brass", "flute", "bell", "vocal", "choir",
    "fx", "riser", "impact", "noise", "ambience", "foley", "drum loop", "melody",
    "dark", "bright", "warm", "aggressive", "soft", "lo-fi", "distorted", "clean", "airy",
)
AUTO_TAGS_PER_FILE = 3


def name_tags(path: str, root: str) -> dict[str, list[str]]:
    """Tags read from the folders between the library root and the file, and from its name."""
    relative = os.path.relpath(os.path.dirname(path), root) if root else ""
    folder_words: list[str] = []
    if relative and relative != ".":
        for part in relative.split(os.sep):
            for token in name_tokens(part):
                if token not in folder_words:
                    folder_words.append(token)
    stem = os.path.splitext(os.path.basename(path))[0]
    return {"folder": folder_words, "filename": name_tokens(stem)}


def analyse_file(decoded: DecodedAudio, path: str) -> dict[str, object]:
    """Catalog columns from the analysis of the decoded start of a file."""
    from clapdesk.core.analysis import analyse

    # Only the first stretch is decoded for analysis: the real length still decides loop or hit.
    # The parent folder counts too: "Drum Loops/dusty 01.wav" is a loop.
    near_name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
    result = analyse(decoded.analysis, decoded.analysis_rate, name=near_name,
                     total_duration=decoded.info.duration)
    return {
        "bpm": result.bpm, "bpm_source": result.bpm_source,
        "musical_key": result.key, "key_source": result.key_source, "kind": result.kind,
        "peak_db": result.peak_db, "loudness_db": result.loudness_db,
        "brightness": result.brightness,
    }


def auto_tags(vectors: np.ndarray, vocabulary_vectors: np.ndarray,
              vocabulary: Sequence[str] = AUTO_TAG_VOCABULARY) -> list[list[tuple[str, float]]]:
    """Per file, the vocabulary words CLAP finds most like it, as (tag, score) suggestions.

    Scores are softmax probabilities over the vocabulary (CLAP's own zero-shot recipe), so a
    tag is kept only when it stands out from the rest, not merely because it ranks first.
    """
    if len(vectors) == 0:
        return []
    logits = 100.0 * vectors @ vocabulary_vectors.T
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    floor = 2.0 / len(vocabulary)
    out: list[list[tuple[str, float]]] = []
    for row in probs:
        best = np.argsort(row)[::-1][:AUTO_TAGS_PER_FILE]
        out.append([(vocabulary[i], float(row[i])) for i in best if row[i] >= floor])
    return out
