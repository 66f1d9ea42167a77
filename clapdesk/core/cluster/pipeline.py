"""`clapdesk cluster index`: a Ray Data pipeline from archive folders to Parquet shards.

The driver scans the folders, leaves out files the target catalog already has (same path, size
and mtime), and plans the shards (shards.py). Ray Data then streams the missing shards through
three stages, each a shard at a time, so each shard is written as soon as it is finished:

1. decode (CPU tasks): hash, decode, resample and analyse every file of the shard with
   clapdesk's own decoding.decode_file, exactly as local indexing does in its decoder processes;
   a file whose content the catalog already has is hashed, not decoded;
2. embed (an actor pool, one GPU each with --gpus-per-worker, or CPU): the model is loaded once
   per actor from the files the driver shipped through the object store, so every actor uses the
   very commit the driver resolved; windows go through the encoder in calls of exactly
   indexer.BATCH_WINDOWS, features are pooled per file and projected as the indexer does;
3. write (tasks): the shard, atomically, to the output folder or fsspec URL.

Ray retries a task whose worker died and restarts a dead actor, whose shard is then embedded
again; a driver that dies loses only the shards in flight, and the rerun writes only those.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clapdesk.core.cluster import shards
from clapdesk.core.cluster.shards import EMBEDDED, FAILED, KNOWN_CONTENT, Manifest, PlannedFile
from clapdesk.core.ingest.scan import walk_audio

log = logging.getLogger(__name__)


@dataclass
class ClusterReport:
    out: str
    shards: int = 0  # shards the folders make
    written: int = 0  # written by this run
    present: int = 0  # finished by an earlier run, left as they were
    files: int = 0  # audio files found
    unchanged: int = 0  # already in the target catalog with the same size and mtime
    embedded: int = 0
    known_content: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    # Where the time went: Ray's start (or connection), and the seconds each stage's workers
    # spent, summed over shards (stages overlap, so these add up to more than the wall time).
    stage_seconds: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, object]:
        return {"out": self.out, "shards": self.shards, "written": self.written,
                "present": self.present, "files": self.files, "unchanged": self.unchanged,
                "embedded": self.embedded, "known_content": self.known_content,
                "failed": [{"path": p, "error": e} for p, e in self.failed],
                "stage_seconds": {k: round(v, 3) for k, v in self.stage_seconds.items()},
                "seconds": round(self.seconds, 3)}


Progress = Callable[[int, int], None]  # shards done, shards to do


def connect(address: str | None, cpus: int | None = None) -> Any:
    """Ray, initialised: an existing session, a cluster (`auto` or an address), or `local`, a
    private one on this machine that listens on 127.0.0.1 only and starts no dashboard."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no reports sent home
    if address in (None, "local"):
        # A private Ray takes the loopback address as its node's (as Ray does on macOS and
        # Windows), so its GCS, raylet, workers and agents listen on 127.0.0.1 only; read when
        # Ray is first imported, hence set before.
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = shards.need("ray")
    if ray.is_initialized():
        return ray
    if address in (None, "local"):
        ray.init(num_cpus=cpus, include_dashboard=False, _node_ip_address="127.0.0.1",
                 configure_logging=False, log_to_driver=False)
    else:
        try:
            ray.init(address=address, configure_logging=False, log_to_driver=False)
        except (ConnectionError, ValueError, RuntimeError) as exc:
            raise shards.ShardError(f"no Ray cluster at {address!r}: {exc} (start one with "
                                    "`ray start --head`, or use --ray local)") from None
    return ray


def scan(folders: list[str], report: ClusterReport) -> list[PlannedFile]:
    found: list[PlannedFile] = []
    for folder in folders:
        root = os.path.abspath(folder)
        if not os.path.isdir(root):
            raise shards.ShardError(f"'{folder}' is not a folder")
        result = walk_audio(root)
        report.failed.extend(result.not_files)
        report.failed.extend((p, f"folder cannot be read: {why}")
                             for p, why in result.unreadable_folders)
        found.extend(PlannedFile(f.path, root, f.size, f.mtime_ns) for f in result.found)
    report.files = len(found)
    return found


