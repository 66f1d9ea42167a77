"""What the time left costs the indexer's thread: one estimate, on a run of --files files whose
length no header gave (MP3s, or any file before the first catalogue pass reads its header).

The indexer asks for the time left after every file. Before the unknown lengths were summed per
format in arrays (eta._UnknownLengths), one estimate took 59 ms on 100,000 such files (2-core
EPYC; 0.2 ms now): at 3-4 files a second, a fifth of the indexer's thread.

    python benchmarks/bench_time_left.py [--files 100000]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    from clapdesk.core.index.eta import TimeLeft

    estimator = TimeLeft()
    for i in range(args.files):
        estimator.expect(i, None, 3_000_000 + 997 * i, f"{i}.mp3" if i % 4 else f"{i}.wav")
    estimator.start(0.0)
    times = []
    for i in range(args.rounds):  # as a run goes: a file done (teaching its format), an estimate
        estimator.model_call(1, 0.3, i + 1.0)
        estimator.file_done(i, 1, i + 1.0, 10.0)
        began = time.perf_counter()
        estimator.windows_left()
        times.append(time.perf_counter() - began)
    print(json.dumps({"benchmark": "time_left", "files_of_unknown_length": args.files,
                      "ms_per_estimate": round(min(times) * 1000, 3),
                      "ms_per_estimate_median": round(statistics.median(times) * 1000, 3)}))


if __name__ == "__main__":
    main()
