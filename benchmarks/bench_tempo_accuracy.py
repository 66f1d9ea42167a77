"""Tempo accuracy and analysis cost on generated drum loops of known tempo (tests/loopfactory.py).

The analysis' weights were tuned on the tuning seeds; the figure that counts is the held-out
set's, which played no part in choosing them. Each loop is written as a real WAV or FLAC file
(44.1 or 48 kHz), read back with soundfile and analysed as the indexer does. Prints one JSON
object:

    python benchmarks/bench_tempo_accuracy.py [--quick] [--tuning]

Targets: within 4 % of the tempo on >= 90 % of held-out loops, and within 4 % of the tempo,
half or double on 100 %. Per-file analysis time is given as wall and CPU milliseconds (CPU time
suffers less on a shared machine), with the load average.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from common import load_average  # noqa: E402
from loopfactory import HELD_OUT_SEEDS, TUNING_SEEDS, spec_for, tempo_verdict, write_loop  # noqa: E402

from clapdesk.core.analysis.sound import analyse  # noqa: E402


def measure(seeds: list[int], folder: Path) -> dict:
    verdicts: Counter[str] = Counter()
    by_genre: dict[str, Counter[str]] = defaultdict(Counter)
    misread: list[str] = []
    wall_ms: list[float] = []
    cpu_ms: list[float] = []
    for seed in seeds:
        spec = spec_for(seed)
        path = write_loop(folder, spec)
        data, rate = sf.read(path, dtype="float32")
        start, cpu = time.perf_counter(), time.process_time()
        result = analyse(data, rate, name=path.name)
        wall_ms.append(1000 * (time.perf_counter() - start))
        cpu_ms.append(1000 * (time.process_time() - cpu))
        verdict = tempo_verdict(result.bpm, spec.bpm)
        verdicts[verdict] += 1
        by_genre[spec.genre][verdict] += 1
        if verdict != "exact":
            misread.append(f"{verdict}: read {result.bpm} for {spec.label}")
        path.unlink()
    total = len(seeds)
    return {
        "loops": total,
        "within_4_percent": round(verdicts["exact"] / total, 4),
        "within_4_percent_or_half_double": round((verdicts["exact"] + verdicts["octave"]) / total, 4),
        "by_genre": {g: {"loops": sum(c.values()), "within_4_percent": round(c["exact"] / sum(c.values()), 3)}
                     for g, c in sorted(by_genre.items())},
        "analysis_ms_median": round(float(np.median(wall_ms)), 2),
        "analysis_ms_p90": round(float(np.percentile(wall_ms, 90)), 2),
        "analysis_cpu_ms_median": round(float(np.median(cpu_ms)), 2),
        "mean_loop_seconds": round(float(np.mean([4 * 60 / spec_for(s).bpm * spec_for(s).bars
                                                   for s in seeds])), 2),
        "misread": misread,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="the first 60 held-out loops only")
    parser.add_argument("--tuning", action="store_true", help="also report the tuning set")
    args = parser.parse_args()
    held_out = list(HELD_OUT_SEEDS)[:60] if args.quick else list(HELD_OUT_SEEDS)
    out: dict = {"load_average_before": load_average()}
    with tempfile.TemporaryDirectory() as folder:
        out["held_out"] = measure(held_out, Path(folder))
        if args.tuning:
            out["tuning"] = measure(list(TUNING_SEEDS), Path(folder))
    out["load_average_after"] = load_average()
    out["targets"] = {"within_4_percent": 0.90, "within_4_percent_or_half_double": 1.0}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