def leave_out_unchanged(files: list[PlannedFile], catalog_path: str | None, encoder_key: str,
                        path_map: shards.PathMap, report: ClusterReport) -> tuple[
                            list[PlannedFile], frozenset[str]]:
    """Files the target catalog has with the same size and mtime (and features of this model)
    are left out; the content hashes it has are returned, so copies are hashed, not embedded."""
    if not catalog_path:
        return files, frozenset()
    from clapdesk.core.store.shard_merge import known_files

    if not os.path.isfile(catalog_path):
        raise shards.ShardError(f"--catalog {catalog_path}: no such catalog file")
    stamps, hashes = known_files(catalog_path, encoder_key)
    back = path_map.reverse()  # the catalog holds home paths; this run sees cluster paths
    here = {back.apply(path): stamp for path, stamp in stamps.items()}
    todo = [f for f in files if here.get(f.path) != (f.size, f.mtime_ns)]
    report.unchanged = len(files) - len(todo)
    return todo, hashes


def cluster_index(folders: list[str], out: str, *, model: str | None = None,
                  ray_address: str | None = None, workers: int = 1, gpus_per_worker: float = 0,
                  cpus_per_worker: float = 1, precision: str = "float32", catalog: str | None = None,
                  path_map: shards.PathMap | None = None,
                  files_per_shard: int = shards.DEFAULT_FILES_PER_SHARD,
                  progress: Progress | None = None) -> ClusterReport:
    from clapdesk.core.embed.hub import DEFAULT_MODEL, resolve_model

    started = time.monotonic()
    report = ClusterReport(out)
    identity = resolve_model(model or DEFAULT_MODEL)
    files = scan(folders, report)
    files, known = leave_out_unchanged(files, catalog, identity.encoder_key,
                                       path_map or shards.PathMap(), report)
    fs, folder = shards.open_folder(out)
    manifest = shards.settle_manifest(fs, folder, Manifest(
        shards.bucket_count(len(files), files_per_shard), identity.encoder_key,
        identity.revision))
    specs = shards.plan_shards(files, manifest.buckets)
    present = shards.shard_names(fs, folder)
    todo = [s for s in specs if s.name not in present]
    report.shards, report.present = len(specs), len(specs) - len(todo)
    if todo:
        _run_pipeline(todo, out, identity, manifest, known, (workers, gpus_per_worker,
                      cpus_per_worker), precision, ray_address, report, progress)
    report.seconds = time.monotonic() - started
    return report


def _run_pipeline(todo: list[shards.ShardSpec], out: str, identity: Any, manifest: Manifest,
                  known: frozenset[str], pool: tuple[int, float, float], precision: str,
                  address: str | None, report: ClusterReport, progress: Progress | None) -> None:
    workers, gpus, cpus = pool
    clock = time.monotonic()
    ray = connect(address, cpus=None)
    report.stage_seconds["ray_start"] = time.monotonic() - clock
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    context.print_on_execution_start = False
    model_ref = ray.put(_model_files(identity.folder))
    fingerprint = _fingerprint(identity.folder)
    known_ref = ray.put(known)
    items = [{"shard": s.name, "files": json.dumps(
        [[f.path, f.root, f.size, f.mtime_ns] for f in s.files])} for s in todo]
    device = "cuda" if gpus > 0 else "cpu"
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    # Tasks whose worker process dies run again (Ray's default: three times); the model
    # actors are restarted, and their shard given to them again (Ray Data's default).
    # Decoding asks half a core: on a CPU-only box, model actors that take a core each still
    # leave room for it (a decode task that could never start would stall the pipeline).
    ds = ds.map(_Decode(known_ref, _model_rate(identity.folder)), num_cpus=0.5)
    ds = ds.map_batches(
        EmbedShard, batch_size=1, compute=ray.data.ActorPoolStrategy(size=max(1, workers)),
        num_gpus=gpus or None, num_cpus=cpus,
        fn_constructor_kwargs={"model": [model_ref], "folder": identity.folder,
                               "fingerprint": fingerprint, "ref": identity.ref,
                               "revision": identity.revision, "device": device,
                               "precision": precision, "manifest": manifest.to_json(),
                               "threads": max(1, int(cpus))})
    ds = ds.map(_Write(out), num_cpus=0.25)
    done = 0
    try:
        for row in ds.iter_rows():
            done += 1
            _tally(row, report)
            if progress:
                progress(done, len(todo))
    except ray.exceptions.RayError as exc:
        # A model that cannot load, a folder the workers cannot write: the first line says it.
        lines = [line for line in str(exc).splitlines() if line.strip()]
        raise shards.ShardError(
            f"the cluster run stopped after {done} of {len(todo)} shards: "
            f"{lines[-1] if lines else type(exc).__name__}. The shards written are kept: "
            "run the same command again to write the rest") from None


