"""The `clapdesk tempo` verb: show or correct the tempo and key of indexed files.

    clapdesk tempo FILE...                        what they are, and where each value came from
    clapdesk tempo FILE... --bpm 120 --key "A minor"
    clapdesk tempo FILE... --clear                back to the analysed (or named) tempo and key
    clapdesk tempo FILE... --clear-key            back to the analysed key only

A correction is the producer's own data, like their tags: a rescan never overwrites it, and it
wins over analysis and file names in search, the window and the audition.
"""

from __future__ import annotations

import argparse
from typing import Any

from clapdesk.cli import CliError, UsageError, open_library, result_path
from clapdesk.tag_cli import indexed_records


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("tempo", parents=[common],
                       help="show or correct the tempo and key of indexed files")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--bpm", metavar="BPM", help="the tempo you count the loop in, e.g. 120")
    p.add_argument("--key", metavar="KEY", help='the key: "A minor", Am, F#m, "Gb major", C')
    p.add_argument("--clear", action="store_true", help="drop your tempo and key: analysis decides")
    p.add_argument("--clear-bpm", action="store_true", help="drop your tempo only")
    p.add_argument("--clear-key", action="store_true", help="drop your key only")
    p.set_defaults(handler=cmd_tempo)


def cmd_tempo(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.store import user_tempo

    clear_bpm = args.clear or args.clear_bpm
    clear_key = args.clear or args.clear_key
    if (clear_bpm and args.bpm is not None) or (clear_key and args.key is not None):
        raise UsageError("give a value or clear it, not both")
    change: dict[str, Any] = {}
    try:  # check what was typed before opening anything
        if args.bpm is not None:
            change["bpm"] = user_tempo.parse_bpm(args.bpm)
        if args.key is not None:
            change["key"] = user_tempo.parse_key(args.key)
    except user_tempo.CorrectionError as exc:
        raise UsageError(str(exc)) from None
    if clear_bpm:
        change["bpm"] = None
    if clear_key:
        change["key"] = None

    library = open_library(args)
    try:
        records = indexed_records(library, args.files)
        if change:
            try:
                user_tempo.set_correction(library.catalog, [r.id for r in records], **change)
            except user_tempo.CorrectionError as exc:
                raise CliError(str(exc)) from None
        records = library.catalog.files([r.id for r in records])
    finally:
        library.close()
    files = [_describe(r) for r in records]
    if not args.json:
        for item in files:
            print(f"{item['path']}: {_text(item)}")
    return {"files": files}


def _describe(record: Any) -> dict[str, Any]:
    return {
        "path": result_path(record.path), "kind": record.kind,
        "bpm": record.bpm, "bpm_source": record.bpm_source,
        "key": record.key, "key_source": record.key_source,
        "analysed_bpm": record.analysed_bpm, "analysed_bpm_source": record.analysed_bpm_source,
        "analysed_key": record.analysed_key, "analysed_key_source": record.analysed_key_source,
    }


def _text(item: dict[str, Any]) -> str:
    tempo = f"{item['bpm']:g} BPM" if item["bpm"] is not None else "no tempo"
    key = item["key"] or "no key"
    parts = []
    for value, source, analysed in ((tempo, item["bpm_source"], item["analysed_bpm"]),
                                    (key, item["key_source"], item["analysed_key"])):
        if source == "user":
            was = analysed if analysed is not None else "none"
            was = f"{was:g} BPM" if isinstance(was, float) else was
            parts.append(f"{value} (yours; analysis: {was})")
        else:
            parts.append(f"{value} ({source})" if source else value)
    return ", ".join(parts)
