"""The `clapdesk cluster index` and `clapdesk import` verbs (the optional cluster extra)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from clapdesk.cli import CliError, UsageError, open_library


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("cluster", parents=[common],
                       help="index an archive too big for one computer on a Ray cluster")
    verbs = p.add_subparsers(dest="cluster_command", metavar="COMMAND", required=True)
    q = verbs.add_parser("index", parents=[common],
                         help="embed folders on Ray into Parquet shards (then: clapdesk import)")
    q.add_argument("folders", nargs="+", metavar="FOLDER",
                   help="archive folders, as the cluster's workers see them")
    q.add_argument("--ray", required=True, metavar="ADDRESS|auto|local",
                   help="a Ray cluster's address, auto (the one this machine belongs to), or "
                        "local (a private Ray on this machine, on 127.0.0.1)")
    q.add_argument("--out", required=True, metavar="SHARDS_URL",
                   help="a folder or fsspec URL (s3://bucket/shards) for the shards")
    q.add_argument("--workers", type=int, default=1, metavar="N",
                   help="model actors (default 1; one per GPU on a GPU cluster)")
    q.add_argument("--gpus-per-worker", type=float, default=0, metavar="N",
                   help="GPUs per model actor (default 0: the model runs on CPUs)")
    q.add_argument("--cpus-per-worker", type=float, default=1, metavar="N",
                   help="cores per model actor (default 1; its torch threads on a CPU)")
    q.add_argument("--catalog", metavar="CATALOG",
                   help="a library's catalog.sqlite3: files it has unchanged are left out")
    q.add_argument("--map", action="append", default=[], metavar="CLUSTER=HOME",
                   help="with --catalog: where the catalog's paths are on the cluster")
    q.add_argument("--files-per-shard", type=int, default=256, metavar="N",
                   help="shard size on the first run into --out (default 256)")
    q.set_defaults(handler=cmd_cluster_index)

    p = sub.add_parser("import", parents=[common],
                       help="merge shards from `clapdesk cluster index` into the library")
    p.add_argument("shards", nargs="+", metavar="SHARDS",
                   help="shard files, or folders / fsspec URLs holding them")
    p.add_argument("--map", action="append", default=[], metavar="CLUSTER=HOME",
                   help="where the archive is here, e.g. /mnt/archive=/Volumes/Archive")
    p.set_defaults(handler=cmd_import)


def cmd_cluster_index(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.cluster import shards
    from clapdesk.core.cluster.pipeline import cluster_index

    if args.workers < 1:
        raise UsageError("--workers must be 1 or more")
    if args.gpus_per_worker < 0 or args.cpus_per_worker <= 0:
        raise UsageError("--gpus-per-worker cannot be negative, nor --cpus-per-worker 0")
    precision = args.precision or "float32"
    if precision == "float16" and not args.gpus_per_worker:
        raise UsageError("--precision float16 is for GPUs: give --gpus-per-worker too")
    if precision == "int8" and args.gpus_per_worker:
        raise UsageError("--precision int8 is for CPUs: leave out --gpus-per-worker")
    if args.files_per_shard < 1:
        raise UsageError("--files-per-shard must be 1 or more")
    quiet = args.json or not sys.stderr.isatty()

    def progress(done: int, total: int) -> None:
        if not quiet:
            print(f"\rshards written: {done}/{total}", end="\n" if done == total else "",
                  file=sys.stderr, flush=True)

    try:
        report = cluster_index(
            args.folders, args.out, model=args.model or os.environ.get("CLAPDESK_MODEL"),
            ray_address=args.ray, workers=args.workers, gpus_per_worker=args.gpus_per_worker,
            cpus_per_worker=args.cpus_per_worker,
            precision=precision, catalog=args.catalog,
            path_map=shards.PathMap(args.map), files_per_shard=args.files_per_shard,
            progress=progress)
    except shards.ShardError as exc:
        raise CliError(str(exc)) from None
    if not args.json:
        print(f"{report.written} shards written, {report.present} already there "
              f"({report.shards} in all) to {report.out}: {report.embedded} files embedded, "
              f"{report.unchanged} unchanged, {report.known_content} known content, "
              f"{len(report.failed)} failed, in {report.seconds:.1f} s")
        for path, error in report.failed:
            print(f"  failed: {path}: {error}")
    return report.to_json()


def cmd_import(args: argparse.Namespace) -> dict[str, Any]:
    from clapdesk.core.cluster import shards
    from clapdesk.core.cluster.importer import import_shards

    library = open_library(args)
    try:
        report = import_shards(library, args.shards, shards.PathMap(args.map))
    except shards.ShardError as exc:
        raise CliError(str(exc)) from None
    finally:
        library.close()
    if not args.json:
        print(f"merged {report.rows} rows from {report.shards} shards: {report.added} added, "
              f"{report.updated} updated, {report.unchanged} unchanged, {report.older} kept "
              f"(the library's were newer), {report.copied} copies, {report.failed} failed, "
              f"in {report.seconds:.1f} s")
        if report.reproject:
            print(f"  {report.reproject} files get the active fine-tuned version's vectors at "
                  "the next `clapdesk index` (no decoding)")
    return report.to_json()
