"""Automatic tags: the vocabulary words a CLAP vector is most like (zero-shot)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Zero-shot vocabulary for automatic tags: instruments, sample types and moods producers search by.
AUTO_TAG_VOCABULARY: tuple[str, ...] = (
    "kick", "snare", "clap", "hihat", "cymbal", "tom", "percussion", "shaker", "rim",
    "808", "bass", "sub bass", "synth", "pad", "lead", "pluck", "arp", "chord", "piano",
    "keys", "organ", "guitar", "strings", "brass", "flute", "bell", "vocal", "choir",
    "fx", "riser", "impact", "noise", "ambience", "foley", "drum loop", "melody",
    "dark", "bright", "warm", "aggressive", "soft", "lo-fi", "distorted", "clean", "airy",
)
AUTO_TAGS_PER_FILE = 3



def auto_tags(vectors: np.ndarray, vocabulary_vectors: np.ndarray,
              vocabulary: Sequence[str] = AUTO_TAG_VOCABULARY) -> list[list[tuple[str, float]]]:
    """Per file, the vocabulary words CLAP finds most like it, as (tag, score) suggestions.

    Scores are softmax probabilities over the vocabulary (CLAP's own zero-shot recipe), so a
    tag is kept only when it stands out from the rest, not merely because it ranks first.
    """
    if len(vectors) == 0:
        return []
    # Row by row: one matrix product over all files gives other last bits for another number
    # of files, and a file's tags must not depend on which files were indexed with it.
    logits = 100.0 * np.stack([vocabulary_vectors @ row for row in vectors])
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    floor = 2.0 / len(vocabulary)
    out: list[list[tuple[str, float]]] = []
    for row in probs:
        best = np.argsort(row)[::-1][:AUTO_TAGS_PER_FILE]
        out.append([(vocabulary[i], float(row[i])) for i in best if row[i] >= floor])
    return out
