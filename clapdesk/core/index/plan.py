"""Planning an indexing run: what the catalog already has against what the folders hold now."""

from __future__ import annotations

import os
from collections.abc import Callable

from clapdesk.core.index.decode_queue import Job
from clapdesk.core.index.report import IndexReport, Progress
from clapdesk.core.ingest.scan import under, walk_audio
from clapdesk.core.store import retries
from clapdesk.core.store.catalog import Catalog


def adds_folders(catalog: Catalog, folders: list[str]) -> bool:
    """Some of `folders` is not in the library yet: every file found there is new."""
    known = {os.path.abspath(path) for _, path in catalog.roots()}
    return any(os.path.abspath(folder) not in known for folder in folders)


def plan_run(catalog: Catalog, encoder_key: str, folders: list[str], report: IndexReport,
             notify: Callable[[Progress], None]) -> tuple[list[Job], dict[str, int | None]]:
    """Decide per file: unchanged, changed, new or vanished. Nothing is decoded here.

    Returns the files to decode, and the vanished files' ids by content hash (a file that
    turns up elsewhere with the same content was moved, not added)."""
    jobs: list[Job] = []
    vanished: dict[str, int | None] = {}  # content hash -> file id of a file that went away
    have_features = catalog.feature_file_ids(encoder_key)
    for folder in folders:
        folder = os.path.abspath(folder)
        if not os.path.isdir(folder):
            report.offline_roots.append(folder)
            continue
        root_id = catalog.add_root(folder)
        known = catalog.file_stamps(root_id)
        retry = retries.failed_stamps(catalog, root_id)
        scan = walk_audio(folder)
        if known and not scan.found and not scan.not_files:
            # Every file gone at once is far more often a drive not mounted (its empty
            # mount point) than a folder emptied on purpose: keep it, as an unplugged
            # drive is kept. Removing the folder from the library is the way to drop it.
            report.offline_roots.append(folder)
            report.unchanged += len(known)
            continue
        notify(Progress("scanning", 0, len(scan.found), folder))
        # Link loops, pipes and unreadable folders are listed each run; they have no row.
        report.failed.extend(scan.not_files)
        report.failed.extend((path, f"folder cannot be read: {why}")
                             for path, why in scan.unreadable_folders)
        for path in [p for p in known if any(under(p, f) for f, _ in scan.unreadable_folders)]:
            # Not seen is not gone: a folder that cannot be read now (permissions, a share
            # that dropped) keeps its files, as an unplugged drive does.
            known.pop(path)
            report.unchanged += 1
        for found in scan.found:
            stamp = known.pop(found.path, None)
            if stamp is None:
                jobs.append(Job(found, root_id, None))
                continue
            file_id, size, mtime_ns, _digest, failed = stamp
            unchanged = size == found.size and mtime_ns == found.mtime_ns
            if unchanged and failed:
                ctime_ns, passing = retry.get(found.path, (None, False))
                unchanged = not passing and ctime_ns in (None, found.ctime_ns)
            if unchanged and (failed or file_id in have_features):
                report.unchanged += 1
            else:
                good = not failed and file_id in have_features
                jobs.append(Job(found, root_id, file_id, good_row=good))
        for file_id, _size, _mtime, digest, _failed in known.values():
            vanished.setdefault(digest or f"lost:{file_id}", file_id)
            if digest and vanished[digest] != file_id:
                vanished[f"lost:{file_id}"] = file_id
    return jobs, vanished
