"""Search latency: the HNSW index at 10k, 100k and 1M vectors, text encoding, whole queries.

Prints one JSON object:
- per size: build time, VectorIndex.query p50/p95 for k=10 and recall@10 against exact search
  (stored vectors are 512-d, normalised and loosely clustered, as sounds of one kind are);
- text encoding time through the full larger_clap_music text tower (random weights);
- the whole query-to-results time of `search_text` on a 100k-file catalog (written in bulk),
  with and without constraints (tempo, kind) that make the search over-fetch.

    nice python benchmarks/bench_search.py [--sizes 10000,100000,1000000] [--max-build 480]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import full_model, load_average, quiet_libraries, rss_mb  # noqa: E402

quiet_libraries()

import hnswlib  # noqa: E402
import numpy as np  # noqa: E402

from clapdesk.core.store import vector_index as vi  # noqa: E402

DIM = 512
QUERIES = 300
TEXT_QUERIES = ("punchy kick", "dark ambient pad", "bright open hihat", "deep sub bass",
                "noise riser", "soft felt piano", "aggressive distorted snare", "airy vocal chop",
                "lo-fi drum loop", "metallic impact", "warm analog pluck", "vinyl crackle")
CONSTRAINED_QUERIES = ("punchy kick one-shot", "drum loop at 120 bpm", "dark pad in A minor",
                       "bass loop 140 bpm", "short bright hihat under 1 s")


def clustered_vectors(count: int, seed: int = 0, clusters: int = 2000, latent: int = 48) -> np.ndarray:
    """Normalised vectors around random centres, varying mostly along a few shared directions.

    Learned embeddings are not uniform noise in 512 dimensions: sounds of one kind cluster,
    and the spread within a cluster lies near a low-dimensional subspace. Vectors here are a
    centre, plus a `latent`-dimensional variation, plus a little isotropic noise.
    """
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, DIM)).astype(np.float32)
    basis = rng.standard_normal((latent, DIM)).astype(np.float32)
    out = np.empty((count, DIM), np.float32)
    for at in range(0, count, 100_000):
        n = min(100_000, count - at)
        pick = rng.integers(0, clusters, n)
        spread = rng.standard_normal((n, latent)).astype(np.float32) @ basis
        noise = rng.standard_normal((n, DIM)).astype(np.float32)
        block = centres[pick] + 0.5 * spread + 0.3 * noise
        out[at:at + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def query_vectors(stored: np.ndarray, count: int, seed: int = 1) -> np.ndarray:
    """Queries near stored vectors (a text or a sound close to some files), not copies of them."""
    rng = np.random.default_rng(seed)
    base = stored[rng.integers(0, len(stored), count)]
    q = base + 0.05 * rng.standard_normal(base.shape).astype(np.float32)
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def build(vectors: np.ndarray, max_seconds: float) -> tuple[vi.VectorIndex, float, int]:
    """A VectorIndex holding the vectors (labels 1..n), built on all cores in chunks.

    Returns the index, the build seconds and how many vectors it holds (fewer than asked when
    `max_seconds` ran out: the figures then say so).
    """
    index = vi.VectorIndex(Path(tempfile.gettempdir()) / "unused.hnsw", "bench")
    raw = hnswlib.Index(space="cosine", dim=DIM)
    raw.init_index(max_elements=len(vectors), M=vi.HNSW_M, ef_construction=vi.EF_CONSTRUCTION)
    start = time.perf_counter()
    held = 0
    chunk = 50_000
    while held < len(vectors) and time.perf_counter() - start < max_seconds:
        part = vectors[held:held + chunk]
        raw.add_items(part, np.arange(held + 1, held + 1 + len(part)), num_threads=os.cpu_count() or 1)
        held += len(part)
    seconds = time.perf_counter() - start
    raw.set_ef(vi.EF_SEARCH)
    index.index, index.dim = raw, DIM
    index.live = set(range(1, held + 1))
    return index, seconds, held


def percentile_ms(samples: list[float], q: float) -> float:
    return round(float(np.percentile(np.asarray(samples) * 1000.0, q)), 3)


def exact_top10(stored: np.ndarray, queries: np.ndarray) -> list[set[int]]:
    """Ground truth by brute force, in blocks (one matrix product per block, not per query)."""
    best = np.full((len(queries), 10), -2.0, np.float32)
    labels = np.zeros((len(queries), 10), np.int64)
    for at in range(0, len(stored), 100_000):
        scores = queries @ stored[at:at + 100_000].T
        merged = np.concatenate([best, scores], axis=1)
        merged_labels = np.concatenate(
            [labels, np.broadcast_to(np.arange(at + 1, at + 1 + scores.shape[1]), scores.shape)], axis=1)
        top = np.argpartition(-merged, 10, axis=1)[:, :10]
        best = np.take_along_axis(merged, top, axis=1)
        labels = np.take_along_axis(merged_labels, top, axis=1)
    return [set(row.tolist()) for row in labels]


def measure_ann(index: vi.VectorIndex, queries: np.ndarray, truth: list[set[int]]) -> dict[str, object]:
    latencies, recalls = [], []
    for q in queries[:20]:
        index.query(q, 10)  # warm caches
    for q, exact in zip(queries, truth):
        start = time.perf_counter()
        hits = index.query(q, 10)
        latencies.append(time.perf_counter() - start)
        recalls.append(len({i for i, _ in hits} & exact) / 10)
    return {"query_p50_ms": percentile_ms(latencies, 50), "query_p95_ms": percentile_ms(latencies, 95),
            "recall_at_10": round(float(np.mean(recalls)), 4),
            "recall_at_10_min": round(float(np.min(recalls)), 2)}


def ef_sweep(index: vi.VectorIndex, queries: np.ndarray, truth: list[set[int]]) -> dict[str, object]:
    """Recall and p95 at other ef settings, to choose EF_SEARCH from figures."""
    out: dict[str, object] = {}
    saved = vi.EF_SEARCH
    try:
        for ef in (32, 64, 256):
            vi.EF_SEARCH = ef
            figures = measure_ann(index, queries, truth)
            out[str(ef)] = {"p95_ms": figures["query_p95_ms"], "recall_at_10": figures["recall_at_10"]}
    finally:
        vi.EF_SEARCH = saved
    return out


def exact_search_ms(stored: np.ndarray, queries: np.ndarray) -> float:
    start = time.perf_counter()
    for q in queries[:20]:
        np.argpartition(-(stored @ q), 10)[:10]
    return round((time.perf_counter() - start) / 20 * 1000.0, 2)


# -- the whole query on a 100k catalog -----------------------------------------------------------
def fill_catalog(library, vectors: np.ndarray) -> None:
    """Rows for len(vectors) files, their analysis, tags and vectors, written in bulk."""
    catalog = library.catalog
    root = "/bench/library"
    root_id = catalog.add_root(root)
    rng = np.random.default_rng(3)
    kinds = np.where(rng.random(len(vectors)) < 0.3, "loop", "one-shot")
    keys = ("A minor", "C major", "F minor", "G major", None, None)
    now = time.time()
    file_rows = []
    for i in range(len(vectors)):
        loop = kinds[i] == "loop"
        file_rows.append((
            i + 1, os.fsencode(f"{root}/pack{i // 500:04d}/sound {i:06d}.wav"), root_id,
            1000 + i, 1_700_000_000_000_000_000 + i, f"{i:040x}",
            float(rng.uniform(2, 16) if loop else rng.uniform(0.1, 3)), 44100, 2, "WAV", "PCM_24",
            None, now, float(rng.choice((90, 120, 140, 174))) if loop else None,
            "filename" if loop else None, keys[i % len(keys)], "analysis" if i % 6 < 4 else None,
            str(kinds[i]), -1.0, -14.0, float(rng.random()),
        ))
    words = ("kick", "snare", "pad", "bass", "hihat", "riser", "dark", "bright", "warm")
    tag_rows = [(i + 1, words[(i * 7 + j) % len(words)], "auto", 0.5) for i in range(len(vectors))
                for j in range(3)]
    with catalog.transaction():
        catalog.db.executemany(
            "INSERT INTO files(id, path, root_id, size, mtime_ns, content_hash, duration, "
            "sample_rate, channels, format, subtype, error, indexed_at, bpm, bpm_source, "
            "musical_key, key_source, kind, peak_db, loudness_db, brightness) "
            "VALUES (" + ",".join("?" * 21) + ")", file_rows)
        catalog.db.executemany("INSERT INTO tags(file_id, tag, source, score) VALUES (?,?,?,?)",
                               tag_rows)
        catalog.db.executemany(
            "INSERT INTO vectors(file_id, model_key, vector) VALUES (?,?,?)",
            ((i + 1, library.model_key, vectors[i].tobytes()) for i in range(len(vectors))))


def whole_query(model_folder: Path, vectors: np.ndarray, prebuilt: vi.VectorIndex,
                scratch: Path) -> dict[str, object]:
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import search_text

    library = Library(root=scratch / "library", model=str(model_folder))
    start = time.perf_counter()
    fill_catalog(library, vectors)
    fill_seconds = time.perf_counter() - start
    # Save the already built index as the library's own, as an indexing run leaves it.
    saved = vi.VectorIndex(library.paths.index_file(vi.model_slug(library.model_key)),
                           library.model_key)
    saved.index, saved.dim, saved.live = prebuilt.index, DIM, set(prebuilt.live)
    saved.seen_row, saved.dirty = library.catalog.max_vector_row(library.model_key), True
    saved.save()
    library.close()

    library = Library(root=scratch / "library", model=str(model_folder))
    start = time.perf_counter()
    library.vector_index()
    open_seconds = time.perf_counter() - start
    start = time.perf_counter()
    embedder = library.embedder()
    load_seconds = time.perf_counter() - start
    # Random weights cost what the real model costs, but their text tower fails the health
    # check (text search would be refused): let it through, the timing is what is measured.
    embedder.text_health = dataclasses.replace(embedder.text_health, text_ok=True)
    embedder.embed_text(["warm up"])
    encode = []
    for text in TEXT_QUERIES:
        start = time.perf_counter()
        embedder.embed_text([text])
        encode.append(time.perf_counter() - start)
    # Time spent encoding inside each search, so the rest (index, catalog, filters) shows apart.
    inside: list[float] = []
    real_embed = embedder.embed_text

    def timed_embed(texts):
        start = time.perf_counter()
        out = real_embed(texts)
        inside.append(time.perf_counter() - start)
        return out

    embedder.embed_text = timed_embed
    plain, constrained, results, rest, rest_constrained = [], [], [], [], []
    for text in TEXT_QUERIES:
        start = time.perf_counter()
        response = search_text(library, text, k=50)
        plain.append(time.perf_counter() - start)
        rest.append(plain[-1] - inside[-1])
        results.append(len(response.hits))
    for text in CONSTRAINED_QUERIES:
        start = time.perf_counter()
        response = search_text(library, text, k=50)
        constrained.append(time.perf_counter() - start)
        rest_constrained.append(constrained[-1] - inside[-1])
        results.append(len(response.hits))
    del embedder.embed_text
    library.close()
    return {
        "catalog_files": len(vectors), "catalog_fill_seconds": round(fill_seconds, 1),
        "index_open_seconds": round(open_seconds, 3), "model_load_seconds": round(load_seconds, 1),
        "text_encode_p50_ms": percentile_ms(encode, 50), "text_encode_p95_ms": percentile_ms(encode, 95),
        "search_text_p50_ms": percentile_ms(plain, 50), "search_text_p95_ms": percentile_ms(plain, 95),
        "search_text_constrained_p50_ms": percentile_ms(constrained, 50),
        "search_text_constrained_p95_ms": percentile_ms(constrained, 95),
        "after_encoding_p50_ms": percentile_ms(rest, 50), "after_encoding_p95_ms": percentile_ms(rest, 95),
        "after_encoding_constrained_p50_ms": percentile_ms(rest_constrained, 50),
        "after_encoding_constrained_p95_ms": percentile_ms(rest_constrained, 95),
        "min_results": min(results), "k": 50,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--max-build", type=float, default=480.0, help="seconds per index build")
    parser.add_argument("--catalog-size", type=int, default=100_000)
    parser.add_argument("--no-model", action="store_true", help="skip text encoding and search_text")
    parser.add_argument("--model", type=Path, default=None)
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="clapdesk-bench-search-"))
    os.environ["CLAPDESK_CACHE"] = str(scratch / "cache")
    os.environ["CLAPDESK_CONFIG"] = str(scratch / "config")

    result: dict[str, object] = {
        "benchmark": "search", "dim": DIM, "hnsw_m": vi.HNSW_M,
        "ef_construction": vi.EF_CONSTRUCTION, "ef_search": vi.EF_SEARCH, "queries": QUERIES,
        "cpus": os.cpu_count(), "load_average_1min": load_average(), "sizes": {},
    }
    sizes = [int(s) for s in args.sizes.split(",") if s]
    # The whole-query test reuses the 100k index; build that size first when it is asked for.
    for size in sorted(sizes, key=lambda s: (s != args.catalog_size, s)):
        stored = clustered_vectors(size)
        queries = query_vectors(stored, QUERIES)
        index, seconds, held = build(stored, args.max_build)
        entry: dict[str, object] = {"build_seconds": round(seconds, 1), "vectors": held,
                                    "rss_mb": round(rss_mb())}
        if held < size:
            entry["note"] = (f"build stopped after {args.max_build:.0f} s with {held} of {size} "
                             "vectors; figures are for the vectors held")
        truth = exact_top10(stored[:held], queries)
        entry.update(measure_ann(index, queries, truth))
        entry["exact_numpy_query_ms"] = exact_search_ms(stored[:held], queries)
        entry["ef_sweep"] = ef_sweep(index, queries, truth)
        result["sizes"][str(size)] = entry  # type: ignore[index]
        if size == args.catalog_size and not args.no_model:
            result["whole_query"] = whole_query(args.model or full_model(), stored, index, scratch)
        del index, stored
    result["load_average_1min_end"] = load_average()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
