"""Audition latency: from `Player.play()` to the first stream callback carrying the sound.

Two cases, through real PortAudio into an ALSA `file` PCM over `null` (written to a temporary
folder; `--system-audio` uses the machine's own default output instead):

- next row: the row below was predecoded while the current one played (what arrowing down
  through results does), so play() only hands an array to the running stream;
- cold: a file never decoded before (a click on a far row); it is decoded on the player's
  thread first. The files were just written, so they come from the OS page cache: this is
  decode cost, not disk cost.

    python benchmarks/bench_audition.py [--rows 30] [--seconds 4] [--system-audio]

Prints one JSON object. Target: next-row median and p95 under 30 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "gui"))

TARGET_MS = 30.0
RATE = 44100


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of each sample")
    parser.add_argument("--system-audio", action="store_true",
                        help="play to the real default output instead of a capture file")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="clapdesk-bench-audition-"))
    if not args.system_audio:
        import asound  # tests/gui/asound.py: the same ALSA configuration the tests use

        config, _capture = asound.write_capture_config(workdir / "alsa")
        # Before sounddevice is imported: PortAudio reads the ALSA configuration once.
        os.environ["ALSA_CONFIG_PATH"] = asound.alsa_env(config)["ALSA_CONFIG_PATH"]
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

    import numpy as np
    import soundfile as sf
    from PySide6.QtCore import QCoreApplication

    from clapdesk.gui.player import Player

    app = QCoreApplication.instance() or QCoreApplication([])
    rng = np.random.default_rng(0)
    frames = int(args.seconds * RATE)

    def write_rows(prefix: str, count: int) -> list[str]:
        paths = []
        for i in range(count):
            t = np.arange(frames) / RATE
            tone = 0.3 * np.sin(2 * np.pi * rng.uniform(80, 800) * t) * np.exp(-2 * t)
            stereo = np.stack([tone, tone[::-1] * 0.5], axis=1).astype(np.float32)
            path = workdir / f"{prefix}{i:03d}.{'flac' if i % 3 == 0 else 'wav'}"
            sf.write(path, stereo, RATE)
            paths.append(str(path))
        return paths

    rows = write_rows("row", args.rows + 1)
    cold_rows = write_rows("cold", args.rows)
    player = Player()
    errors: list[str] = []
    player.error.connect(errors.append)

    def play_and_wait(path: str) -> float | None:
        player.play(path)
        deadline = time.perf_counter() + 5.0
        while player.last_start_latency is None and time.perf_counter() < deadline and not errors:
            app.processEvents()
            time.sleep(0.0005)
        return player.last_start_latency

    def wait_decoded(path: str) -> None:
        deadline = time.perf_counter() + 5.0
        while player.decoded(path) is None and time.perf_counter() < deadline:
            time.sleep(0.001)

    # The first play opens the stream; it is neither a next-row nor a typical cold start.
    first_open = play_and_wait(write_rows("warm", 1)[0])

    next_row: list[float] = []
    for i in range(args.rows):
        if i == 0:
            play_and_wait(rows[0])
        player.predecode(rows[i + 1:i + 5])
        wait_decoded(rows[i + 1])  # the user lingers on a row for longer than one decode
        latency = play_and_wait(rows[i + 1])
        if latency is not None:
            next_row.append(latency * 1000)

    cold: list[float] = []
    for path in cold_rows:
        latency = play_and_wait(path)
        if latency is not None:
            cold.append(latency * 1000)
    player.close()
    shutil.rmtree(workdir, ignore_errors=True)  # the capture file grows by every sound played

    def summary(values: list[float]) -> dict[str, float | int | None]:
        if not values:
            return {"count": 0, "median": None, "p95": None, "max": None}
        array = np.array(values)
        return {"count": len(values), "median": round(float(np.median(array)), 3),
                "p95": round(float(np.percentile(array, 95)), 3),
                "max": round(float(array.max()), 3)}

    next_summary = summary(next_row)
    result = {
        "benchmark": "audition_latency_ms",
        "output": "system default" if args.system_audio else "ALSA file PCM over null",
        "sample_seconds": args.seconds,
        "first_play_opening_stream_ms": None if first_open is None else round(first_open * 1000, 3),
        "next_row_predecoded": next_summary,
        "cold_file": summary(cold),
        "target_next_row_ms": TARGET_MS,
        "meets_target": next_summary["p95"] is not None and next_summary["p95"] < TARGET_MS,
        "errors": errors,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
