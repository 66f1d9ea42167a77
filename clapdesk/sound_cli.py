"""`clapdesk similar FILE [--words ...] [--amount A] [--aspect ...]` and `clapdesk record`.

`similar` is declared in cli.py with the search options it shares with `search`; this module
adds the steering and aspect options to it and runs it. `record` captures from an input device
(for testing the input path, and for a quick query sound): `clapdesk record -o hum.wav`.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from typing import Any

from clapdesk.cli import CliError, UsageError, _filters, _ready_to_search, _show, open_library


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    from clapdesk.core.ingest.recording import DEFAULT_THRESHOLD_DB, MAX_RECORD_SECONDS
    from clapdesk.core.search.aspects import ASPECTS

    similar = sub.choices["similar"]
    similar.add_argument("--words", default="", metavar="WORDS",
                         help='steer by words: "darker, more punch, -reverb" (a "-" pushes '
                         "away); tempo, key and length words filter as in search")
    similar.add_argument("--amount", type=float, default=0.5, metavar="0-1",
                         help="how far the words steer (default 0.5)")
    similar.add_argument("--aspect", choices=ASPECTS, default=None,
                         help="similar in timbre, pitch or rhythm rather than as a whole")
    similar.set_defaults(handler=cmd_similar)

    p = sub.add_parser("record", parents=[common], help="record from an input device into a WAV")
    p.add_argument("-o", "--output", metavar="OUT.wav", help="where to write the recording")
    p.add_argument("--seconds", type=float, default=5.0,
                   help=f"how long, at most {MAX_RECORD_SECONDS:g} (default 5)")
    p.add_argument("--input", default=None, metavar="DEVICE",
                   help="input device name or number (default: the system's default input)")
    p.add_argument("--rate", type=int, default=None, help="sample rate (default: the device's)")
    p.add_argument("--trim", type=float, default=None, metavar="DBFS", nargs="?",
                   const=DEFAULT_THRESHOLD_DB,
                   help=f"trim silence at both ends below this level (default {DEFAULT_THRESHOLD_DB:g})")
    p.add_argument("--list", action="store_true", help="list the input devices and stop")
    p.set_defaults(handler=cmd_record)


def cmd_similar(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.embed.health import TextSearchOff
    from clapdesk.core.ingest.audio import DecodeError
    from clapdesk.core.search.sound_query import from_file, read_words, search_sound

    if args.k < 1:
        raise UsageError("-k must be at least 1")
    if not math.isfinite(args.amount) or not 0 <= args.amount <= 1:
        raise UsageError(f"--amount must be between 0 and 1, not {args.amount:g}")
    if not os.path.isfile(args.target):
        raise CliError(f"'{args.target}' is not a file")
    filters = _filters(args)
    library = open_library(args)
    try:
        _ready_to_search(library)
        started = time.perf_counter()
        try:
            sound = from_file(library, os.path.abspath(args.target))
        except DecodeError as exc:
            raise CliError(f"'{args.target}' cannot be read as a sound ({exc})") from None
        steering = read_words(args.words)
        try:
            response = search_sound(library, sound, args.k, filters, args.words, args.amount,
                                    args.aspect, where=args.where)
        except TextSearchOff as exc:
            print(f"clapdesk: note: the words are ignored, the sound alone is searched ({exc})",
                  file=sys.stderr)
            args.amount, steering = 0.0, read_words("")
            response = search_sound(library, sound, args.k, filters, args.words, 0.0,
                                    args.aspect, where=args.where)
        if not args.json:
            print(f"Sounds like {sound.name}" + _steered_text(steering, args.amount, args.aspect))
        result = _show(args, response, time.perf_counter() - started)
        result["sound"] = {"name": sound.name, "in_library": sound.file_id is not None,
                           "toward": list(steering.toward), "away": list(steering.away),
                           "amount": args.amount if steering.steers else 0.0,
                           "aspect": args.aspect}
        return result
    finally:
        library.close()


def _steered_text(steering: Any, amount: float, aspect: str | None) -> str:
    parts = [f"+{w}" for w in steering.toward] + [f"-{w}" for w in steering.away]
    text = f", steered {', '.join(parts)} by {round(amount * 100)} %" if parts else ""
    return text + (f", in {aspect}" if aspect else "")


def cmd_record(args: argparse.Namespace) -> dict[str, Any]:
    import soundfile as sf

    from clapdesk.core.ingest import recording

    if args.list:
        devices = recording.input_devices()
        if not args.json:
            for device in devices:
                print(f"{device.index:3d}  {device.name}  ({device.default_rate} Hz)")
            if not devices:
                print("no input devices")
        return {"devices": [{"index": d.index, "name": d.name, "rate": d.default_rate}
                            for d in devices]}
    if not args.output:
        raise UsageError("-o OUT.wav is needed: where to write the recording")
    if not math.isfinite(args.seconds) or not 0 < args.seconds <= recording.MAX_RECORD_SECONDS:
        raise UsageError(f"--seconds must be more than 0 and at most "
                         f"{recording.MAX_RECORD_SECONDS:g}, not {args.seconds:g}")
    target = os.path.abspath(args.output)
    if not os.path.isdir(os.path.dirname(target)):
        raise CliError(f"-o: the folder of '{args.output}' does not exist")
    device: str | int | None = args.input
    if isinstance(device, str) and device.isdigit():
        device = int(device)
    try:
        samples, rate = recording.record(args.seconds, device, args.rate)
    except recording.RecordingError as exc:
        raise CliError(str(exc)) from None
    recorded = len(samples) / rate
    if args.trim is not None:
        samples = recording.trim_silence(samples, rate, args.trim)
        if samples.size == 0:
            raise CliError(f"nothing reached {args.trim:g} dBFS in {recorded:.1f} s: the "
                           "recording is silent (nothing was written)")
    sf.write(target, samples, rate, subtype="PCM_24" if rate <= 96000 else "FLOAT")
    seconds = len(samples) / rate
    if not args.json:
        print(f"recorded {seconds:.2f} s at {rate} Hz into {target}", file=sys.stderr)
    return {"path": target, "seconds": round(seconds, 4), "recorded_seconds": round(recorded, 4),
            "rate": rate, "peak_db": round(recording.level_db(samples), 2)}
