"""The GPU plan, tested from the figures a device would give (this machine has no GPU), and the
indexer's batch plumbing on the CPU: a batch of any size gives the same vectors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import tone, write_sound

from clapdesk.core.index import device_plan
from clapdesk.core.index.device_plan import (
    batch_for_memory,
    estimate_window_bytes,
    plan,
    precision_for,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path("/work/shared/clap-configs")
GIB, MIB = 2 ** 30, 2 ** 20


def test_half_precision_on_a_gpu_unless_the_producer_chose() -> None:
    assert precision_for("cuda", "auto") == "float16"
    assert precision_for("cuda:1", None) == "float16"
    assert precision_for("mps", "auto") == "float16"
    assert precision_for("cpu", "auto") == "float32"
    assert precision_for("cpu", None) == "float32"
    # A setting the producer chose wins, on any device.
    assert precision_for("cuda", "float32") == "float32"
    assert precision_for("cuda", "bfloat16") == "bfloat16"
    assert precision_for("cpu", "int8") == "int8"


def test_batches_fill_a_share_of_the_free_memory_in_multiples_of_eight() -> None:
    # 2 GiB free, 40 MiB a window: 0.6 x 2048 / 40 = 30.7 -> 24 (a multiple of 8).
    assert batch_for_memory(2 * GIB, 40 * MIB) == 24
    # A large GPU stops at the host-memory bound, a nearly full one at the useful least.
    assert batch_for_memory(80 * GIB, 40 * MIB) == device_plan.GPU_MAX_BATCH
    assert batch_for_memory(100 * MIB, 40 * MIB) == device_plan.GPU_MIN_BATCH
    assert batch_for_memory(-5, 40 * MIB) == device_plan.GPU_MIN_BATCH
    # Half the memory per window (float16 instead of float32): about twice the batch.
    assert batch_for_memory(4 * GIB, 40 * MIB) == 56  # 0.6 x 4096 / 40 = 61.4 -> 56
    assert batch_for_memory(4 * GIB, 20 * MIB) == 120  # 122.9 -> 120
    assert batch_for_memory(3 * GIB, 20 * MIB) == 88  # 0.6 x 3072 / 20 = 92.2 -> 88
    with pytest.raises(ValueError):
        batch_for_memory(GIB, 0)


def test_the_plan_per_device() -> None:
    cpu = plan("cpu", "float32", None, None, cores=2)
    assert (cpu.batch_windows, cpu.decoders) == (4, 2)
    assert plan("cpu", "float32", None, None, cores=16).decoders == 4  # the model needs cores
    gpu = plan("cuda", "float16", 10 * GIB, 30 * MIB, cores=16)
    assert gpu.batch_windows == 128 and gpu.decoders == 16  # every core decodes for a GPU
    assert "10.0 GiB free" in gpu.why
    unknown = plan("mps", "float16", None, None, cores=8)
    assert unknown.batch_windows == device_plan.GPU_MIN_BATCH and unknown.decoders == 8
    assert json.loads(json.dumps(gpu.to_json()))["batch_windows"] == 128


def test_window_memory_estimate_follows_the_tower(tiny_model: Path) -> None:
    from transformers import ClapConfig

    tiny = ClapConfig.from_pretrained(tiny_model).audio_config
    half, full = estimate_window_bytes(tiny, 2), estimate_window_bytes(tiny, 4)
    assert full == 2 * half > 0
    if not (CONFIGS / "larger_clap_music" / "config.json").is_file():
        pytest.skip("the real configurations (/work/shared/clap-configs) are not on this machine")
    large = ClapConfig.from_pretrained(CONFIGS / "larger_clap_music").audio_config
    unfused = ClapConfig.from_pretrained(CONFIGS / "clap-htsat-unfused").audio_config
    large_bytes = estimate_window_bytes(large, 2)
    # HTSAT-base (hidden 128 at the first stage) needs more than HTSAT-tiny (96), and a window
    # of it in float16 takes tens of megabytes, not kilobytes or gigabytes.
    assert large_bytes > estimate_window_bytes(unfused, 2) > half
    assert 10 * MIB < large_bytes < 500 * MIB


def test_plan_for_a_cpu_embedder_keeps_the_cpu_batch(tiny_model: Path) -> None:
    from clapdesk.core.embed.embedder import load_embedder

    embedder = load_embedder(str(tiny_model), device="cpu")
    chosen = device_plan.plan_for(embedder)
    assert chosen.device == "cpu" and chosen.batch_windows == 4
    assert device_plan.probe_window_bytes("cpu", lambda n: None) is None


def test_a_larger_batch_gives_the_same_vectors(tiny_model: Path, tmp_path: Path) -> None:
    """The batch plumbing a GPU uses (large batches, a deeper read-ahead), run on the CPU."""
    from clapdesk.core.index.indexer import Indexer
    from clapdesk.core.library import Library
    from clapdesk.core.store.catalog import Catalog

    folder = tmp_path / "sounds"
    for i in range(7):  # 1 to 25 s: files of one to three windows straddle the batches
        write_sound(folder / f"s{i}.wav", tone(1.0 + 4 * i, freq=110.0 * (i + 1), seed=i))
    vectors = {}
    for batch in (4, 16):
        library = Library(tmp_path / f"library-{batch}", model=str(tiny_model))
        catalog = Catalog(library.paths.catalog)
        try:
            indexer = Indexer(catalog, library.vector_index(), library.embedder,
                              batch_windows=batch)
            report = indexer.run([str(folder)])
            assert report.indexed == 7 and indexer.batch_windows == batch
            assert indexer._ready_limit() >= 2 * batch
            ids, matrix = catalog.vectors(library.model_key)
            paths = {r.id: Path(r.path).name for r in catalog.files([int(i) for i in ids])}
            vectors[batch] = {paths[int(i)]: v for i, v in zip(ids, matrix)}
        finally:
            catalog.close()
            library.close()
    assert vectors[4].keys() == vectors[16].keys()
    for name, vector in vectors[4].items():
        np.testing.assert_allclose(vectors[16][name], vector, atol=1e-5)


def test_the_gpu_benchmark_skips_cleanly_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available() or torch.backends.mps.is_available():
        pytest.skip("this machine has a GPU: the benchmark runs instead of skipping")
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_gpu.py"), "--quick"],
                         capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["skipped"] is True
    assert "no CUDA or MPS device" in result["reason"]
    assert "load_average" in result