def _tally(row: dict[str, Any], report: ClusterReport) -> None:
    """One written shard's counts and stage seconds into the run's report."""
    report.written += 1
    counts = json.loads(row["counts"])
    report.embedded += counts[EMBEDDED]
    report.known_content += counts[KNOWN_CONTENT]
    report.failed.extend((p, e) for p, e in json.loads(row["failed"]))
    for stage, seconds in json.loads(row["seconds"]).items():
        report.stage_seconds[stage] = report.stage_seconds.get(stage, 0.0) + seconds


def _model_files(folder: str) -> dict[str, bytes]:
    """The model folder's files (weights, config, tokenizer), shipped to every actor: a worker
    node needs neither the hub nor a copy of the folder, and gets exactly this commit."""
    out: dict[str, bytes] = {}
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):  # the hub's snapshot links are followed
            with open(path, "rb") as handle:
                out[name] = handle.read()
    return out


def _fingerprint(folder: str) -> list[list[object]]:
    """Names, sizes and mtimes of a model folder's files: the same on a node means the same
    files there (one machine, or a shared disk), which then need no copy."""
    out: list[list[object]] = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            st = os.stat(path)
            out.append([name, st.st_size, st.st_mtime_ns])
    return out


def _model_rate(folder: str) -> int:
    """The rate the model's feature extractor takes, read as the embedder reads it."""
    from transformers import ClapFeatureExtractor

    return int(ClapFeatureExtractor.from_pretrained(folder).sampling_rate)


class _Decode:
    """Stage 1, a Ray task per shard: decoding.decode_file on each of its files."""

    def __init__(self, known_ref: Any, model_rate: int) -> None:
        self.known_ref = [known_ref]  # in a list: Ray hands it over as a reference, unread
        self.model_rate = model_rate

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        import ray

        from clapdesk.core.index import decode_worker, decoding
        from clapdesk.core.ingest import audio

        started = time.process_time()
        decode_worker.lower_priority()  # as local decoders: the model's work comes first
        known = ray.get(self.known_ref[0])
        results, windows, lengths = [], [], []
        for path, root, size, mtime_ns in json.loads(row["files"]):
            request = decoding.DecodeRequest(path, size, mtime_ns, self.model_rate, known,
                                             audio.decode_memory_mb())
            result = decoding.decode_file(request)
            entry: dict[str, Any] = {"path": path, "root": root, "size": result.size,
                                     "mtime_ns": result.mtime_ns, "digest": result.digest,
                                     "error": result.error, "transient": result.transient}
            if result.error is not None:
                entry["status"] = FAILED
            elif result.decoded is None:
                entry["status"] = KNOWN_CONTENT
            else:
                info = result.decoded.info
                entry["status"] = EMBEDDED
                entry["analysis"] = {"duration": info.duration, "sample_rate": info.sample_rate,
                                     "channels": info.channels, "format": info.format,
                                     "subtype": info.subtype, **result.analysis}
                windows.extend(result.decoded.windows)
                lengths.append([int(w.size) for w in result.decoded.windows])
            results.append(entry)
        flat = np.concatenate(windows) if windows else np.zeros(0, np.float32)
        return {"shard": row["shard"], "results": json.dumps(results, default=_plain),
                "lengths": json.dumps(lengths), "windows": flat.astype(np.float32).tobytes(),
                "seconds": json.dumps({"decode": time.process_time() - started})}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else str(value)


