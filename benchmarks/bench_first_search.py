"""Time to the first text search that answers, from an empty library, on a 2,000-file folder.

A producer points a fresh clapdesk at a sample folder and searches at once. The clock starts
before the library is created; indexing runs on a thread (as the window runs it) while this
thread searches again and again, as a producer typing would, and records:
- first_answer: the first search that returned at all (the model need not be loaded);
- by_name: the first search for "crackle kick" that lists "Vinyl Crackle Kick.wav", a file the
  scan finds last (so the model has not heard it: it is found by its name);
- by_constraint: the first search for "break at 92 bpm in A minor" that lists
  "Dusty Break 92 BPM Am.wav" (tempo, key and kind from the name, before any analysis);
- first_clap_ranked: the first search with a result the model has ranked by sound;
- model_loaded: when the model had loaded; model_ready: when the indexer took its first decoded
  file to the model (decoders run at idle priority: on a busy machine they wait for a core).
Then indexing is cancelled, unless --complete: then the run goes to the end and the time-left
estimates it showed are compared with the real time left (after the first minute), and the
ranges it showed while choosing the precision are checked for holding it.

The model is the full larger_clap_music architecture with random weights (its text tower's
health check is let through: the timing is what is measured), or a tiny random model with
--quick. Prints one JSON object, with the load average (the machine may be shared).

    python benchmarks/bench_first_search.py [--files 2000] [--quick] [--complete] [--precision P]
                                            [--series FILE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, bench_dir, full_model, load_average, quiet_libraries  # noqa: E402

quiet_libraries()

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

NAME_QUERY, NAME_TARGET = "crackle kick", "Vinyl Crackle Kick.wav"
CONSTRAINT_QUERY, CONSTRAINT_TARGET = "break at 92 bpm in A minor", "Dusty Break 92 BPM Am.wav"
FOLDERS = {"Drums/Kicks": "Kick", "Drums/Snares": "Snare", "Drums/Hats": "Hat", "Bass": "Bass",
           "Pads": "Pad", "FX": "Riser", "Loops": "Loop"}
WORDS = ("Punchy", "Dark", "Warm", "Bright", "Dusty", "Deep", "Airy", "Gritty", "Soft", "Wide")
KEYS = ("Am", "C", "F#m", "D", "Gm", "Eb")


def tiny_model() -> Path:
    folder = bench_dir() / "tiny-clap-random"
    if not (folder / "config.json").is_file():
        sys.path.insert(0, str(ROOT / "tests"))
        from modelfactory import build_clap

        build_clap(folder)
    return folder


def write_folder(folder: Path, count: int, seed: int = 0) -> None:
    """`count` short files named as sample packs name them; the two targets sort last."""
    rng = np.random.default_rng(seed)
    rate = 22050
    for i in range(count - 2):
        sub, noun = list(FOLDERS.items())[i % len(FOLDERS)]
        loop = noun == "Loop"
        seconds = float(rng.uniform(2.0, 8.0) if loop else rng.uniform(0.2, 2.0))
        t = np.arange(int(seconds * rate)) / rate
        wave = np.sin(2 * np.pi * float(rng.uniform(40, 2000)) * t) * np.exp(-t * rng.uniform(1, 12))
        wave += 0.05 * rng.standard_normal(t.size)
        name = f"{noun} {i:04d} {WORDS[i % len(WORDS)]}"
        if loop:
            name += f" {int(rng.integers(80, 160))} BPM {KEYS[i % len(KEYS)]}"
        path = folder / sub / f"{name}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, (0.3 * wave).astype(np.float32), rate, subtype="PCM_16")
    t = np.arange(int(0.5 * rate)) / rate
    last = folder / "zz New"
    last.mkdir(parents=True, exist_ok=True)
    sf.write(last / NAME_TARGET, (0.5 * np.sin(2 * np.pi * 55 * t) * np.exp(-t * 9)).astype(np.float32), rate)
    t = np.arange(int(5.2 * rate)) / rate
    sf.write(last / CONSTRAINT_TARGET, (0.3 * np.sin(2 * np.pi * 110 * t)).astype(np.float32), rate)


def run(model: Path, folder: Path, library_dir: Path, complete: bool, limit: float,
        precision: str = "auto", series: str | None = None) -> dict:
    from clapdesk.core.index.eta import estimate_errors
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import search_text

    marks: dict[str, float] = {}
    history: list[tuple[float, float | None]] = []
    done: list[int] = []  # files done at each of history's moments
    ranges: list[tuple[float, float | None, float]] = []  # (when, fast end, float32's end)
    cancel = threading.Event()
    errors: list[BaseException] = []
    began = time.monotonic()
    library = Library(library_dir, model=str(model), precision=precision)
    load = library.embedder

    def embedder():  # noqa: ANN202 - random weights fail the text health check: let them through
        loaded = load()
        loaded.text_health = dataclasses.replace(loaded.text_health, text_ok=True)
        return loaded

    library.embedder = embedder  # type: ignore[method-assign]

    def progress(p) -> None:  # noqa: ANN001
        now = time.monotonic()
        if p.phase == "embedding":
            marks.setdefault("model_ready", now)
            # While the precision is chosen the time left is a range, judged on its own.
            history.append((now, None if p.comparing else p.eta))
            done.append(p.done)
            if p.comparing and p.eta is not None:
                ranges.append((now, p.eta_low, p.eta))

    def index() -> None:
        try:
            library.index_folders([str(folder)], progress=progress, cancel=cancel)
        except BaseException as exc:  # reported in the JSON
            errors.append(exc)
        marks["indexing_ended"] = time.monotonic()

    thread = threading.Thread(target=index, name="bench-index")
    thread.start()
    while not (library.model_loading or library.model_loaded) and thread.is_alive():
        time.sleep(0.001)  # the run has begun: a search now must not load the model itself
    searches = 0
    search_seconds: list[float] = []
    while time.monotonic() - began < limit and not errors:
        for key, query, target in (("by_name", NAME_QUERY, NAME_TARGET),
                                   ("by_constraint", CONSTRAINT_QUERY, CONSTRAINT_TARGET)):
            start = time.monotonic()
            hits = search_text(library, query).hits
            search_seconds.append(time.monotonic() - start)
            searches += 1
            marks.setdefault("first_answer", time.monotonic())
            if key not in marks and any(Path(h.file.path).name == target for h in hits):
                marks[key] = time.monotonic()
            if "first_clap_ranked" not in marks and any(h.heard and h.cosine is not None
                                                         for h in hits):
                marks["first_clap_ranked"] = time.monotonic()
        if library.model_loaded:
            marks.setdefault("model_loaded", time.monotonic())
        if {"by_name", "by_constraint", "first_clap_ranked"} <= marks.keys():
            break
        time.sleep(0.05)
    if not complete:
        cancel.set()
    thread.join()
    end = marks.get("indexing_ended", time.monotonic())
    library.close()
    line = library.timeline
    if line is not None:  # the indexer's own moments: did decoding overlap the model's load?
        ready = line.first("model ready")
        for event in ("scanned", "catalogued", "model loading", "model ready",
                      "precision trial", "precision chosen"):
            moment = line.first(event)
            if moment is not None:
                marks[f"timeline: {event}"] = moment
        decoded = line.times("decoded")
        if decoded:
            marks["timeline: first decoded"] = min(decoded)
        marks_decoded = sum(1 for t in decoded if ready is not None and t < ready)
    out = {key: round(value - began, 2) for key, value in sorted(marks.items())}
    if line is not None:
        out["files_decoded_before_the_model_was_ready"] = marks_decoded
    out.update(searches=searches,
               median_search_ms=round(1000 * float(np.median(search_seconds)), 1)
               if search_seconds else None,
               errors=[str(e) for e in errors])
    if library.precision_choice is not None:
        out["precision"] = library.precision_choice.note()
    if complete:
        out["time_left_estimates"] = estimate_errors(history, end, began, after=60.0)
        if series:  # every estimate against the real time left, to see where it went wrong
            Path(series).write_text(json.dumps(
                [[round(at - began, 2), None if eta is None else round(eta, 1), round(end - at, 1),
                  files] for (at, eta), files in zip(history, done, strict=True)]))
        out["time_left_while_choosing"] = range_fit(ranges, end)
    return out


def range_fit(ranges: list[tuple[float, float | None, float]], end: float) -> dict[str, object]:
    """How the ranges said while the precision was chosen held the real time left: the share
    that held it, and where it fell in them (0 at the fast end, 1 at float32's)."""
    if not ranges:
        return {"points": 0}
    places = []
    for at, low, high in ranges:
        low = high if low is None else low
        places.append((end - at - low) / (high - low) if high > low else 0.0)
    return {"points": len(places),
            "held": round(sum(0.0 <= p <= 1.0 for p in places) / len(places), 3),
            "median_place": round(float(np.median(places)), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="a tiny random model")
    parser.add_argument("--complete", action="store_true",
                        help="index to the end and measure the time-left estimates")
    parser.add_argument("--limit", type=float, default=600.0, help="seconds before giving up")
    parser.add_argument("--precision", default="auto",
                        help="as Settings › Model precision (default auto, the app's default: "
                             "on an empty library it makes the automatic choice first)")
    parser.add_argument("--series", help="with --complete: write every time-left estimate, "
                                         "as [seconds in, said, real, files done], to this file")
    args = parser.parse_args()
    model = tiny_model() if args.quick else full_model()
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "Samples"
        write_folder(folder, args.files)
        load_before = load_average()
        result = run(model, folder, Path(scratch) / "library", args.complete, args.limit,
                     args.precision, args.series)
    print(json.dumps({"benchmark": "first_search", "files": args.files,
                      "model": "tiny random" if args.quick else "larger_clap_music, random weights",
                      "seconds_from_empty_library": result,
                      "load_average": {"before": load_before, "after": load_average()}}))


if __name__ == "__main__":
    main()
