"""Log-mel throughput: transformers' ClapFeatureExtractor against clapdesk's BatchedLogMel.

Prints one JSON object: clips/s for both (CPU, and CUDA when present), the speed-up, the largest
log-mel difference, and the cosine between embeddings of both feature sets through the full
laion/larger_clap_music architecture with random weights (no download needed).

    python benchmarks/bench_features.py [--clips 64] [--batch 8] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable


def _threads_from_argv() -> int:
    args = sys.argv[1:]
    return int(args[args.index("--threads") + 1]) if "--threads" in args else 1


# numpy's OpenBLAS (the reference's mel product) fixes its thread count at import: give it the
# same count as torch, or on a shared machine its spinning threads slow the reference down 3-5x.
os.environ.setdefault("OPENBLAS_NUM_THREADS", str(_threads_from_argv()))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers import (  # noqa: E402
    ClapAudioConfig,
    ClapConfig,
    ClapFeatureExtractor,
    ClapModel,
    ClapTextConfig,
)

from clapdesk.core.embed.log_mel import BatchedLogMel  # noqa: E402

SR = 48_000


def make_clips(count: int, seed: int = 0) -> list[np.ndarray]:
    """Decaying harmonic notes with noise, 0.5 to 10 s, like one-shots and loops in a library."""
    rng = np.random.default_rng(seed)
    clips = []
    for seconds in rng.uniform(0.5, 10.0, count):
        t = np.arange(int(seconds * SR)) / SR
        pitch = rng.uniform(50.0, 1000.0)
        tone = sum(rng.uniform(0.05, 0.4) / k * np.sin(2 * np.pi * pitch * k * t) for k in range(1, 7))
        envelope = np.exp(-t * rng.uniform(0.2, 4.0))
        clips.append((tone * envelope + 0.01 * rng.standard_normal(t.size)).astype(np.float32))
    return clips


def clips_per_second(
    methods: dict[str, Callable[[list[np.ndarray]], object]],
    clips: list[np.ndarray],
    batch: int,
    repeats: int,
    threads: int,
) -> dict[str, float]:
    """Best pass of each method over all clips, the methods taking turns pass by pass.

    The machine is shared: taking turns exposes every method to the same background load, and
    the best pass is the least disturbed one.
    """
    best = dict.fromkeys(methods, float("inf"))
    for _ in range(repeats):
        for name, featurize in methods.items():
            torch.set_num_threads(1 if name.endswith("1_thread") else threads)
            start = time.perf_counter()
            for i in range(0, len(clips), batch):
                featurize(clips[i : i + batch])
            best[name] = min(best[name], time.perf_counter() - start)
    torch.set_num_threads(threads)
    return {f"{name}_clips_per_s": len(clips) / seconds for name, seconds in best.items()}


def larger_clap_music_random() -> ClapModel:
    """The laion/larger_clap_music architecture (HTSAT-large audio, RoBERTa-base text), random weights."""
    torch.manual_seed(0)
    audio = ClapAudioConfig(
        depths=[2, 2, 12, 2], num_attention_heads=[4, 8, 16, 32], hidden_size=1024,
        patch_embeds_hidden_size=128, projection_dim=512, enable_fusion=False,
        projection_hidden_act="relu",
    )
    text = ClapTextConfig(hidden_size=768, projection_dim=512, projection_hidden_act="relu")
    config = ClapConfig(
        text_config=text.to_dict(), audio_config=audio.to_dict(), projection_dim=512,
        projection_hidden_act="relu",
    )
    return ClapModel(config).eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    # One thread by default: on 2 shared cores, two spinning OpenMP/OpenBLAS threads per process
    # made both extractors 3-10x slower; on an idle machine one thread was about as fast as two.
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--embed-clips", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    clips = make_clips(args.clips)
    extractor = ClapFeatureExtractor(truncation="rand_trunc")  # larger_clap_music's settings

    def reference(batch: list[np.ndarray]) -> dict:
        return extractor(batch, sampling_rate=SR, return_tensors="pt")

    fast = BatchedLogMel(extractor)
    exact = BatchedLogMel(extractor, compute_dtype=torch.float64)
    fast(clips[: args.batch])  # warm-up: first calls allocate and plan the FFT
    exact(clips[: args.batch])
    methods = {
        "reference": reference,
        "batched_float32": fast,
        "batched_float32_1_thread": fast,  # the reference is single-threaded numpy
        "batched_float64": exact,
    }
    result: dict = {
        "clips": args.clips,
        "batch": args.batch,
        "clip_seconds_mean": round(float(np.mean([len(c) for c in clips])) / SR, 2),
        "torch_threads": args.threads,
        "openblas_threads": os.environ["OPENBLAS_NUM_THREADS"],
        "clips_per_stft": fast.clips_per_stft,
        **clips_per_second(methods, clips, args.batch, args.repeats, args.threads),
    }
    for name in ("batched_float32", "batched_float32_1_thread", "batched_float64"):
        result[f"speedup_{name.removeprefix('batched_')}"] = (
            result[f"{name}_clips_per_s"] / result["reference_clips_per_s"]
        )

    diffs32, diffs64 = [], []
    for i in range(0, len(clips), args.batch):
        ref = reference(clips[i : i + args.batch])["input_features"]
        diffs32.append((fast(clips[i : i + args.batch])["input_features"] - ref).abs().max().item())
        diffs64.append((exact(clips[i : i + args.batch])["input_features"] - ref).abs().max().item())
    result["max_abs_diff_db_float32"] = max(diffs32)
    result["max_abs_diff_db_float64"] = max(diffs64)

    if torch.cuda.is_available():
        on_gpu = BatchedLogMel(extractor, device="cuda", compute_dtype=torch.float32)

        def gpu(batch: list[np.ndarray]) -> None:
            on_gpu(batch)
            torch.cuda.synchronize()

        gpu(clips[: args.batch])
        result.update(
            clips_per_second({"batched_cuda": gpu}, clips, args.batch, args.repeats, args.threads)
        )

    model = larger_clap_music_random()
    sample = clips[: args.embed_clips]
    with torch.inference_mode():
        ref_vectors = model.get_audio_features(**reference(sample)).pooler_output
        fast_vectors = model.get_audio_features(**fast(sample)).pooler_output
    cosine = torch.nn.functional.cosine_similarity(ref_vectors.double(), fast_vectors.double(), dim=-1)
    result["embedding_clips"] = len(sample)
    result["embedding_cosine_min_float32"] = cosine.min().item()
    result["embedding_one_minus_cosine_max_float32"] = f"{(1.0 - cosine).max().item():.2e}"
    result = {k: round(v, 6) if isinstance(v, float) else v for k, v in result.items()}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
