"""Quick fine-tuning time on 1,000 samples with the full larger_clap_music head sizes: every
setting tried (SETTINGS in clapdesk/core/finetune/training.py), chosen on validation packs,
judged on test packs.

The catalog is filled directly with 1,000 files carrying stored pre-projection features
(1024 dims, clustered by category with a per-pack offset, as a real library's would be) and
folder/file-name tags, so the figure is fine-tuning alone: text features through the full
RoBERTa text tower, head training (1024->512->512 audio, 768->512->512 text), re-projection
and saving. Target: under 60 s on a 2-core CPU. Prints one JSON object.

    python benchmarks/bench_finetune.py [--files 1000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import full_model, load_average, quiet_libraries  # noqa: E402

CATEGORIES = ("kick", "snare", "hihat", "clap", "bass", "pad", "lead", "pluck", "vocal", "fx")
FOLDERS = {"bass": "Bass", "fx": "FX"}
PACKS = ("Dusty Vault", "Neon Drums", "Cold Steel", "Warm Tapes", "808 Kit", "Lofi Dreams",
         "Trap Bible", "Analog Heat", "Glass Keys", "Deep Cuts")


def fill_catalog(library, files: int, seed: int = 0) -> None:
    """Files, features and name tags as indexing would have stored them (no audio needed)."""
    from clapdesk.core.analysis.tags import name_tags

    rng = np.random.default_rng(seed)
    encoder_key = library.identity.encoder_key
    centres = rng.standard_normal((len(CATEGORIES), 1024)).astype(np.float32)
    offsets = 0.5 * rng.standard_normal((len(PACKS), 1024)).astype(np.float32)
    root = "/bench/samples"
    catalog = library.catalog
    root_id = catalog.add_root(root)
    with catalog.transaction():
        for i in range(files):
            c, p = i % len(CATEGORIES), (i // len(CATEGORIES)) % len(PACKS)
            folder = FOLDERS.get(CATEGORIES[c], CATEGORIES[c].title() + "s")
            path = f"{root}/{PACKS[p]}/{folder}/{CATEGORIES[c]}_{i:04d}.wav"
            file_id = catalog.upsert_file(path, root_id, 1000, 0, f"hash{i}", error=None,
                                          duration=1.0, kind="one-shot")
            feature = centres[c] + offsets[p] + 0.8 * rng.standard_normal(1024).astype(np.float32)
            catalog.put_feature(file_id, encoder_key, feature)
            for source, tags in name_tags(path, root).items():
                catalog.set_tags(file_id, [(t, 1.0) for t in tags], source)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=None,
                        help="most steps per setting (default: each setting's own)")
    args = parser.parse_args()
    quiet_libraries()
    import torch

    from clapdesk.core.finetune.data import FineTuneOptions
    from clapdesk.core.finetune.training import run_finetune
    from clapdesk.core.library import Library

    model = full_model()
    phases: dict[str, float] = {}
    last = {"phase": "", "at": time.monotonic()}

    def progress(p) -> None:
        now = time.monotonic()
        if p.phase != last["phase"]:
            if last["phase"]:
                phases[last["phase"]] = round(now - last["at"], 2)
            last.update(phase=p.phase, at=now)

    with tempfile.TemporaryDirectory(prefix="clapdesk-bench-finetune-") as scratch:
        library = Library(Path(scratch) / "library", model=str(model))
        fill_catalog(library, args.files)
        started = time.monotonic()
        library.embedder()
        load_seconds = time.monotonic() - started
        started, cpu = time.monotonic(), time.process_time()
        # No early stop: every setting runs all its steps, so the time is the whole budget.
        result = run_finetune(library, FineTuneOptions(steps=args.steps, patience=10 ** 6),
                              progress)
        seconds, cpu = time.monotonic() - started, time.process_time() - cpu
        library.close()
    print(json.dumps({
        "files": args.files, **result.counts, "saved": result.saved, "reason": result.reason,
        "chosen": result.chosen, "tried": result.tried,
        "finetune_seconds": round(seconds, 2), "target_seconds": 60,
        "finetune_cpu_seconds": round(cpu, 2),
        "phase_seconds": phases, "model_load_seconds": round(load_seconds, 2),
        "before": result.before, "after": result.after,
        "torch_threads": torch.get_num_threads(), "load_average": load_average(),
        "note": "random full-size weights: the figures show the run works, not CLAP's quality",
    }))


if __name__ == "__main__":
    main()
