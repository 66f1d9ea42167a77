"""The `clapdesk` command: the desktop app with no arguments, the engine's verbs otherwise.

Exit codes: 0 success (also when some files failed: they are listed), 2 usage error, 1 a fatal
error, reported as one plain line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import json
import logging
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from clapdesk import __version__
from clapdesk.cli_argv import query_words
from clapdesk.core.index.report import CHOOSING_PRECISION

log = logging.getLogger("clapdesk")


class CliError(Exception):
    """A fatal, expected error: its message is all the user sees."""


class UsageError(CliError):
    """The command line itself is wrong (exit status 2, as argparse's own errors)."""


# The formats --format knows: what the catalog records for the files libsndfile reads.
KNOWN_FORMATS = ("WAV", "WAVEX", "AIFF", "FLAC", "OGG", "MP3", "W64", "RF64", "CAF", "AU")


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """Options accepted before or after the verb. After it they must not reset what was given
    before it, hence SUPPRESS as the verbs' default."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--library", metavar="DIR", help="library folder (default: the user "
                        "data folder, or $CLAPDESK_LIBRARY)")
    common.add_argument("--model", metavar="ID_OR_FOLDER", help="CLAP model: a Hugging Face id or "
                        "a local folder (default: the library's model, $CLAPDESK_MODEL, or "
                        "laion/larger_clap_general)")
    common.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default=None)
    common.add_argument("--precision", choices=["auto", "float32", "bfloat16", "int8", "float16"],
                        default=None, help="auto (the default): the first indexing picks bfloat16 "
                        "or int8 where this CPU runs it natively and it keeps search results, "
                        "else float32 (exact); float16: for a GPU")
    common.add_argument("--json", action="store_true", help="print one JSON object")
    common.add_argument("-v", "--verbose", action="store_true")
    if suppress:
        for action in common._actions:
            action.default = argparse.SUPPRESS
    return common


def build_parser() -> argparse.ArgumentParser:
    top = _global_options(suppress=False)
    common = _global_options(suppress=True)
    parser = argparse.ArgumentParser(prog="clapdesk", parents=[top],
                                     description="Find sounds in your sample library by describing them.")
    parser.add_argument("--version", action="version", version=f"clapdesk {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("index", parents=[common], help="add folders to the library and index them")
    p.add_argument("paths", nargs="*", metavar="PATH",
                   help="folders to add (none: rescan the library's folders)")
    p.add_argument("--workers", type=int, default=None, help="decoder processes (default: one per core, at most 4)")
    p.add_argument("--purge-missing", action="store_true",
                   help="forget the tags and favourites of files that have vanished")

    for name, what in (("search", "QUERY"), ("similar", "FILE")):
        p = sub.add_parser(name, parents=[common],
                           help="search by description" if name == "search" else "find sound-alikes")
        if name == "search":
            # Several words are one query, and a word may start with "-" (an exclusion such as
            # "-vocal"): see cli_argv.query_words() for how those get past argparse.
            p.add_argument("target", metavar=what, nargs="+",
                           help='what to look for; "-word" leaves out sounds tagged or named word')
        else:
            p.add_argument("target", metavar=what)
        p.add_argument("-k", type=int, default=20, help="how many results (default 20)")
        p.add_argument("--in", dest="folder", metavar="DIR", help="only files inside DIR")
        p.add_argument("--min-duration", type=float, metavar="SECONDS")
        p.add_argument("--max-duration", type=float, metavar="SECONDS")
        p.add_argument("--format", action="append", default=[], metavar="FMT",
                       help=f"only this format ({', '.join(KNOWN_FORMATS)}); repeatable")
        if name == "similar":
            p.add_argument("--where", default="", metavar="CONSTRAINTS",
                           help='constraints in words, e.g. "loop at 120 BPM"')

    sub.add_parser("doctor", parents=[common], help="versions, device, model and library state")
    sub.add_parser("failures", parents=[common], help="files that could not be indexed, and why")
    sub.add_parser("purge", parents=[common],
                   help="forget vanished files' tags and favourites (kept for 90 days otherwise)")
    p = sub.add_parser("duplicates", parents=[common],
                       help="identical files (same content) and near-duplicates (same sound)")
    p.add_argument("--near", action="store_true", help="also list near-duplicates by sound")
    p = sub.add_parser("tag", parents=[common], help="set, add or hide tags of indexed files")
    p.add_argument("files", nargs="+", metavar="FILE")
    change = p.add_mutually_exclusive_group()  # none of them: list the files' tags
    change.add_argument("--set", metavar="TAGS", help='replace your tags: "dusty, lo-fi kick"')
    change.add_argument("--add", metavar="TAGS", help='add tags of your own: "club kick, techno"')
    change.add_argument("--hide", metavar="TAGS", help="hide automatic or file-name tags")
    sub.add_parser("gui", parents=[common], help="open the desktop app (the default)")
    _add_extensions(sub, common)
    return parser


def _add_extensions(sub: Any, common: argparse.ArgumentParser) -> None:
    """Verbs that live with their own feature (fine-tuning registers `finetune` and `models`)."""
    try:
        from clapdesk.finetune_cli import add_commands
    except ImportError:
        return
    add_commands(sub, common)
    # `map`; `render`; `similar`, `record`; `tempo`; `cluster index` and `import`
    for module in ("map_cli", "render_cli", "sound_cli", "tempo_cli", "cluster_cli"):
        importlib.import_module(f"clapdesk.{module}").add_commands(sub, common)


def gui_main() -> int:
    """The `clapdesk-gui` launcher.

    It lives here rather than in the GUI package because indexing's decoder processes import
    the launcher's module again as they start: this module loads neither Qt nor torch.
    """
    multiprocessing.freeze_support()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from clapdesk.gui.app import run_app

    return run_app()


def main(argv: Sequence[str] | None = None) -> int:
    multiprocessing.freeze_support()  # a frozen app's decoder processes start through here
    parser = build_parser()
    args = parser.parse_args(query_words(list(sys.argv[1:] if argv is None else argv), parser))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.command in (None, "gui"):
        from clapdesk.gui.app import run_app

        return run_app(library=args.library, model=args.model, device=args.device,
                       precision=args.precision)
    handler: Callable[[argparse.Namespace], dict[str, Any]] = args.handler if hasattr(
        args, "handler") else COMMANDS[args.command]
    try:
        result = handler(args)
    except KeyboardInterrupt:
        print("clapdesk: interrupted; everything indexed so far is kept", file=sys.stderr)
        return 1
    except UsageError as exc:
        print(f"clapdesk {args.command}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # every expected failure has its own plain message
        message = _plain_error(exc)
        if args.verbose:
            log.exception("fatal")
        print(f"clapdesk: {message}", file=sys.stderr)
        return 1
    if args.json:
        # Always valid JSON: a NaN or infinite number (which json.dumps would print bare, as
        # no JSON parser accepts) is printed as null.
        print(json.dumps(_finite(result), ensure_ascii=False, allow_nan=False))
    return 0


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _plain_error(exc: BaseException) -> str:
    from clapdesk.core.embed.hub import ModelError
    from clapdesk.core.library import LibraryBusy
    from clapdesk.core.store.catalog import CatalogError, is_disk_full

    if isinstance(exc, (CliError, ModelError, CatalogError, LibraryBusy)):
        return str(exc)
    disk_full = "the disk is full; the library was left as it was before this step"
    if is_disk_full(exc):
        return disk_full
    if isinstance(exc, OSError):
        if exc.errno == errno.ENOSPC:
            return disk_full
        return f"{exc.strerror or exc}: {exc.filename or ''}".strip(": ")
    return f"unexpected error ({type(exc).__name__}): {exc}"


def open_library(args: argparse.Namespace) -> Any:
    from clapdesk.core.library import Library

    library = Library(args.library, model=args.model, device=args.device,
                      precision=args.precision or "auto")
    if getattr(args, "command", None) != "search":  # a refused search says it in its own line
        from clapdesk.core.model_switch import untrained_text_notice

        notice = untrained_text_notice(library)
        if notice:
            print(f"clapdesk: note: {notice}", file=sys.stderr)
    return library


def cmd_index(args: argparse.Namespace) -> dict[str, Any]:
    library = open_library(args)
    try:
        for path in args.paths:
            if not os.path.isdir(path):
                raise CliError(f"'{path}' is not a folder")
        folders = args.paths or [p for _, p in library.catalog.roots()]
        if not folders:
            raise CliError("the library has no folders yet: clapdesk index FOLDER")
        folders = _switching(args, library, folders)
        bar = None if args.json or not sys.stderr.isatty() else _ProgressBar()
        report = library.index_folders(folders, progress=bar, workers=args.workers,
                                       purge_missing=args.purge_missing)
        # A rescan skips unchanged files that failed before: they still fail, and are counted.
        new = {path for path, _ in report.failed}
        inside = [os.path.join(os.path.abspath(f), "") for f in folders]
        still = [(p, e) for p, e in library.catalog.failures()
                 if p not in new and any(p.startswith(f) for f in inside)]
    finally:
        library.close()
    if bar:
        bar.finish()
    result = report.to_json()
    result["still_failing"] = [{"path": result_path(p), "error": e} for p, e in still]
    if not args.json:
        print(f"indexed {report.indexed}, unchanged {report.unchanged}, removed {report.removed}, "
              f"renamed {report.moved}, failed {len(report.failed) + len(still)} "
              f"in {report.seconds:.1f} s")
        for path, error in report.failed:
            print(f"  failed: {result_path(path)}: {error}")
        for path, error in still:
            print(f"  still failing: {result_path(path)}: {error}")
        for root in report.offline_roots:
            print(f"  skipped (missing or empty, its files were kept): {result_path(root)}")
        if report.precision:
            print(f"  {report.precision.note()}")
    return result


def _switching(args: argparse.Namespace, library: Any, folders: list[str]) -> list[str]:
    """`index --model OTHER` on a library of another model is a switch: every folder is
    re-embedded, and the library takes OTHER once all its sounds have OTHER's vectors."""
    from clapdesk.core.model_switch import plan_switch

    plan = plan_switch(library) if args.model else None
    if plan is None:
        return folders
    if not args.json:
        print(f"switching the library from {plan.current} to {plan.target}: re-embedding "
              f"{plan.files} file{'s' if plan.files != 1 else ''} ({plan.estimate}); search "
              "keeps the old model until this is done", file=sys.stderr)
    roots = [p for _, p in library.catalog.roots()]
    return roots + [f for f in folders if os.path.abspath(f) not in roots]


def result_path(path: str) -> str:
    """A path as plain-text output shows it: readable bytes, and no raw control characters."""
    from clapdesk.core.store.catalog import display_path

    return printable(display_path(path))


# Control characters (C0, DEL, C1) in a file name would break a line of output or, as
# terminal escape codes, recolour or rewrite the terminal: each is shown as an escape instead.
_CONTROL = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def printable(text: str) -> str:
    """`text` with control characters written as escapes: \\n, \\t, \\x1b."""
    return text.translate(_CONTROL)


def _filters(args: argparse.Namespace) -> Any:
    from clapdesk.core.search.ranking import Filters

    if args.folder and not os.path.isdir(args.folder):
        raise CliError(f"--in: '{args.folder}' is not a folder")
    unknown = [f for f in args.format if f.upper() not in KNOWN_FORMATS]
    if unknown:
        raise UsageError(f"--format {unknown[0]}: not a format clapdesk indexes; the formats "
                         f"are {', '.join(KNOWN_FORMATS)}")
    return Filters(folder=os.path.abspath(args.folder) if args.folder else None,
                   min_duration=args.min_duration, max_duration=args.max_duration,
                   formats=tuple(f.upper() for f in args.format))


def cmd_search(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.ingest.text import readable
    from clapdesk.core.search.ranking import search_text

    # A query typed in a terminal that is not UTF-8 arrives with surrogates: read its bytes.
    query = readable(" ".join(word.strip() for word in args.target).strip())
    if not query:
        raise UsageError('the query is empty: describe a sound, e.g. clapdesk search "dusty '
                         'kick" (clapdesk index FOLDER lists nothing; it adds a folder)')
    if args.k < 1:
        raise UsageError("-k must be at least 1")
    filters = _filters(args)
    library = open_library(args)
    try:
        _ready_to_search(library)
        started = time.perf_counter()
        response = search_text(library, query, k=args.k, filters=filters)
        library.catalog.record_history("query", query)
        return _show(args, response, time.perf_counter() - started)
    finally:
        library.close()


def _ready_to_search(library: Any) -> None:
    """The model is found (its own plain error otherwise) and there is something to search."""
    from clapdesk.core.model_switch import plan_switch

    library.identity  # noqa: B018 - resolving raises ModelError with what to do
    if not library.catalog.count_files():
        raise CliError("the library is empty: add your samples first with clapdesk index FOLDER")
    plan = plan_switch(library)
    if plan is not None:  # searching would find nothing: say what would make it work
        raise CliError(plan.message())


def _show(args: argparse.Namespace, response: Any, seconds: float) -> dict[str, Any]:
    result = response.to_json()
    result["seconds"] = round(seconds, 4)
    if args.json:
        return result
    query = response.query
    if query is not None and query.constraints():
        print("constraints: " + ", ".join(c.label for c in query.constraints()))
    if not response.hits:
        print("no results")
    for rank, hit in enumerate(response.hits, 1):
        f = hit.file
        bits = [f"{f.duration:.2f}s" if f.duration else "", f"{f.bpm:.0f} BPM" if f.bpm else "",
                f.key or "", f.kind or "", f"({hit.note} time)" if hit.note else ""]
        # The readable match, never the raw cosine (see core/search/match.py).
        print(f"{rank:3d}  {hit.match_text or '-':>5}  {result_path(f.path)}  "
              + " ".join(b for b in bits if b))
    return result


def cmd_doctor(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.doctor_cli import cmd_doctor as run

    return run(args)


def cmd_failures(args: argparse.Namespace) -> dict[str, Any]:
    library = open_library(args)
    try:
        failed = [{"path": result_path(p), "error": e} for p, e in library.catalog.failures()]
    finally:
        library.close()
    if not args.json:
        for item in failed:
            print(f"{item['path']}: {item['error']}")
        if not failed:
            print("no failures")
    return {"failed": failed}


def cmd_purge(args: argparse.Namespace) -> dict[str, Any]:
    library = open_library(args)
    try:
        purged = library.purge_missing()
    finally:
        library.close()
    if not args.json:
        print(f"forgot {purged} vanished file{'s' if purged != 1 else ''}")
    return {"purged": purged}


def cmd_duplicates(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.search.duplicates import identical_groups, near_groups

    library = open_library(args)
    try:
        groups = identical_groups(library.catalog) + (near_groups(library) if args.near else [])
    finally:
        library.close()
    if not args.json:
        for group in groups:
            label = "identical" if group.kind == "identical" else f"sounds alike ({group.similarity:.3f})"
            print(f"{label}:")
            for path in group.paths:
                print(f"    {result_path(path)}")
        if not groups:
            print("no duplicates")
    return {"groups": [g.to_json() for g in groups]}


def cmd_tag(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.tag_cli import cmd_tag as run

    return run(args)


COMMANDS: dict[str, Callable[[argparse.Namespace], dict[str, Any]]] = {
    "index": cmd_index, "search": cmd_search,
    "doctor": cmd_doctor, "failures": cmd_failures, "duplicates": cmd_duplicates,
    "tag": cmd_tag, "purge": cmd_purge,
}


class _ProgressBar:
    """A one-line progress bar on stderr for people at a terminal."""

    def __init__(self) -> None:
        self.last = 0.0

    def __call__(self, progress: Any) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and progress.phase == "embedding":
            return
        self.last = now
        width = 30
        filled = int(width * progress.done / progress.total) if progress.total else 0
        eta = f" {progress.eta:.0f}s left" if progress.eta else ""
        if progress.eta and progress.eta_low is not None and progress.eta_low < progress.eta:
            eta = f" {progress.eta_low:.0f}-{progress.eta:.0f}s left"  # choosing the precision
        rate = f" {progress.rate:.1f} files/s" if progress.rate else ""
        phase = CHOOSING_PRECISION if progress.comparing else progress.phase
        line = (f"\r{phase:<18} [{'#' * filled}{'.' * (width - filled)}] "
                f"{progress.done}/{progress.total}{rate}{eta}")
        sys.stderr.write(line[:120].ljust(100))
        sys.stderr.flush()

    def finish(self) -> None:
        sys.stderr.write("\n")