class EmbedShard:
    """Stage 2, a Ray actor: the model, loaded once, embeds one shard per call."""

    def __init__(self, model: list[Any], folder: str, fingerprint: list[list[object]], ref: str,
                 revision: str, device: str, precision: str, manifest: dict[str, Any],
                 threads: int = 1) -> None:
        import ray
        import torch

        started = time.monotonic()
        if device == "cpu":
            torch.set_num_threads(threads)  # the cores Ray gave this actor, no more

        from clapdesk.core.embed.auto_tags import AUTO_TAG_VOCABULARY
        from clapdesk.core.embed.embedder import ClapEmbedder
        from clapdesk.core.embed.hub import ModelIdentity

        if os.path.isdir(folder) and _fingerprint(folder) == fingerprint:
            self.folder = folder  # the driver's own files, on this node too
        else:
            self.folder = tempfile.mkdtemp(prefix="clapdesk-model-")
            for name, data in ray.get(model[0]).items():
                with open(os.path.join(self.folder, name), "wb") as handle:
                    handle.write(data)
        self.embedder = ClapEmbedder(ModelIdentity(ref, self.folder, revision), device=device,
                                     precision=precision)
        self.vocabulary = self.embedder.embed_prompts(
            [f"the sound of {w}" for w in AUTO_TAG_VOCABULARY])
        self.manifest = Manifest(int(manifest["buckets"]), manifest["model_key"],
                                 manifest["model_commit"], manifest["preprocessing"])
        self.load_seconds = time.monotonic() - started  # reported with the first shard

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, list[Any]] = {"shard": [], "data": [], "counts": [], "failed": [],
                                     "seconds": []}
        for i in range(len(batch["shard"])):
            started = time.monotonic()
            name, data, counts, failed = self._shard(
                str(batch["shard"][i]), json.loads(batch["results"][i]),
                json.loads(batch["lengths"][i]), bytes(batch["windows"][i]))
            out["shard"].append(name)
            out["data"].append(data)
            out["counts"].append(json.dumps(counts))
            out["failed"].append(json.dumps(failed))
            seconds = json.loads(batch["seconds"][i])
            seconds["embed"] = time.monotonic() - started
            seconds["model_load"], self.load_seconds = self.load_seconds, 0.0
            out["seconds"].append(json.dumps(seconds))
        return out

    def _shard(self, name: str, rows: list[dict[str, Any]], lengths: list[list[int]],
               raw: bytes) -> tuple[str, bytes, dict[str, int], list[tuple[str, str]]]:
        from clapdesk.core.embed.auto_tags import auto_tags
        from clapdesk.core.index.indexer import BATCH_WINDOWS, NOT_FINITE

        flat = np.frombuffer(raw, np.float32)
        windows, at = [], 0
        for sizes in lengths:
            for size in sizes:
                windows.append(flat[at:at + size])
                at += size
        # As the indexer's _flush: the encoder in calls of exactly BATCH_WINDOWS windows (a
        # file's windows may straddle two calls), one feature per file, the mean of its rows.
        feature_rows: list[np.ndarray] = []
        for start in range(0, len(windows), BATCH_WINDOWS):
            feature_rows.extend(self.embedder.features_for(windows[start:start + BATCH_WINDOWS]))
        pooled, used = [], 0
        for sizes in lengths:
            pooled.append(np.mean(feature_rows[used:used + len(sizes)], axis=0))
            used += len(sizes)
        embedded = [r for r in rows if r["status"] == EMBEDDED]
        if pooled:
            feats = np.stack(pooled).astype(np.float32)
            vectors = self.embedder.project_audio(feats)
            suggestions = auto_tags(vectors, self.vocabulary)
        else:
            feats = np.zeros((0, self.embedder.feature_dim), np.float32)
            vectors = np.zeros((0, self.embedder.dim), np.float32)
            suggestions = []
        keep = []
        for row, feat, vector, tags in zip(embedded, feats, vectors, suggestions):
            if np.isfinite(feat).all() and np.isfinite(vector).all():
                row["auto_tags"] = [[t, float(s)] for t, s in tags]
                keep.append(True)
            else:  # never a NaN vector into anyone's library
                row.update(status=FAILED, error=NOT_FINITE, transient=False)
                keep.append(False)
        mask = np.array(keep, bool)
        data = shards.shard_bytes(rows, feats[mask] if len(mask) else feats,
                                  vectors[mask] if len(mask) else vectors, self.manifest)
        if any(r.get("transient") for r in rows):
            # A share that dropped mid-run: written for what it holds, but not finished, so
            # the next run does it again (and replaces this one).
            name = name.replace(".parquet", "-retry.parquet")
        counts = {s: sum(r["status"] == s for r in rows) for s in (EMBEDDED, FAILED, KNOWN_CONTENT)}
        failed = [(r["path"], r["error"]) for r in rows if r["status"] == FAILED]
        return name, data, counts, failed


class _Write:
    """Stage 3, a Ray task per shard: the shard into place, whole, and its older versions out."""

    def __init__(self, out: str) -> None:
        self.out = out

    def __call__(self, row: dict[str, Any]) -> dict[str, Any]:
        started = time.monotonic()
        fs, folder = shards.open_folder(self.out)
        name = str(row["shard"])
        shards.write_atomic(fs, folder, name, bytes(row["data"]))
        for old in shards.superseded(shards.shard_names(fs, folder), name):
            fs.rm_file(f"{folder}/{old}")
        seconds = json.loads(row["seconds"])
        seconds["write"] = time.monotonic() - started
        return {"shard": name, "counts": row["counts"], "failed": row["failed"],
                "seconds": json.dumps(seconds)}
