"""The `clapdesk render` verb: a file at a tempo and key, as the window's preview plays it.

    clapdesk render FILE --bpm 120 [--key "A minor"] -o OUT.wav [--json]

The file's own tempo, key and kind come from the library when it is indexed there (with the
producer's corrections), else from analysing it now; --from-bpm, --from-key and --kind override
them. A loop is stretched to --bpm (read as its tempo, double or half, whichever is nearest) and
shifted to --key by the shortest way; a one-shot keeps its timing and, with --key, moves to the
nearest note of that key's scale. Written as a 32-bit float WAV (a stretch may peak above full scale: nothing is clipped) that
starts exactly on the first beat.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Any

from clapdesk.cli import CliError, UsageError, result_path


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("render", parents=[common],
                       help="write a file stretched to a tempo and shifted to a key, as auditioned")
    p.add_argument("file", metavar="FILE", help="the sound to render")
    p.add_argument("--bpm", type=float, help="the project tempo to stretch a loop to")
    p.add_argument("--key", help='the project key to shift to, e.g. "A minor", "F#m", "Bb"')
    p.add_argument("-o", "--output", required=True, metavar="OUT.wav", help="the WAV to write")
    p.add_argument("--from-bpm", type=float, help="the file's own tempo (default: as analysed)")
    p.add_argument("--from-key", help="the file's own key (default: as analysed)")
    p.add_argument("--kind", choices=("loop", "one-shot"), help="default: as analysed")
    p.set_defaults(handler=cmd_render)


def _facts(args: argparse.Namespace, path: str) -> dict[str, Any]:
    """kind, bpm and key of `path`: the library's row when it has one, else an analysis now."""
    from clapdesk.core.store.paths import LibraryPaths

    facts: dict[str, Any] = {}
    catalog_file = LibraryPaths(args.library).catalog
    if catalog_file.exists():
        from clapdesk.core.store.catalog import Catalog

        catalog = Catalog(catalog_file, readonly=True)
        try:
            record = catalog.file_by_path(path)
        finally:
            catalog.db.close()
        if record is not None and record.error is None:
            facts = {"kind": record.kind, "bpm": record.bpm, "key": record.key,
                     "source": "library"}
    if not facts:
        from clapdesk.core.analysis.sound import analyse
        from clapdesk.core.ingest.audio import read_for_playback, to_mono

        data, rate = read_for_playback(path)
        near_name = os.path.join(os.path.basename(os.path.dirname(path)), os.path.basename(path))
        result = analyse(to_mono(data), rate, name=near_name)
        facts = {"kind": result.kind, "bpm": result.bpm, "key": result.key, "source": "analysis"}
    return facts


def cmd_render(args: argparse.Namespace) -> dict[str, Any]:
    import soundfile as sf

    from clapdesk.core.audition.plan import check_tempo, parse_key, plan_for
    from clapdesk.core.audition.render import render_file
    from clapdesk.core.ingest.audio import DecodeError

    path = os.path.abspath(args.file)
    if not os.path.isfile(path):
        raise CliError(f"{args.file}: no such file")
    if args.bpm is None and args.key is None:
        raise UsageError("say what to render to: --bpm, --key or both")
    if not args.output.lower().endswith(".wav"):
        raise UsageError(f"-o {args.output}: the output is a WAV file, its name ends in .wav")
    try:
        bpm = check_tempo(args.bpm) if args.bpm is not None else None
        key = parse_key(args.key)
        from_key = parse_key(args.from_key)
        from_bpm = check_tempo(args.from_bpm) if args.from_bpm is not None else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        facts = _facts(args, path)
    except DecodeError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    kind = args.kind or facts["kind"]
    file_bpm = from_bpm or facts["bpm"]
    file_key = from_key or facts["key"]
    plan = plan_for(kind, file_bpm, file_key, bpm, key, bpm is not None, key is not None)
    started = time.perf_counter()
    try:
        data, rate = render_file(path, plan)
    except DecodeError as exc:
        raise CliError(f"{args.file}: {exc}") from None
    seconds = time.perf_counter() - started
    target = Path(args.output)
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(os.fspath(target), data, rate, subtype="FLOAT", format="WAV")
    notes = []
    if bpm is not None and plan.tempo is None:
        notes.append("kept its timing: " + ("a one-shot" if kind != "loop" else
                                            "its tempo is not known (give --from-bpm)"))
    if key is not None and plan.key is None:
        notes.append("kept its pitch: its key is not known (give --from-key)")
    result = {
        "file": result_path(path), "output": result_path(os.path.abspath(target)),
        "kind": kind, "from_bpm": file_bpm, "from_key": file_key, "facts_from": facts["source"],
        "bpm": plan.tempo, "key": plan.key, "speed": plan.speed, "semitones": plan.semitones,
        "frames": len(data), "seconds": round(len(data) / rate, 6), "sample_rate": rate,
        "render_seconds": round(seconds, 3), "notes": notes,
    }
    if not args.json:
        print(f"{result['output']}: {result['seconds']:.3f} s, speed {plan.speed:g}, "
              f"{plan.semitones:+d} semitones" + "".join(f"; {n}" for n in notes))
    return result
