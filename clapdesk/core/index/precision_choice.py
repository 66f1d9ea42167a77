"""Which precision the audio tower runs in when the producer leaves it to clapdesk ("auto").

On the first indexing of a library, clapdesk embeds a sample of the producer's own files in
float32 and in each reduced precision this CPU runs natively (bfloat16 on AVX512-BF16 or AMX,
int8 on VNNI, AMX or AVX2's 8-bit multiply-add), times both on the same windows, and compares
what search would return (the sample is the run's first files: precision_trial.py):
the top 10 of a set of text queries and of sound-alike queries (each sample file against the
others). A candidate is taken only where it keeps at least 95 % of float32's top 10 in both and
is clearly faster; otherwise the library stays float32. The decision, with its reason and
figures, is kept in the catalog's meta table per model and per CPU, so it is made once (another
computer, or another model, decides again). A precision named in Settings or on the command
line always wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from clapdesk.core.embed.cpu_features import INT8_DOT_FLAGS, cpu_flags, cpu_model_line

log = logging.getLogger(__name__)

AUTO = "auto"
SAMPLE_FILES = 40  # about 45 windows: a few seconds per precision on a 2-core CPU
MIN_FILES = 20  # fewer, and a top 10 says little: decide on a later run
TOP_K = 10
KEEPS_RESULTS = 0.95  # top-10 overlap with float32, for text and for sound-alike queries
FASTER = 1.15  # a candidate must be this much faster than float32 to be worth any change
# What producers type, for the text half of the comparison (the text tower is float32 always).
QUERIES = ("punchy kick", "dark pad", "bright hihat", "deep bass loop", "noise riser",
           "soft piano", "aggressive snare", "airy vocal", "lo-fi drum loop", "metal impact",
           "warm rhodes chord", "vinyl crackle")
# CPU flags that run each reduced precision natively (Linux names). AVX2 counts for int8: its
# 8-bit multiply-add gives oneDNN about twice float32's product rate (245 against 118 GFLOPS
# on an AVX2-only EPYC), with the inputs kept to 7 bits there (cpu_linear.py says why).
NATIVE_FLAGS = {"bfloat16": ("amx_bf16", "avx512_bf16"),
                "int8": (*INT8_DOT_FLAGS, "avx2")}


@dataclass
class PrecisionChoice:
    precision: str
    automatic: bool
    reason: str
    decided_now: bool = False
    figures: dict[str, Any] = field(default_factory=dict)

    def note(self) -> str:
        """One line for the producer: which precision, and why."""
        how = "chosen automatically" if self.automatic else "set in Settings or on the command line"
        return f"precision: {self.precision} ({how}: {self.reason})"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "note": self.note()}

    def to_meta(self) -> str:
        out = asdict(self)
        out.pop("decided_now")
        return json.dumps(out)


def native_precisions(flags: frozenset[str] | None = None) -> list[str]:
    """The reduced precisions this CPU runs natively, fastest first."""
    flags = cpu_flags() if flags is None else flags
    return [p for p in ("bfloat16", "int8") if any(f in flags for f in NATIVE_FLAGS[p])]


def cpu_signature() -> str:
    """Short and stable per CPU model and instruction set: a decision made on one computer is
    not trusted on another."""
    flags = sorted(f for fs in NATIVE_FLAGS.values() for f in fs if f in cpu_flags())
    return hashlib.sha1(f"{cpu_model_line()}|{','.join(flags)}".encode()).hexdigest()[:12]


def meta_key(encoder_key: str) -> str:
    return f"precision_choice:{encoder_key}:{cpu_signature()}"


def stored(catalog: Any, encoder_key: str) -> PrecisionChoice | None:
    raw = catalog.get_meta(meta_key(encoder_key))
    if not raw:
        return None
    try:
        data = json.loads(raw)
        return PrecisionChoice(str(data["precision"]), True, str(data["reason"]),
                               figures=dict(data.get("figures", {})))
    except (ValueError, KeyError, TypeError):
        log.info("stored precision choice unreadable; deciding again")
        return None


def _top(scores: np.ndarray, k: int) -> list[set[int]]:
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return [set(row.tolist()) for row in order]


def top_k_overlap(reference: np.ndarray, candidate: np.ndarray, text: np.ndarray,
                  k: int = TOP_K) -> dict[str, float]:
    """Mean share of float32's top k that the candidate's vectors also return, for text
    queries and for sound-alike queries (each file against the others)."""
    def overlap(a: list[set[int]], b: list[set[int]]) -> float:
        return float(np.mean([len(x & y) / max(1, len(x)) for x, y in zip(a, b, strict=True)]))

    by_text = overlap(_top(text @ reference.T, k), _top(text @ candidate.T, k))
    similar = []
    for vectors in (reference, candidate):
        scores = vectors @ vectors.T
        np.fill_diagonal(scores, -np.inf)  # a file is not its own sound-alike
        similar.append(_top(scores, k))
    return {"text": round(by_text, 4), "sound_alike": round(overlap(*similar), 4)}


Tower = Callable[[Any, Any], Any]


def judge(embedder: Any, reference: np.ndarray, candidates: dict[str, np.ndarray],
          seconds: dict[str, float], text: np.ndarray, windows_timed: int, files: int,
          windows: int) -> PrecisionChoice:
    """The choice, from each tower's per-file features of the same files (float32's as
    `reference`) and each tower's seconds over the same `windows_timed` windows."""
    vectors = {name: embedder.project_audio(feats.astype(np.float32))
               for name, feats in {"float32": reference, **candidates}.items()}
    figures: dict[str, Any] = {"files": files, "windows": windows,
                               "float32_ms_per_window": round(
                                   1000 * seconds["float32"] / max(1, windows_timed), 1)}
    best: tuple[float, str] | None = None
    for precision in candidates:
        overlap = top_k_overlap(vectors["float32"], vectors[precision], text,
                                min(TOP_K, files // 2))
        speedup = seconds["float32"] / max(seconds[precision], 1e-9)
        figures[precision] = {"top10_overlap": overlap, "speedup": round(speedup, 2)}
        keeps = min(overlap.values()) >= KEEPS_RESULTS
        if keeps and speedup >= FASTER and (best is None or speedup > best[0]):
            best = (speedup, precision)
    if best is None:
        lost = [p for p in candidates if min(figures[p]["top10_overlap"].values()) < KEEPS_RESULTS]
        why = (f"{' and '.join(lost)} changed search results on your files"
               if lost else "no reduced precision was clearly faster here")
        return PrecisionChoice("float32", True, why, True, figures)
    speedup, precision = best
    overlap = figures[precision]["top10_overlap"]
    reason = (f"{speedup:.1f}x faster than float32 on this CPU, which runs it natively; "
              f"{100 * min(overlap.values()):.0f} % of float32's top 10 kept on "
              f"{files} of your files")
    return PrecisionChoice(precision, True, reason, True, figures)


def record(catalog: Any, encoder_key: str, choice: PrecisionChoice) -> None:
    """Keep the choice in the catalog, so it is made once per library, model and CPU."""
    try:
        catalog.set_meta(meta_key(encoder_key), choice.to_meta())
    except Exception as exc:  # a read-only library decides again next time
        log.info("precision choice not recorded: %s", exc)
    log.info("%s", choice.note())
