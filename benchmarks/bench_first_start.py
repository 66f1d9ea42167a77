"""First start on loopback with the full-size model: nothing cached, a stand-in hub serving the
laion/larger_clap_general architecture with random weights (about 776 MB), timed from a cold
process to a loaded model. Prints one JSON object.

    python benchmarks/bench_first_start.py [--weights pickle|safetensors] [--drop]

`--weights pickle` (the default) serves only pytorch_model.bin on main, as the real repositories
do, so the figure includes the weights-only read and the one conversion to safetensors.
`--drop` first cuts the connection half-way and keeps the line down (that start gives up), then
starts again: the figure is the bytes served over both starts against the file's size.
The repository is built from ../shared/clap-configs/larger_clap_general where present (the
real config, processor and tokenizer files), else from the test model factory's full shape.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, bench_dir

sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared" / "clap-configs"
REPO = "clapdesk-bench/larger_clap_general"

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import clapdesk.core  # noqa: F401 - as the app starts
from clapdesk.core.embed.hub import ModelError, resolve_model
from clapdesk.core.embed.download import StderrProgress
try:
    identity = resolve_model(sys.argv[1], progress=StderrProgress(every_s=10.0))
except ModelError as exc:
    print(json.dumps({"error": str(exc), "seconds": time.perf_counter() - t0}))
    raise SystemExit(0)
t1 = time.perf_counter()
from clapdesk.core.embed.embedder import ClapEmbedder
embedder = ClapEmbedder(identity, device="cpu")
t2 = time.perf_counter()
print(json.dumps({"fetch_s": t1 - t0, "load_s": t2 - t1, "total_s": t2 - t0,
                  "dim": embedder.dim}))
"""


def build_repo(folder: Path) -> Path:
    """The full-size model's hub files, with random weights, built once and kept."""
    if (folder / "model.safetensors").is_file():
        return folder
    scratch = folder.with_name(folder.name + ".partial")
    shutil.rmtree(scratch, ignore_errors=True)
    real = SHARED / "larger_clap_general"
    if (real / "config.json").is_file() and (SHARED / "roberta" / "vocab.json").is_file():
        import torch
        from transformers import ClapConfig, ClapModel

        scratch.mkdir(parents=True)
        for item in list(real.iterdir()) + list((SHARED / "roberta").iterdir()):
            shutil.copyfile(item, scratch / item.name)
        torch.manual_seed(0)
        model = ClapModel(ClapConfig.from_pretrained(real)).eval()
        model.save_pretrained(scratch)
        (scratch / "config.json").write_bytes((real / "config.json").read_bytes())
    else:
        from modelfactory import build_clap

        build_clap(scratch, full=True)
    os.replace(scratch, folder)
    return folder


def start(hub_url: str, env: dict[str, str], timeout: float = 1800) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", CHILD, REPO], env=env, capture_output=True,
                          text=True, timeout=timeout, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        raise SystemExit(f"the first start failed ({done.returncode}): {done.stderr[-2000:]}")
    result: dict[str, object] = json.loads(lines[-1])
    result["progress_lines"] = [line for line in done.stderr.splitlines()
                                if line.startswith("clapdesk: downloading")][-2:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", choices=("pickle", "safetensors"), default="pickle")
    parser.add_argument("--drop", action="store_true")
    args = parser.parse_args()

    from standin_hub import StandinHub, model_files

    built = time.perf_counter()
    model = build_repo(bench_dir() / "larger-clap-general-random")
    build_s = time.perf_counter() - built
    files = model_files(model, args.weights)
    weights = "pytorch_model.bin" if args.weights == "pickle" else "model.safetensors"
    with StandinHub() as hub, tempfile.TemporaryDirectory(prefix="clapdesk-first-") as tmp:
        hub.add_commit(REPO, files)
        size = hub.file(REPO, weights).size
        env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "CLAPDESK_MODEL")}
        env.update(HF_ENDPOINT=hub.url, HF_HUB_CACHE=str(Path(tmp) / "hf"),
                   CLAPDESK_CACHE=str(Path(tmp) / "cache"), PYTHONPATH=str(ROOT),
                   TOKENIZERS_PARALLELISM="false")
        result: dict[str, object] = {"model": "larger_clap_general architecture, random weights",
                                     "weights_served": weights, "weights_bytes": size,
                                     "repo_build_s": round(build_s, 1)}
        if args.drop:
            hub.faults.cut_after = size // 2
            hub.faults.dead_after_cut = True
            dropped = start(hub.url, env)
            result["dropped_start"] = dropped.get("error", "did not fail")
            result["bytes_before_drop"] = hub.served[weights]
            hub.faults = type(hub.faults)()
        timed = start(hub.url, env)
        result.update({k: round(v, 2) if isinstance(v, float) else v for k, v in timed.items()})
        served = hub.served[weights]
        result["bytes_served_total"] = served
        result["served_over_size"] = round(served / size, 3)
        if isinstance(timed.get("fetch_s"), float):
            result["loopback_MB_per_s_incl_checks"] = round(size / 1e6 / float(timed["fetch_s"]), 1)
    result["note"] = ("loopback, on a shared 2-core machine under load from other work: "
                      "times are upper bounds")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
