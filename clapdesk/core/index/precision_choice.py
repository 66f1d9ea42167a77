"""Which precision the audio tower runs in when the producer leaves it to clapdesk ("auto").

On the first indexing of a library, clapdesk embeds a sample of the producer's own files in
float32 and in each reduced precision this CPU runs natively (bfloat16 on AVX512-BF16 or AMX,
int8 on VNNI, AMX or AVX2's 8-bit multiply-add), times both on the same windows, and compares
what search would return:
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
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from clapdesk.core.embed.cpu_features import INT8_DOT_FLAGS, cpu_flags
from clapdesk.core.index.known_windows import KnownWindows
from clapdesk.core.index.model_loader import CHOOSING_PRECISION, Timeline

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
    name = ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as cpuinfo:
            name = next((line for line in cpuinfo if line.startswith("model name")), "")
    except OSError:
        pass
    flags = sorted(f for fs in NATIVE_FLAGS.values() for f in fs if f in cpu_flags())
    return hashlib.sha1(f"{name}|{','.join(flags)}".encode()).hexdigest()[:12]


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


def sample_files(folders: Sequence[str], count: int = SAMPLE_FILES) -> list[str]:
    """Up to `count` audio files spread evenly over the folders' files (sorted, so the same
    library gives the same sample)."""
    from clapdesk.core.ingest.scan import walk_audio

    paths = sorted({found.path for folder in folders for found in walk_audio(folder).found})
    if len(paths) <= count:
        return paths
    step = len(paths) / count
    return [paths[int(i * step)] for i in range(count)]


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


def _embed(embedder: Any, files: list[list[np.ndarray]], towers: dict[str, Tower]
           ) -> tuple[dict[str, np.ndarray], dict[str, float], dict[str, np.ndarray]]:
    """Per-file vectors, total seconds and per-window features for each tower, on the same
    mel batches, with the towers taking turns on every batch so a busy machine hurts each
    alike."""
    import torch

    from clapdesk.core.index.indexer import BATCH_WINDOWS

    flat = [w for windows in files for w in windows]
    features: dict[str, list[np.ndarray]] = {name: [] for name in towers}
    seconds = dict.fromkeys(towers, 0.0)
    for tower in towers.values():  # first-call set-up of the kernels, out of the clock
        mel = embedder._fast_mel(flat[:BATCH_WINDOWS])["input_features"]
        tower(mel, torch.zeros((len(mel), 1), dtype=torch.bool))
    for start in range(0, len(flat), BATCH_WINDOWS):
        mel = embedder._fast_mel(flat[start:start + BATCH_WINDOWS])["input_features"]
        longer = torch.zeros((len(mel), 1), dtype=torch.bool)
        for name, tower in towers.items():
            began = time.perf_counter()
            out = tower(mel, longer).pooler_output.float().numpy()
            seconds[name] += time.perf_counter() - began
            features[name].append(out)
    vectors, by_window = {}, {}
    for name, parts in features.items():
        feats, pooled, at = np.concatenate(parts), [], 0
        for windows in files:
            pooled.append(feats[at:at + len(windows)].mean(axis=0))
            at += len(windows)
        vectors[name] = embedder.project_audio(np.stack(pooled).astype(np.float32))
        by_window[name] = feats
    return vectors, seconds, by_window


def decode_sample(paths: Sequence[str], rate: int) -> list[tuple[str, list[np.ndarray]]]:
    """The sample's windows, decoded as the indexer decodes files: in decoder processes, with
    the per-file time and memory limits, so a hostile file cannot hang or exhaust the app and
    the decoding libraries' notes never reach the terminal. Files that fail are left out (the
    indexer reports them)."""
    from clapdesk.core.index.decoding import DecodePool, DecodeRequest, decode_file, decode_seconds

    pool = DecodePool(min(2, os.cpu_count() or 1))
    files: list[tuple[str, list[np.ndarray]]] = []
    try:
        for path in paths:
            try:
                st = os.stat(path)
                future = pool.submit(decode_file, DecodeRequest(
                    path, st.st_size, st.st_mtime_ns, rate, idle=False))
                result = future.result(timeout=decode_seconds())
            except Exception as exc:  # a stuck decoder is ended; the indexer reports the file
                log.info("precision sample: %s skipped (%s)", path, exc or type(exc).__name__)
                pool.kill()
                continue
            if result.decoded is not None and result.decoded.windows:
                files.append((path, result.decoded.windows))
    finally:
        pool.close()
    return files


def decide(embedder: Any, paths: Sequence[str], native: list[str] | None = None,
           towers: dict[str, Tower] | None = None, known: KnownWindows | None = None,
           timeline: Timeline | None = None) -> PrecisionChoice | None:
    """Compare each native candidate with float32 on `paths`; None when there are too few
    files to tell (the library stays float32 and decides on a later run).

    `towers` replaces the candidates' towers (tests inject a bad one). `known` receives the
    sample's window features in the precision chosen, for the indexer to reuse; `timeline`
    (the indexing run's) is marked when the comparison starts, for its progress."""
    from clapdesk.core.embed.fast_tower import build_fast_tower

    native = native_precisions() if native is None else native
    reference = embedder.fast_tower
    if embedder.device != "cpu" or embedder.precision != "float32":
        return PrecisionChoice("float32", True, "the reduced precisions are chosen on a CPU only")
    if reference is None:
        return PrecisionChoice("float32", True, "this model's audio tower runs only as "
                               "transformers ships it, in float32")
    if not native:
        return PrecisionChoice("float32", True, "this CPU runs neither bfloat16 nor int8 natively")
    if len(paths) < MIN_FILES:
        return None  # too few to tell, whatever they decode to: nothing is read
    if timeline is not None:
        timeline.mark(CHOOSING_PRECISION, f"{len(paths)} files")
    decoded = decode_sample(paths, embedder.sampling_rate)
    files = [windows for _, windows in decoded]
    if len(files) < MIN_FILES:
        return None
    candidates = towers if towers is not None else {}
    if towers is None:
        for precision in native:
            tower = build_fast_tower(embedder.model.audio_model, precision)
            if tower is not None:
                candidates[precision] = tower
    vectors, seconds, by_window = _embed(embedder, files, {"float32": reference, **candidates})
    text = embedder.embed_text(list(QUERIES))
    figures: dict[str, Any] = {"files": len(files), "windows": sum(map(len, files)),
                               "float32_ms_per_window": round(
                                   1000 * seconds["float32"] / sum(map(len, files)), 1)}
    best: tuple[float, str] | None = None
    for precision in candidates:
        overlap = top_k_overlap(vectors["float32"], vectors[precision], text,
                                min(TOP_K, len(files) // 2))
        speedup = seconds["float32"] / max(seconds[precision], 1e-9)
        figures[precision] = {"top10_overlap": overlap, "speedup": round(speedup, 2)}
        keeps = min(overlap.values()) >= KEEPS_RESULTS
        if keeps and speedup >= FASTER and (best is None or speedup > best[0]):
            best = (speedup, precision)
    if best is None:
        lost = [p for p in candidates if min(figures[p]["top10_overlap"].values()) < KEEPS_RESULTS]
        why = (f"{' and '.join(lost)} changed search results on your files"
               if lost else "no reduced precision was clearly faster here")
        if known is not None:
            known.add([path for path, _ in decoded], files, by_window["float32"])
        return PrecisionChoice("float32", True, why, True, figures)
    speedup, precision = best
    if known is not None:
        known.add([path for path, _ in decoded], files, by_window[precision])
    overlap = figures[precision]["top10_overlap"]
    reason = (f"{speedup:.1f}x faster than float32 on this CPU, which runs it natively; "
              f"{100 * min(overlap.values()):.0f} % of float32's top 10 kept on "
              f"{len(files)} of your files")
    choice = PrecisionChoice(precision, True, reason, True, figures)
    choice.tower = candidates[precision]  # type: ignore[attr-defined]
    return choice


def settle(library: Any, catalog: Any, folders: Sequence[str],
           known: KnownWindows | None = None,
           timeline: Timeline | None = None) -> PrecisionChoice | None:
    """Make the automatic choice if it is not made yet, switch the loaded model to it, and keep
    it in the catalog. Returns the choice in force (None: undecided, float32 for now). `known`
    receives the features of the sample the choice embedded, and `timeline` when it starts
    (see decide)."""
    encoder_key = library.identity.encoder_key
    choice = stored(catalog, encoder_key)
    if choice is not None:
        return choice
    embedder = library.embedder()
    paths = sample_files([os.path.abspath(f) for f in folders])
    choice = decide(embedder, paths, known=known, timeline=timeline)
    if choice is None:
        return None
    if choice.precision != "float32":
        embedder.use_audio_tower(choice.precision, choice.tower)  # type: ignore[attr-defined]
    try:
        catalog.set_meta(meta_key(encoder_key), choice.to_meta())
    except Exception as exc:  # a read-only library decides again next time
        log.info("precision choice not recorded: %s", exc)
    log.info("%s", choice.note())
    return choice
