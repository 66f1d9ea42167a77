"""Shards: what a cluster run writes and `clapdesk import` reads.

A shard is one Parquet file of finished files: path, root, size, mtime, content hash, the
analysis columns, the pooled encoder feature, the search vector, the automatic tags, and the
model commit and preprocessing version they were made with (also in the file's metadata, so an
import refuses a foreign shard before reading its rows).

Shard assignment is deterministic, so a rerun after a failure writes only what is missing:
each file goes to bucket blake2b(path) mod B, with B fixed by the output folder's manifest
on the first run; a shard is named by its bucket and a digest of the (path, size, mtime) of its
files, so a name that exists is a bucket finished with exactly those files. A shard is written
whole or not at all (a temporary name renamed into place, or one object upload).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import posixpath
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from clapdesk.core.index.indexer import BATCH_WINDOWS
from clapdesk.core.ingest import audio

FORMAT = 1
MANIFEST = "clapdesk-shards.json"
SHARD_PREFIX = "shard-"
DEFAULT_FILES_PER_SHARD = 256
# Every setting that decides what a vector is, besides the model: two runs that agree on this
# and on the model commit store the same bytes for the same file.
PREPROCESSING_VERSION = (
    f"clapdesk-pre/1 window={audio.WINDOW_SECONDS:g}s max_windows={audio.MAX_WINDOWS} "
    f"analysis={audio.ANALYSIS_SECONDS:g}s@22050 resample=soxr-HQ mono=mean "
    f"batch={BATCH_WINDOWS} pool=mean")

# Row status: embedded here, failed to decode, or content the target catalog already has
# (a copy or a renamed file: the import takes its twin's vector instead).
EMBEDDED, FAILED, KNOWN_CONTENT = "embedded", "failed", "known-content"

EXTRA_NEEDED = ("the cluster tools need clapdesk's cluster extra: "
                "pip install 'clapdesk[cluster]' (Ray, pyarrow and fsspec)")


class ShardError(Exception):
    """Shards that cannot be written or merged, with the reason."""


def need(module: str) -> Any:
    """Import one of the extra's modules, or say plainly how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ShardError(f"{EXTRA_NEEDED} ({exc})") from None


# -- where shards go -----------------------------------------------------------------------------
def open_folder(url: str) -> tuple[Any, str]:
    """(fsspec file system, path inside it) of a folder or any fsspec URL (s3://, gs://...)."""
    fsspec_core = need("fsspec.core")
    try:
        fs, path = fsspec_core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise ShardError(f"'{url}' cannot be opened: {exc}") from None
    return fs, path.rstrip("/") or "/"


def is_local(fs: Any) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in ("file", "local")


def shard_names(fs: Any, folder: str) -> set[str]:
    """Names of the finished shards in a folder (none where it does not exist yet)."""
    try:
        entries = fs.ls(folder, detail=False)
    except FileNotFoundError:
        return set()
    names = {posixpath.basename(str(e).rstrip("/")) for e in entries}
    return {n for n in names if n.startswith(SHARD_PREFIX) and n.endswith(".parquet")}


