"""Do "... at N BPM" searches return loops at that tempo?

Generates drum loops at known tempi (neutral file names, so the tempo must come from the audio),
indexes them with a random tiny CLAP (the model's taste does not matter here: the tempo constraint
does), then asks "drum loop at N BPM" for several N and measures, against the TRUE tempo each loop
was made at, the share of the top 10 within 4 % (half/double time counting as a match). Prints
one JSON object. Target: at least 90 % whenever ten matching files exist.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_analysis import SR, drum_loop  # noqa: E402
from modelfactory import build_trained_clap  # noqa: E402

QUERY_TEMPI = (80, 90, 100, 120, 140, 160)
LOOPS_PER_TEMPO = 12


def _matches(true_bpm: float, wanted: float) -> bool:
    return any(abs(true_bpm * f - wanted) <= 0.04 * wanted for f in (1.0, 2.0, 0.5))


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import search_text

    rng = np.random.default_rng(0)
    work = Path(tempfile.mkdtemp(prefix="clapdesk-tempo-"))
    model = build_trained_clap(work / "model")  # a text tower that passes the health check
    truth: dict[str, float] = {}
    tempi = [t for t in QUERY_TEMPI] + [75, 110, 130, 150, 175]
    for n, bpm in enumerate(np.repeat(tempi, LOOPS_PER_TEMPO)):
        bpm = float(bpm) * float(rng.uniform(0.99, 1.01))
        path = work / "samples" / f"s{n:04d}.wav"  # says nothing of tempo
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, drum_loop(bpm, int(rng.choice([1, 2])), rng), SR)
        truth[str(path)] = bpm
    library = Library(work / "library", model=str(model))
    started = time.perf_counter()
    library.index_folders([str(work / "samples")])
    index_seconds = time.perf_counter() - started
    per_query = {}
    shares = []
    for wanted in QUERY_TEMPI:
        hits = search_text(library, f"drum loop at {wanted} BPM", k=10).hits
        good = sum(_matches(truth[h.file.path], wanted) for h in hits)
        if os.environ.get("VERBOSE"):
            for h in hits:
                print(wanted, round(truth[h.file.path], 1), h.file.bpm, h.note, file=sys.stderr)
        available = sum(_matches(b, wanted) for b in truth.values())
        share = good / len(hits) if hits else 0.0
        per_query[str(wanted)] = {"returned": len(hits), "meet_tempo": good,
                                  "matching_in_library": available, "share": round(share, 3)}
        if available >= 10:
            shares.append(share)
    library.close()
    print(json.dumps({
        "benchmark": "query_tempo", "loops": len(truth), "index_seconds": round(index_seconds, 1),
        "mean_share_top10_meeting_tempo": round(float(np.mean(shares)), 3),
        "min_share_top10_meeting_tempo": round(float(np.min(shares)), 3),
        "target": 0.9, "per_query": per_query,
    }))


if __name__ == "__main__":
    main()
