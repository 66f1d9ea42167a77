"""The `clapdesk finetune` and `clapdesk models` verbs."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from clapdesk.cli import CliError, UsageError, open_library


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("finetune", parents=[common],
                       help="teach the search your library's tags (a new model version)")
    p.add_argument("--tags", default="folder,filename,user", metavar="SOURCES",
                   help="where tags come from: folder, filename, user, csv:FILE "
                        "(comma-separated; default folder,filename,user)")
    p.add_argument("--mode", choices=["quick", "deep"], default="quick",
                   help="quick: train light heads on stored features (default); deep: not "
                        "available in this version")
    p.add_argument("--holdout-by", choices=["pack", "random"], default="pack",
                   help="hold out whole packs (default, honest) or random files")
    p.add_argument("--include-splice", action="store_true",
                   help="also train on files in Splice folders (their licence forbids it)")
    p.add_argument("--no-activate", action="store_true",
                   help="save the version without making it the one searched")
    p.add_argument("--steps", type=int, default=None,
                   help="most training steps per setting tried (default: each setting's own)")
    p.add_argument("--teach", default="", metavar="WORDS",
                   help="comma-separated words to teach although the rules leave them out "
                        "(pack names, words of one pack, codes: listed after a run)")
    p.set_defaults(handler=cmd_finetune)

    p = sub.add_parser("models", parents=[common],
                       help="list, activate or revert model versions; switch the library's model")
    p.add_argument("action", nargs="?", choices=["list", "activate", "revert", "delete", "switch",
                                                   "available"],
                   default="list")
    p.add_argument("name", nargs="?", metavar="VERSION",
                   help="the version to activate or delete; for switch, the model (a Hugging "
                        "Face id or a folder) to re-embed the library with")
    p.set_defaults(handler=cmd_models)


def cmd_finetune(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.finetune.data import (
        FineTuneError,
        FineTuneOptions,
        FineTuneProgress,
        parse_sources,
    )
    from clapdesk.core.finetune.training import run_finetune

    try:
        sources, csv_path = parse_sources(args.tags)
    except FineTuneError as exc:
        raise CliError(str(exc)) from None
    teach = tuple(w for w in (" ".join(x.lower().split()) for x in args.teach.split(",")) if w)
    options = FineTuneOptions(sources=sources, csv_path=csv_path, mode=args.mode,
                              holdout_by=args.holdout_by, include_splice=args.include_splice,
                              activate=not args.no_activate, restore_tags=teach)
    if args.steps is not None:
        if args.steps < 1:
            raise UsageError("--steps must be at least 1")
        options.steps = args.steps
    show = not args.json and sys.stderr.isatty()

    def progress(p: FineTuneProgress) -> None:
        if show:
            total = f"/{p.total}" if p.total else ""
            sys.stderr.write(f"\r{p.phase:<14} {p.done}{total}".ljust(60))
            sys.stderr.flush()

    library = open_library(args)
    try:
        result = run_finetune(library, options, progress)
    except FineTuneError as exc:
        raise CliError(str(exc)) from None
    finally:
        library.close()
    if show:
        sys.stderr.write("\n")
    out = result.to_json()
    if not args.json:
        print_result(result)
    return out


def print_result(result: Any) -> None:
    """What changed in words first; the figures after, for those who want them."""
    if result.saved:
        print(f"New version {result.version}: the search got better on packs it never saw.")
    else:
        print(f"No new version: {result.reason}. The model searched now stays.")
    for line in result.summary:
        print(f"  {line[0].upper()}{line[1:]}.")
    counts = result.to_json()
    print(f"Learnt from {counts['train']} files, chose on {counts['validation']}, judged on "
          f"{counts['test']} ({result.holdout_by}) in {result.seconds:.1f} s.")
    chosen = result.chosen
    print(f"Chosen on validation: '{chosen['setting']}' ({chosen['part']}, learning rate "
          f"{chosen['learning_rate']:g}, pull {chosen['pull']:g}) at step {chosen['step']}: "
          f"{result.reason}.")
    print(f"{'test':>6} {'before':>8} {'after':>8}")
    for key, before in result.before.items():
        print(f"{key:>6} {before:8.3f} {result.after[key]:8.3f}")
    if result.excluded_tags:
        words = ", ".join(sorted(result.excluded_tags)[:12])
        more = len(result.excluded_tags) - 12
        print(f"Not taught: {words}{f' and {more} more' if more > 0 else ''} "
              "(--teach WORD,WORD to teach them anyway; --json lists why)")
    for note in result.notes:
        print(f"note: {note}")
    if result.saved:
        print("activated" if result.activated else
              f"not activated: clapdesk models activate {result.version}")


def cmd_models(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.finetune import versions

    if args.action == "switch":
        return cmd_switch(args)
    if args.action == "available":
        return cmd_models_available(args)
    library = open_library(args)
    try:
        if args.action in ("activate", "delete") and not args.name:
            raise UsageError(f"models {args.action} needs a VERSION name (see clapdesk models list)")
        try:
            if args.action == "activate":
                versions.activate(library, args.name)
            elif args.action == "revert":
                versions.revert(library)
            elif args.action == "delete":
                versions.delete(library, args.name)
        except versions.VersionError as exc:
            raise CliError(str(exc)) from None
        encoder_key = library.identity.encoder_key
        # Every version is listed, those of other models too (marked): switching models must
        # never look as if a fine-tuned version had gone.
        listed = versions.list_versions(library.paths.models, None, library.active_version)
        result = {"base": encoder_key, "active": library.active_version, "model": library.model_key,
                  "versions": [v.to_json() for v in listed]}
    finally:
        library.close()
    if not args.json:
        marker = "*" if result["active"] is None else " "
        print(f"{marker} base  {encoder_key}")
        for v in listed:
            after = v.info.get("after") or {}
            figures = f"R@10 {after.get('R@10', 0):.3f}" if after else ""
            other = f"  (for {v.base})" if v.base != encoder_key else ""
            print(f"{'*' if v.active and not other else ' '} {v.name}  {v.to_json()['created']}"
                  f"  {figures}{other}")
    return result


def cmd_switch(args: argparse.Namespace) -> dict[str, Any]:
    """Re-embed every sound with another model; search keeps the old one until it is done."""
    from clapdesk.cli import _ProgressBar
    from clapdesk.core.model_switch import plan_switch

    if not args.name:
        raise UsageError("models switch needs the model to switch to: a Hugging Face id or a "
                         "folder holding a CLAP model")
    args.model = args.name
    library = open_library(args)
    try:
        plan = plan_switch(library)
        before = library.catalog.get_meta("model")
        if plan is None:
            library.catalog.set_meta("model", library.model_ref)  # its vectors are all there
            result = {"model": library.model_ref, "previous": before, "re_embedded": 0}
        else:
            if not args.json:
                print(f"switching from {plan.current} to {plan.target}: re-embedding "
                      f"{plan.files} file{'s' if plan.files != 1 else ''} ({plan.estimate}); "
                      "until it is done, search keeps the old model", file=sys.stderr)
            bar = None if args.json or not sys.stderr.isatty() else _ProgressBar()
            report = library.index_folders([p for _, p in library.catalog.roots()], progress=bar)
            if bar:
                bar.finish()
            now = library.catalog.get_meta("model")
            if now != library.model_ref:
                raise CliError(f"the switch did not finish; the library still uses {now} "
                               f"(run clapdesk models switch {args.name} again to go on)")
            result = {"model": now, "previous": before, "re_embedded": report.indexed,
                      "seconds": round(report.seconds, 2)}
    finally:
        library.close()
    if not args.json:
        print(f"the library now uses {result['model']}")
    return result


def cmd_models_available(args: argparse.Namespace) -> dict[str, Any]:
    """`clapdesk models available`: the public CLAP checkpoints clapdesk knows, and their
    known problems. Needs no library and no model."""
    from clapdesk.core.embed.hub import DEFAULT_MODEL
    from clapdesk.core.embed.known_models import KNOWN_MODELS

    models = [{**m.to_json(), "default": m.id == DEFAULT_MODEL} for m in KNOWN_MODELS]
    if not args.json:
        for m, row in zip(KNOWN_MODELS, models):
            marks = " (default)" if row["default"] else ""
            print(f"{m.id}{marks}\n    {m.audio_tower}, {m.download_mb} MB. {m.good_at}.")
            for problem in m.problems:
                print(f"    ! {problem}")
    return {"models": models}