def write_atomic(fs: Any, folder: str, name: str, data: bytes) -> None:
    """Write one file whole or not at all: a reader never sees half a shard."""
    target = f"{folder}/{name}"
    if is_local(fs):
        os.makedirs(folder, exist_ok=True)
        tmp = os.path.join(folder, f".{name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    else:  # one object upload appears whole or not at all
        fs.pipe_file(target, data)


# -- the manifest --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Manifest:
    buckets: int
    model_key: str
    model_commit: str
    preprocessing: str = PREPROCESSING_VERSION

    def to_json(self) -> dict[str, object]:
        return {"format": FORMAT, "buckets": self.buckets, "model_key": self.model_key,
                "model_commit": self.model_commit, "preprocessing": self.preprocessing}


def read_manifest(fs: Any, folder: str) -> Manifest | None:
    try:
        raw = json.loads(fs.cat_file(f"{folder}/{MANIFEST}"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ShardError(f"{folder}/{MANIFEST} is damaged ({exc}); use a new output folder"
                         ) from None
    return Manifest(int(raw["buckets"]), str(raw["model_key"]), str(raw["model_commit"]),
                    str(raw["preprocessing"]))


def settle_manifest(fs: Any, folder: str, wanted: Manifest) -> Manifest:
    """The folder's manifest: written on the first run; later runs must agree with it and
    keep its bucket count (or every file would move to another shard)."""
    found = read_manifest(fs, folder)
    if found is None:
        fs.makedirs(folder, exist_ok=True)
        write_atomic(fs, folder, MANIFEST, json.dumps(wanted.to_json(), indent=1).encode())
        return wanted
    if (found.model_commit, found.preprocessing) != (wanted.model_commit, wanted.preprocessing):
        raise ShardError(
            f"{folder} holds shards of {found.model_key} (commit {found.model_commit}, "
            f"{found.preprocessing}); this run uses {wanted.model_key} (commit "
            f"{wanted.model_commit}, {wanted.preprocessing}): write to another folder")
    return found


def bucket_count(files: int, per_shard: int) -> int:
    return max(1, math.ceil(files / max(1, per_shard)))


# -- planning ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PlannedFile:
    path: str
    root: str
    size: int
    mtime_ns: int


@dataclass
class ShardSpec:
    bucket: int
    files: list[PlannedFile]

    @property
    def digest(self) -> str:
        h = hashlib.blake2b(digest_size=8)
        for f in self.files:
            h.update(os.fsencode(f.path) + b"\0" + f"{f.size}:{f.mtime_ns}".encode() + b"\n")
        return h.hexdigest()

    @property
    def name(self) -> str:
        return f"{SHARD_PREFIX}{self.bucket:05d}-{self.digest}.parquet"


def bucket_of(path: str, buckets: int) -> int:
    digest = hashlib.blake2b(os.fsencode(path), digest_size=8).digest()
    return int.from_bytes(digest, "big") % buckets


def plan_shards(files: Iterable[PlannedFile], buckets: int) -> list[ShardSpec]:
    """Files into their buckets, each bucket sorted by path: the same files, the same shards."""
    by_bucket: dict[int, list[PlannedFile]] = {}
    for f in files:
        by_bucket.setdefault(bucket_of(f.path, buckets), []).append(f)
    return [ShardSpec(b, sorted(fs, key=lambda f: os.fsencode(f.path)))
            for b, fs in sorted(by_bucket.items())]


def superseded(names: Iterable[str], name: str) -> list[str]:
    """Other shards of this shard's bucket (written before its files changed, or a run that
    left it unfinished): replaced by this one."""
    prefix = name[:len(SHARD_PREFIX) + 6]  # "shard-00042-"
    return [n for n in names if n.startswith(prefix) and n != name]


# -- path maps -----------------------------------------------------------------------------------
class PathMap:
    """`--map /mnt/archive=/Volumes/Archive`: the same archive mounted elsewhere."""

    def __init__(self, pairs: Sequence[str] = ()) -> None:
        self.pairs: list[tuple[str, str]] = []
        for pair in pairs:
            there, sep, here = pair.partition("=")
            if not sep or not there or not here:
                raise ShardError(f"--map {pair!r}: write it as FROM=TO, e.g. "
                                 "/mnt/archive=/Volumes/Archive")
            self.pairs.append((_clean(there), _clean(here)))
        # The longest prefix first: /mnt/a/b=... wins over /mnt/a=... for files under /mnt/a/b.
        self.pairs.sort(key=lambda p: -len(p[0]))

    def __bool__(self) -> bool:
        return bool(self.pairs)

    def apply(self, path: str) -> str:
        for there, here in self.pairs:
            if path == there or path.startswith(there.rstrip("/") + "/"):
                return here + path[len(there):]
        return path

    def reverse(self) -> PathMap:
        back = PathMap()
        back.pairs = sorted(((h, t) for t, h in self.pairs), key=lambda p: -len(p[0]))
        return back


def _clean(path: str) -> str:
    return path.rstrip("/") if len(path) > 1 else path


# -- the table -----------------------------------------------------------------------------------
def schema(feature_dim: int, vector_dim: int) -> Any:
    pa = need("pyarrow")
    return pa.schema([
        ("path", pa.binary()), ("root", pa.binary()),  # os.fsencode: any file name round-trips
        ("size", pa.int64()), ("mtime_ns", pa.int64()), ("content_hash", pa.string()),
        ("status", pa.string()), ("error", pa.string()),
        ("analysis", pa.string()),  # JSON: duration, rate, channels, format, tempo, key...
        ("auto_tags", pa.string()),  # JSON: [[tag, score], ...]
        ("feature", pa.list_(pa.float32(), feature_dim)),
        ("vector", pa.list_(pa.float32(), vector_dim)),
        ("model_key", pa.string()), ("model_commit", pa.string()), ("preprocessing", pa.string()),
    ])


def shard_bytes(rows: list[dict[str, Any]], features: np.ndarray, vectors: np.ndarray,
                manifest: Manifest) -> bytes:
    """One shard as Parquet bytes. `features`/`vectors` have a row per embedded row, in order."""
    pa = need("pyarrow")
    pq = need("pyarrow.parquet")
    feature_dim, vector_dim = int(features.shape[1]), int(vectors.shape[1])
    embedded = [i for i, r in enumerate(rows) if r["status"] == EMBEDDED]

    def column(matrix: np.ndarray, dim: int) -> Any:
        full = np.zeros((len(rows), dim), np.float32)
        if embedded:
            full[embedded] = matrix
        mask = np.ones(len(rows), bool)
        mask[embedded] = False
        flat = pa.array(full.reshape(-1), pa.float32())
        return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(mask))

    n = len(rows)
    table = pa.table({
        "path": [os.fsencode(r["path"]) for r in rows],
        "root": [os.fsencode(r["root"]) for r in rows],
        "size": [int(r["size"]) for r in rows], "mtime_ns": [int(r["mtime_ns"]) for r in rows],
        "content_hash": [r.get("digest") for r in rows],
        "status": [r["status"] for r in rows], "error": [r.get("error") for r in rows],
        "analysis": [json.dumps(r.get("analysis") or {}) for r in rows],
        "auto_tags": [json.dumps(r.get("auto_tags") or []) for r in rows],
        "feature": column(features, feature_dim), "vector": column(vectors, vector_dim),
        "model_key": [manifest.model_key] * n, "model_commit": [manifest.model_commit] * n,
        "preprocessing": [manifest.preprocessing] * n,
    }, schema=schema(feature_dim, vector_dim))
    table = table.replace_schema_metadata({"clapdesk": json.dumps(manifest.to_json())})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def shard_manifest(metadata: dict[bytes, bytes] | None, where: str) -> Manifest:
    """The model and preprocessing a shard file says it was made with."""
    raw = (metadata or {}).get(b"clapdesk")
    if raw is None:
        raise ShardError(f"{where} is not a clapdesk shard (no clapdesk metadata)")
    info = json.loads(raw)
    if int(info.get("format", 0)) > FORMAT:
        raise ShardError(f"{where} was written by a newer clapdesk (shard format "
                         f"{info.get('format')}); update clapdesk to import it")
    return Manifest(int(info["buckets"]), str(info["model_key"]), str(info["model_commit"]),
                    str(info["preprocessing"]))
