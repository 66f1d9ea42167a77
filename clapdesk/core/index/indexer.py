"""Indexing: scan folders, decode ahead in worker processes, embed in batches, commit as we go.

Decoding, resampling and analysis run in decoder processes (see decoding) a bounded number of
files ahead of the model, which runs in the calling thread in batches. Every batch is committed
to the catalog before the next starts, so a crash or a cancel loses at most one batch and a new run resumes
where the last one stopped (unchanged files are skipped by size and mtime, without decoding).

The first minutes of a first run: the model loads on its own thread (model_loader) while new
files are catalogued from their names and headers (first_catalogue: searchable at once, marked
not yet listened to) and the decoders fill the read-ahead; the time left comes from what the
model and the rest of the pipeline cost per window and per file (eta).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout

import numpy as np

from clapdesk.core.embed.auto_tags import AUTO_TAG_VOCABULARY, auto_tags
from clapdesk.core.embed.embedder import ClapEmbedder
from clapdesk.core.index import decoding
from clapdesk.core.index.decode_queue import Decoded as _Decoded
from clapdesk.core.index.decode_queue import Job as _Job
from clapdesk.core.index.decode_queue import Pending, end_stuck, isolate_crash, received, request
from clapdesk.core.index.decode_queue import ready_windows as _ready_windows
from clapdesk.core.index.decoding import BrokenProcessPool, DecodePool, DecodeResult
from clapdesk.core.index.device_plan import CPU_BATCH_WINDOWS
from clapdesk.core.index.eta import TimeLeft, log_estimates
from clapdesk.core.index.file_rows import FileRows
from clapdesk.core.index.first_catalogue import FirstCatalogue
from clapdesk.core.index.model_loader import BackgroundLoad, Timeline
from clapdesk.core.index.plan import adds_folders, plan_run
from clapdesk.core.index.precision_trial import AutoPrecision, PrecisionTrial, pick_sample
from clapdesk.core.index.report import IndexReport, Progress
from clapdesk.core.ingest.scan import FoundFile
from clapdesk.core.store import missing
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.vector_index import VectorIndex

__all__ = ["FoundFile", "IndexReport", "Indexer", "Progress"]
_received = received  # the name older callers use

# Windows per model call. Every call gets exactly this many (a file's windows may straddle two
# calls); device_plan says why four on a CPU, and sizes a GPU's batches.
BATCH_WINDOWS = CPU_BATCH_WINDOWS
# How far decoding runs ahead of the model. The decoders run at idle priority, mostly in the
# model's pauses, and a run of long files (each several windows and a 30 s analysis) can take
# longer to decode than the model takes to embed the short files queued before it. On the
# bench_index library, eight files ahead left the model waiting 0.06-0.16 s per run, in the
# stretch of long files; this read-ahead 0.02-0.12 s (four paired runs each). Memory is
# bounded by windows, not files: at most READY_WINDOWS decoded windows (about 2 MB each) wait.
AHEAD_FILES = 32
READY_WINDOWS = 24
INDEX_SAVE_SECONDS = 60.0
NOT_FINITE = "the model gave no usable vector for this file (NaN or infinite numbers)"


ProgressCallback = Callable[[Progress], None]


class Indexer:
    """One indexing run over some library folders."""

    def __init__(self, catalog: Catalog, index: VectorIndex, embedder: Callable[[], ClapEmbedder],
                 workers: int | None = None, decoders: DecodePool | None = None,
                 model_rate: Callable[[], int] | None = None,
                 batch_windows: int | None = None, auto: AutoPrecision | None = None) -> None:
        self.catalog = catalog
        # The automatic precision, still to choose: made on this run's first files.
        self.auto = auto
        self._trial: PrecisionTrial | None = None
        self._sample: list[str] = []  # the trial's files, once the run's folders are scanned
        self.index = index
        self.get_embedder = embedder
        # The model's sampling rate without loading it: decoding starts while it loads.
        self.model_rate = model_rate
        # None: from the device once the model is on it (device_plan: 4 on a CPU, more on a GPU).
        self._fixed_batch = batch_windows
        self.batch_windows = max(1, batch_windows or BATCH_WINDOWS)
        self._own_pool = decoders is None and workers is None
        self.decoders = decoders or decoding.shared_pool(workers)
        self.workers = self.decoders.workers
        self._vocabulary: np.ndarray | None = None
        # Files whose identical twin waits in the unflushed batch: copied once it is embedded.
        self._twins_waiting: list[_Decoded] = []
        # Features of the leading windows of the queued files, embedded but not yet committed,
        # and beside each, the precision trial's features of it (None outside the trial).
        self._rows: list[np.ndarray] = []
        self._trial_rows: list[dict[str, np.ndarray] | None] = []
        self.rows = FileRows(catalog, index)  # each file's catalog row, written when it is indexed
        self.timeline = Timeline()
        self._model_running = False
        self.time_left = TimeLeft()
        self.eta_history: list[tuple[float, float | None]] = []  # (when, seconds left said)

    def run(self, folders: list[str], progress: ProgressCallback | None = None,
            cancel: threading.Event | None = None, purge_missing: bool = False) -> IndexReport:
        started = time.monotonic()
        report = IndexReport()
        cancel = cancel or threading.Event()
        notify = progress or (lambda p: None)
        notify(Progress("scanning"))
        self.decoders.warm()  # the decoder processes start while the folders are scanned
        loader: BackgroundLoad[ClapEmbedder] | None = None
        try:
            if adds_folders(self.catalog, folders):
                # A folder new to the library will want the model: it loads while the folder is
                # scanned and its names catalogued, not after the scan.
                loader = BackgroundLoad(self.get_embedder, self.timeline).start()
            jobs, vanished = plan_run(self.catalog, self.index.model_key.encoder, folders,
                                      report, notify)
            self.timeline.mark("scanned", str(len(jobs)))
            self._sample = (pick_sample([job.found.path for job in jobs])
                            if self.auto is not None else [])
            if self._sample:  # the precision trial's files go first (precision_trial.py)
                chosen = set(self._sample)
                jobs = ([job for job in jobs if job.found.path in chosen]
                        + [job for job in jobs if job.found.path not in chosen])
            needs_model = bool(jobs) or bool(self.catalog.files_missing_vectors(self.index.model_key))
            if needs_model:
                notify(Progress("loading model", total=len(jobs)))
                if loader is None:
                    loader = BackgroundLoad(self.get_embedder, self.timeline).start()
            if jobs and loader is not None:
                self._embed_all(jobs, vanished, loader, report, notify, cancel)
            elif needs_model and loader is not None:
                report.reprojected = self._reproject(loader.result())
        finally:
            if loader is not None:
                loader.wait(None)  # a cancelled run still lets the load finish: no thread outlives it
        # Files still unaccounted for are gone from disk (a rename was matched above).
        if not report.cancelled:
            gone = [file_id for file_id in vanished.values() if file_id is not None]
            # Hidden, not forgotten: their own tags and favourites wait for them to come back.
            missing.forget(self.catalog, gone)
            self.index.remove(set(gone))
            report.removed = len(gone)
            report.purged = missing.purge(
                self.catalog, None if purge_missing else missing.PURGE_AFTER_DAYS)
        notify(Progress("saving"))
        self.index.save()
        report.seconds = time.monotonic() - started
        log_estimates(self.eta_history, time.monotonic(), started)
        notify(Progress("done", report.indexed, report.indexed))
        return report

    def _reproject(self, embedder: ClapEmbedder) -> int:
        """Files with stored features but no vector for the active head: no decoding needed."""
        missing = self.catalog.files_missing_vectors(embedder.model_key)
        ids, feats = self.catalog.features(embedder.encoder_key, missing)
        if not len(ids):
            return 0
        vectors = embedder.project_audio(feats)
        with self.catalog.transaction():
            for file_id, vector in zip(ids, vectors):
                self.catalog.put_vector(int(file_id), embedder.model_key, vector)
        self.index.add(ids, vectors)
        return len(ids)

    # -- the pipeline ----------------------------------------------------------------------------
    def _embed_all(self, jobs: list[_Job], vanished: dict[str, int | None],
                   loader: BackgroundLoad[ClapEmbedder], report: IndexReport,
                   notify: ProgressCallback, cancel: threading.Event) -> None:
        embedder: ClapEmbedder | None = None
        if self.model_rate is None:  # no way to know the rate before the model: the old order
            embedder = self._model_ready(loader, report)
            rate = embedder.sampling_rate
        else:
            rate = self.model_rate()
        vanished_hashes = frozenset(h for h in vanished if not h.startswith("lost:"))
        pending: Pending = deque()
        batch: list[_Decoded] = []
        first = FirstCatalogue(self.catalog, jobs, self.rows.root_path)
        timer = self.time_left
        for job in jobs:
            timer.expect(id(job), None, job.found.size, job.found.path)
        if embedder is not None:
            timer.start(time.monotonic())
        embedded_from = time.monotonic()
        done = heard = 0
        last_save = time.monotonic()
        queue = iter(jobs)
        limit = decoding.decode_seconds()
        head: Future[DecodeResult] | None = None
        clock = decoding.DecodeClock(self.decoders)
        try:
            while True:
                while (len(pending) < max(AHEAD_FILES, self._ready_limit())
                       and _ready_windows(pending) < self._ready_limit()
                       and not cancel.is_set()):
                    job = next(queue, None)
                    if job is None:
                        break
                    pending.append((job, self._submit(job, rate, vanished_hashes)))
                if embedder is None:
                    # The model loads on its own thread: meanwhile new files are catalogued
                    # (searchable by name at once) and the decoders fill the read-ahead.
                    if not first.finished:
                        self._catalogue_step(first)
                    elif not loader.wait(0.25) and not cancel.is_set():
                        notify(Progress("loading model", 0, len(jobs), not_heard=first.written))
                        continue
                    if not loader.ready:
                        notify(Progress("loading model", 0, len(jobs), not_heard=first.written))
                        if cancel.is_set():
                            report.cancelled = True
                            break
                        continue
                    embedder = self._model_ready(loader, report)
                    if embedder.sampling_rate != rate:  # the folder's file said another rate
                        rate = embedder.sampling_rate
                        pending = deque((job, self._resubmit(f, job, rate, vanished_hashes))
                                        for job, f in pending)
                    clock = decoding.DecodeClock(self.decoders)  # the pool may be a new one
                    timer.start(time.monotonic())
                    embedded_from = time.monotonic()
                elif not first.finished:
                    self._catalogue_step(first)
                if self._vocabulary is None:
                    # The auto-tag prompts go through the text tower while the first files
                    # decode, instead of stalling the first batch after they have.
                    self._vocabulary = _vocabulary_vectors(embedder)
                if not pending:
                    break
                job, future = pending[0]
                if future is not head:
                    # Files decode in order, so the first in line is decoding by now at the
                    # latest: its time limit counts from here.
                    head = future
                    clock.reset()
                try:
                    result = future.result(timeout=0.25)
                except BrokenProcessPool:
                    pending = isolate_crash(pending, self.decoders,
                                            lambda j, r=rate: self._submit(j, r, vanished_hashes))
                    continue
                except FutureTimeout:
                    if clock.advance() > limit:
                        pending = end_stuck(pending, self.decoders,
                                            lambda j, r=rate: self._submit(j, r, vanished_hashes),
                                            limit)
                    continue
                pending.popleft()
                item = received(job, result)
                self.timeline.mark("decoded", job.found.path, result.finished_at or None)
                report.decoded += item.decoded is not None or item.error is not None
                if item.moved_from is None and item.digest in vanished_hashes:
                    item.moved_from = vanished.get(item.digest)
                if self._settle(item, vanished, embedder, report, batch):
                    self._flush(batch, embedder, report)
                now = time.monotonic()
                done += 1
                heard += job.placeholder is not None
                decoded = item.decoded
                timer.file_done(id(job), len(decoded.windows) if decoded else 0, now,
                                decoded.info.duration if decoded else None)
                trying = self._trial.names if self._trial is not None and self._trial.open else ()
                # While comparing, a range: from the fastest candidate's pace to float32's.
                eta_low, eta = self._trial.time_left(timer) if trying else (None, timer.eta())
                self.eta_history.append((now, None if trying else eta))
                rate_now = done / (now - embedded_from) if now > embedded_from else 0.0
                notify(Progress("embedding", done, len(jobs), item.job.found.path, rate_now, eta,
                                eta_low, not_heard=max(0, first.written - heard),
                                comparing=trying))
                if cancel.is_set():
                    report.cancelled = True
                    break
                if time.monotonic() - last_save > INDEX_SAVE_SECONDS:
                    self.index.save()
                    last_save = time.monotonic()
        except BaseException:
            if embedder is None:  # the model failed to load: no trace of this run is left
                first.undo()
            raise
        finally:
            for _job, future in pending:
                future.cancel()
            if batch and embedder is not None:
                self._flush(batch, embedder, report, final=True)
            if (embedder is not None and self._trial is not None and self._trial.open
                    and not report.cancelled):
                self._choose(embedder)  # a sample file went unaccounted: decide on the rest

    def _model_ready(self, loader: BackgroundLoad[ClapEmbedder], report: IndexReport) -> ClapEmbedder:
        embedder = loader.result()  # a model that failed to load raises its ModelError here
        self._model_running = True  # decoders go to idle priority from the next file on
        if self._fixed_batch is None and embedder.device != "cpu":
            from clapdesk.core.index.device_plan import plan_for

            chosen = plan_for(embedder)  # a GPU: larger batches, every core decoding
            self.batch_windows = chosen.batch_windows
            self.timeline.mark("device plan", chosen.why)
            if self._own_pool and chosen.decoders > self.decoders.workers:
                # Files in flight finish in the old pool; the next ones go to the larger one.
                self.decoders = decoding.shared_pool(chosen.decoders)
        report.reprojected = self._reproject(embedder)
        if self.auto is not None and self._sample:
            self._prepare_trial(embedder)
        return embedder

    def _prepare_trial(self, embedder: ClapEmbedder) -> None:
        """The precision trial on this run's sample (its candidate towers are built after the
        first files are committed: PrecisionTrial.catch_up)."""
        assert self.auto is not None
        outcome = self.auto.prepare(embedder)
        if isinstance(outcome, PrecisionTrial):
            outcome.sample = set(self._sample)
            self._trial = outcome
            self.timeline.mark("precision trial", ",".join(outcome.names))
        elif outcome is not None:  # nothing to compare here: the reason is the choice
            self.auto.chosen(outcome)

    def _choose(self, embedder: ClapEmbedder) -> None:
        """The trial's sample is in: take the precision it chose for the rest of the run."""
        assert self._trial is not None and self.auto is not None
        choice = self._trial.decide(embedder)
        if choice is None:  # too few sample files embedded to tell: float32, decided later
            self.timeline.mark("precision undecided")
            return
        if choice.precision != "float32":
            embedder.use_audio_tower(choice.precision, choice.tower)  # type: ignore[attr-defined]
            self.time_left.model_changed(self._trial.seconds_per_window(choice.precision),
                                         time.monotonic())
        self.timeline.mark("precision chosen", choice.precision)
        self.auto.chosen(choice)

    def _trial_lost(self, path: str) -> None:
        if self._trial is not None:
            self._trial.lost(path)

    def _catalogue_step(self, first: FirstCatalogue) -> None:
        first.step()
        for job in first.last_chunk:
            self.time_left.know_length(id(job), first.durations.get(id(job)))
        self.timeline.mark("catalogued", str(first.written))

    def _ready_limit(self) -> int:
        # At least two model calls' worth waits decoded, so a GPU's large batches never wait.
        return max(READY_WINDOWS, 2 * self.batch_windows)

    def _resubmit(self, future: Future[DecodeResult], job: _Job, rate: int,
                  skip: frozenset[str]) -> Future[DecodeResult]:
        future.cancel()
        return self._submit(job, rate, skip)

    def _submit(self, job: _Job, rate: int, skip: frozenset[str]) -> Future[DecodeResult]:
        future = self.decoders.submit(decoding.decode_file,
                                      request(job, rate, skip, idle=self._model_running))
        # The decoders' own pace is one phase of the time left (eta.TimeLeft.decode_bound).
        future.add_done_callback(lambda _f: self.time_left.file_decoded(time.monotonic()))
        return future

    def _settle(self, item: _Decoded, vanished: dict[str, int | None], embedder: ClapEmbedder,
                report: IndexReport, batch: list[_Decoded]) -> bool:
        """Record a failure, a move or a duplicate at once; queue the rest for the model."""
        found = item.job.found
        if item.error is not None or item.moved_from is not None:
            self._trial_lost(found.path)  # the trial compares only files it embeds
        if item.error is not None:
            item.job.settled = True
            report.failed.append((found.path, item.error))
            if item.transient and item.job.good_row:
                # A share that dropped mid-run says nothing about the file: its indexed row
                # stays searchable, with the stamps it was indexed at, so the next run that
                # sees the file changed reads it again.
                return False
            with self.catalog.transaction():
                self.catalog.upsert_file(found.path, item.job.root_id, found.size, found.mtime_ns,
                                         item.digest, error=item.error, ctime_ns=found.ctime_ns,
                                         error_transient=int(item.transient))
            return False
        if item.moved_from is not None and item.digest is not None:
            vanished[item.digest] = None  # claimed: the old path is this file, renamed
            item.job.settled = True
            own = item.job.file_id if item.job.file_id is not None else item.job.placeholder
            if own is not None and own != item.moved_from:  # its row, or its name-only row
                self.catalog.delete_files([own])
                self.index.remove({own})
            self.catalog.move_file(item.moved_from, found.path, item.job.root_id, found.mtime_ns)
            report.moved += 1
            return False
        twins = self.catalog.files_with_hash(item.digest, embedder.encoder_key) if item.digest else []
        twins = [t for t in twins if t != item.job.file_id]
        if twins:
            self._trial_lost(found.path)
            self.rows.copy_twin(item, twins[0], embedder)
            report.duplicates += 1
            report.indexed += 1
            return False
        if item.digest is not None and any(d.digest == item.digest for d in batch):
            self._trial_lost(found.path)
            self._twins_waiting.append(item)
            return False
        if item.decoded is None:
            # Its content matched a vanished file that another path has claimed: decode it now.
            item = received(item.job, decoding.decode_file(request(item.job, embedder.sampling_rate)))
            if item.error is not None:
                return self._settle(item, vanished, embedder, report, batch)
        batch.append(item)
        return True

    def _flush(self, batch: list[_Decoded], embedder: ClapEmbedder, report: IndexReport,
               final: bool = False) -> None:
        """Embed queued windows exactly batch_windows at a time (the rest too when `final`),
        then commit every file whose windows are all embedded, in one transaction."""
        windows = [w for d in batch if d.decoded is not None for w in d.decoded.windows]
        todo = windows[len(self._rows):]
        size = self.batch_windows
        trial = self._trial if self._trial is not None and self._trial.open else None
        while len(todo) >= size or (final and todo):
            chunk, todo = todo[:size], todo[size:]
            began = time.monotonic()
            if trial is not None:  # float32 now, the candidates once the files are in
                call = trial.embed(embedder, chunk)
                self._rows.extend(call.features)
                self._trial_rows.extend(call.candidates)
                model_seconds = call.float32_seconds
            else:
                self._rows.extend(embedder.features_for(chunk))
                self._trial_rows.extend([None] * len(chunk))
                model_seconds = time.monotonic() - began
            self.time_left.model_call(len(chunk), model_seconds, time.monotonic())
        items, pooled, trial_rows, used, taken = [], [], [], 0, 0
        for d in batch:
            count = len(d.decoded.windows) if d.decoded is not None else 0
            if used + count > len(self._rows):
                break  # this file's last windows go with the next call
            if count:  # one feature per file: the mean over its windows
                items.append(d)
                pooled.append(np.mean(self._rows[used:used + count], axis=0))
                trial_rows.append(self._trial_rows[used:used + count])
            else:
                self._trial_lost(d.job.found.path)
            used += count
            taken += 1
        del batch[:taken]
        del self._rows[:used]
        del self._trial_rows[:used]
        if not items:
            return
        feats = np.stack(pooled).astype(np.float32)
        vectors = embedder.project_audio(feats)
        if self._vocabulary is None:
            self._vocabulary = _vocabulary_vectors(embedder)
        suggestions = auto_tags(vectors, self._vocabulary)
        ids, kept, compared = [], [], []
        with self.catalog.transaction():
            for item, feat, vector, tags, rows in zip(items, feats, vectors, suggestions,
                                                      trial_rows):
                if not (np.isfinite(feat).all() and np.isfinite(vector).all()):
                    self._trial_lost(item.job.found.path)
                    # A NaN vector would score NaN against every query and break the ANN
                    # graph for everyone: the file fails instead, with the reason.
                    found = item.job.found
                    item.job.settled = True
                    self.catalog.upsert_file(found.path, item.job.root_id, found.size,
                                             found.mtime_ns, item.digest, error=NOT_FINITE,
                                             ctime_ns=found.ctime_ns, error_transient=0)
                    report.failed.append((found.path, NOT_FINITE))
                    continue
                file_id = self.rows.write(item)
                self.catalog.put_feature(file_id, embedder.encoder_key, feat)
                self.catalog.put_vector(file_id, embedder.model_key, vector)
                self.catalog.set_tags(file_id, tags, "auto")
                ids.append(file_id)
                kept.append(vector)
                compared.append((item.job.found.path, feat, rows))
        if ids:
            self.index.add(np.array(ids), np.stack(kept))
        report.indexed += len(ids)
        if self._trial is not None and self._trial.open:
            began = time.monotonic()
            self._trial.catch_up(embedder)
            # The candidates' time is neither float32's per window nor per file.
            self.time_left.aside(time.monotonic() - began)
            for path, feat, rows in compared:
                self._trial.embedded(path, feat, rows)
            if self._trial.complete:
                self._choose(embedder)
        waiting, self._twins_waiting = self._twins_waiting, []
        for item in waiting:
            twins = self.catalog.files_with_hash(item.digest or "", embedder.encoder_key)
            if not twins:  # its twin's windows are not all embedded yet
                self._twins_waiting.append(item)
                continue
            self.rows.copy_twin(item, twins[0], embedder)
            report.duplicates += 1
            report.indexed += 1


def _vocabulary_vectors(embedder: ClapEmbedder) -> np.ndarray:
    return embedder.embed_prompts([f"the sound of {w}" for w in AUTO_TAG_VOCABULARY])


