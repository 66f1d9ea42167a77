"""The indexer's files in flight: what it knows of each file, and how a decoder that crashed
or hung is recovered from without losing the files queued behind it."""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

from clapdesk.core.index import decoding
from clapdesk.core.index.decoding import BrokenProcessPool, DecodePool, DecodeRequest, DecodeResult
from clapdesk.core.ingest import audio
from clapdesk.core.ingest.scan import FoundFile
from clapdesk.core.store.catalog import display_path

log = logging.getLogger("clapdesk.core.index.indexer")


@dataclass
class Job:
    found: FoundFile
    root_id: int
    file_id: int | None  # the existing row when a known file changed or needs re-embedding
    good_row: bool = False  # that row is indexed: a failure that passes must not replace it
    placeholder: int | None = None  # a new file's row from its name and header (first_catalogue)
    settled: bool = False  # its real row (or its failure) is written


@dataclass
class Decoded:
    job: Job
    digest: str | None = None
    decoded: audio.DecodedAudio | None = None
    analysis: dict[str, object] = field(default_factory=dict)
    moved_from: int | None = None
    error: str | None = None
    transient: bool = False


Pending = deque[tuple[Job, Future[DecodeResult]]]
Submit = Callable[[Job], Future[DecodeResult]]


def request(job: Job, rate: int, skip: frozenset[str] = frozenset(),
            idle: bool = True) -> DecodeRequest:
    found = job.found
    return DecodeRequest(found.path, found.size, found.mtime_ns, rate, skip,
                         audio.decode_memory_mb(), idle=idle)


def failed(job: Job, error: str, transient: bool = False,
           result: DecodeResult | None = None) -> Future[DecodeResult]:
    """A finished future: `result` as it is, or else a failure of the job's file."""
    found = job.found
    outcome: Future[DecodeResult] = Future()
    outcome.set_result(result or DecodeResult(found.path, found.size, found.mtime_ns,
                                              error=error, transient=transient))
    return outcome


def succeeded(future: Future[DecodeResult]) -> bool:
    """Finished with a result (not cancelled, not broken by a crashed decoder)."""
    return future.done() and not future.cancelled() and future.exception() is None


def ready_windows(pending: Pending) -> int:
    """Decoded windows already waiting in finished results."""
    ready = 0
    for _job, future in pending:
        if succeeded(future):
            decoded = future.result().decoded
            ready += len(decoded.windows) if decoded is not None else 0
    return ready


def received(job: Job, result: DecodeResult) -> Decoded:
    """A decoder's result as the indexer's record, with the worker's log lines logged here."""
    for level, message in result.notes:
        log.log(level, "%s", message)
    found = job.found
    if (result.size, result.mtime_ns, result.ctime_ns) != (found.size, found.mtime_ns,
                                                           found.ctime_ns) and result.ctime_ns:
        job.found = FoundFile(found.path, result.size, result.mtime_ns, result.ctime_ns)
    return Decoded(job, digest=result.digest, decoded=result.decoded,
                   analysis=result.analysis, error=result.error, transient=result.transient)


def end_stuck(pending: Pending, pool: DecodePool, submit: Submit, limit: float) -> Pending:
    """The first file in line took longer than the time limit: it fails with that reason,
    the decoders are ended (a stuck one cannot be told apart from the others) and replaced,
    and the files behind it are decoded again; those already decoded keep their results."""
    job, _ = pending.popleft()
    log.warning("%s took longer than %g s to decode: its decoder was ended",
                display_path(job.found.path), limit)
    pool.kill()
    redone: Pending = deque([(job, failed(job, decoding.too_slow(limit), transient=True))])
    for other, future in pending:
        redone.append((other, future if succeeded(future) else submit(other)))
    return redone


def isolate_crash(pending: Pending, pool: DecodePool, submit: Submit) -> Pending:
    """A decoder process died (a library crashed on some file): find which file, go on.

    Every file still in flight failed with it, and any of them may be the culprit. Each
    is decoded again alone in fresh processes: one that kills its process alone is
    recorded as failed, the others are indexed as usual. Files already decoded keep their
    results. Returns the results, in the same order.
    """
    redone: Pending = deque()
    pool.restart()
    for job, future in pending:
        if succeeded(future):
            redone.append((job, future))
            continue
        limit = decoding.decode_seconds()
        try:
            outcome = failed(job, "", result=submit(job).result(limit))
        except BrokenProcessPool:
            log.warning("a decoder crashed on %s", display_path(job.found.path))
            outcome = failed(job, decoding.CRASHED)
            pool.restart()
        except FutureTimeout:
            outcome = failed(job, decoding.too_slow(limit), transient=True)
            pool.kill()
        redone.append((job, outcome))
    return redone
