"""The `clapdesk map` verb: every sound's place on the map, as JSON or as a picture."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from clapdesk.cli import UsageError, open_library, result_path

COLOUR_BY = ("kind", "key", "folder", "tag")


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("map", parents=[common],
                       help="the library as a map by sound: file, x, y per sound (--json) or a PNG")
    p.add_argument("--png", metavar="OUT.png", help="draw the map into this PNG file")
    p.add_argument("--colour", choices=COLOUR_BY, default="kind",
                   help="what the PNG's colours show (default: kind, loop or one-shot)")
    p.add_argument("--size", default="1200x900", metavar="WxH", help="the PNG's size in pixels")
    p.add_argument("--relayout", action="store_true",
                   help="lay the whole library out anew instead of placing new files")
    p.set_defaults(handler=cmd_map)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"--size must be WIDTHxHEIGHT in pixels, e.g. 1200x900, not {text!r}"
                         ) from None
    if not (16 <= width <= 16384 and 16 <= height <= 16384):
        raise UsageError(f"--size {text}: each side must be 16 to 16384 pixels")
    return width, height


def cmd_map(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.map import library_map, picture
    from clapdesk.core.store import map_positions

    size = _size(args.size) if args.png else None
    if args.png and not args.png.lower().endswith(".png"):
        raise UsageError(f"--png {args.png}: the file name must end in .png")
    library = open_library(args)
    try:
        model_key = library.model_key
        catalog = library.catalog
        if args.relayout:
            library_map.relayout(catalog, model_key, progress=_progress(args))
        rows = library_map.current_map(catalog, model_key, progress=_progress(args))
        if args.png and size is not None:
            values = {"kind": rows.kinds, "key": rows.keys, "folder": rows.folders()}.get(
                args.colour)
            if values is None:  # tag
                tags = map_positions.first_tags(catalog, rows.file_ids.tolist())
                values = [tags.get(int(i)) for i in rows.file_ids]
            codes, _names = picture.colour_codes(values)
            picture.write_png(args.png, picture.render(rows.positions, codes, *size))
    finally:
        library.close()
    points = [{"file": result_path(path), "x": round(float(x), 4), "y": round(float(y), 4)}
              for path, (x, y) in zip(rows.paths, rows.positions)]
    if not args.json:
        if args.png:
            print(f"{len(points)} sounds drawn into {args.png}")
        else:
            for point in points:
                print(f"{point['x']:10.3f} {point['y']:10.3f}  {point['file']}")
        if not points:
            print("the library has no indexed sounds yet: add a folder with clapdesk index DIR",
                  file=sys.stderr)
    result: dict[str, Any] = {"model": model_key, "points": points}
    if args.png:
        result["png"] = args.png
    return result


def _progress(args: argparse.Namespace) -> Any:
    if args.json or not sys.stderr.isatty():
        return None
    return lambda fraction: print(f"\rlaying out the map… {fraction:4.0%}",
                                  end="\n" if fraction >= 1 else "", file=sys.stderr, flush=True)
