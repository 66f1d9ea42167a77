"""The `clapdesk tag` verb: list, set, add or hide the tags of indexed files."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from clapdesk.cli import CliError, open_library, result_path


def indexed_records(library: Any, paths: list[str]) -> list[Any]:
    """The catalog rows of files given on the command line, or a plain error for the first one
    that is not in the library."""
    from clapdesk.core.store.lookup import find_file

    records = []
    for path in paths:
        record = find_file(library.catalog, path)  # through a linked folder too
        if record is None:
            raise CliError(f"'{path}' is not in the library (clapdesk index its folder)")
        records.append(record)
    return records


def cmd_tag(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.store import user_tags

    library = open_library(args)
    try:
        records = indexed_records(library, args.files)
        ids = [r.id for r in records]
        if args.set is not None:
            user_tags.set_user_tags(library.catalog, ids, user_tags.parse_tag_text(args.set))
        elif args.add is not None:
            added = user_tags.parse_tag_text(args.add)  # "club kick, techno": two tags
            if not added:
                raise CliError("--add: the tag is empty")
            for tag in added:
                user_tags.add_user_tag(library.catalog, ids, tag)
        elif args.hide is not None:
            _hide_tags(library.catalog, records, user_tags.parse_tag_text(args.hide))
        shown = user_tags.tags_for_display(library.catalog, ids)
        mine = user_tags.user_tags(library.catalog, ids)
    finally:
        library.close()
    files = [{"path": result_path(r.path), "tags": shown[r.id], "user_tags": mine[r.id]}
             for r in records]
    if not args.json:
        for item in files:
            print(f"{item['path']}: {', '.join(item['tags']) or '(no tags)'}")
    return {"files": files}


def _hide_tags(catalog: Any, records: list[Any], tags: list[str]) -> None:
    """Hide tags the files have; a tag none of them has is an error, and nothing is changed."""
    from clapdesk.core.store import user_tags

    if not tags:
        raise CliError("--hide: the tag is empty")
    ids = [r.id for r in records]
    others = user_tags.other_tags(catalog, ids)
    mine = user_tags.user_tags(catalog, ids)
    for tag in tags:
        having = [r for r in records if tag in {t for t, _ in others[r.id]}]
        if having:
            for record in records:
                if record not in having:
                    print(f"clapdesk: {result_path(record.path)} has no tag '{tag}'; "
                          "left as it was", file=sys.stderr)
            continue
        first = records[0]
        if any(tag in mine[r.id] for r in records):
            raise CliError(f"'{tag}' is your own tag, not an automatic one: drop it with "
                           f"--set (the other tags you want to keep)")
        listed = ", ".join(t for t, _ in others[first.id]) or "none"
        raise CliError(f"{result_path(first.path)} has no tag '{tag}' to hide "
                       f"(its automatic and file-name tags: {listed})")
    for record in records:
        for tag in tags:
            user_tags.hide_tag(catalog, record.id, tag)
