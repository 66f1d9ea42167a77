"""Observation hooks for clapdesk child processes started by the reliability tests.

Python imports `sitecustomize` at start-up when this folder is on PYTHONPATH, so the tests can
run the real `python -m clapdesk` and still see inside it. Each hook is off unless its
environment variable is set:

- CLAPDESK_TEST_EMBED_LOG=FILE: every call that may hand windows to the model appends one JSON
  line with the paths of the files waiting for it (a superset of those embedded), written
  before the model runs, so a SIGKILL cannot hide an embedding.
- CLAPDESK_TEST_PAUSE_IN_SAVE=FILE: the index save stops for a minute right after the index file
  was replaced and before its sidecar is, and creates FILE to say so: the test kills it there.
  With CLAPDESK_TEST_RESUME=FILE2 too, it goes on as soon as FILE2 exists.
- CLAPDESK_TEST_PEAK_FILE=FILE: at exit, the process writes its peak resident memory in KiB
  (VmHWM of its own address space; getrusage would include the parent's from before exec).
"""

from __future__ import annotations

import json
import os
import time

_EMBED_LOG = os.environ.get("CLAPDESK_TEST_EMBED_LOG")
_PAUSE_MARK = os.environ.get("CLAPDESK_TEST_PAUSE_IN_SAVE")

if _EMBED_LOG:
    from clapdesk.core.index import indexer as _indexer

    _original_flush = _indexer.Indexer._flush

    def _logged_flush(self, batch, *args, **kwargs):  # type: ignore[no-untyped-def]
        paths = [d.job.found.path for d in batch if d.decoded is not None]
        if paths:
            with open(_EMBED_LOG, "a", encoding="utf-8", errors="surrogateescape") as log:
                log.write(json.dumps({"pid": os.getpid(), "paths": paths}) + "\n")
        return _original_flush(self, batch, *args, **kwargs)

    _indexer.Indexer._flush = _logged_flush

if _PAUSE_MARK:
    from clapdesk.core.store import vector_index as _vector_index

    _real_replace = os.replace

    class _PausingOs:
        """Stands in for `os` inside vector_index: pauses after the first replace of a save."""

        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def replace(src, dst):  # type: ignore[no-untyped-def]
            _real_replace(src, dst)
            if str(dst).endswith(".hnsw"):
                with open(_PAUSE_MARK, "w") as mark:
                    mark.write(str(os.getpid()))
                resume = os.environ.get("CLAPDESK_TEST_RESUME")
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not (resume and os.path.exists(resume)):
                    time.sleep(0.05)

    _vector_index.os = _PausingOs()  # type: ignore[assignment]

_PEAK_FILE = os.environ.get("CLAPDESK_TEST_PEAK_FILE")

if _PEAK_FILE:
    import atexit

    def _write_peak() -> None:
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(_PEAK_FILE, "w") as out:
            out.write(peak)

    atexit.register(_write_peak)

# CLAPDESK_TEST_PAUSE_AT=POINT:FILE stops a fine-tune at POINT for a minute, creating FILE:
# "training" (model loaded, training under way), "version-saved" (its folder is in place, its
# vectors not yet written) or "before-activate" (vectors committed, the version not active).
_PAUSE_AT = os.environ.get("CLAPDESK_TEST_PAUSE_AT")

if _PAUSE_AT:
    _point, _, _mark = _PAUSE_AT.partition(":")

    def _pause() -> None:
        with open(_mark, "w") as mark:
            mark.write(str(os.getpid()))
        time.sleep(60)

    if _point == "training":
        from clapdesk.core.finetune import training as _finetune

        _real_loop = _finetune._train_loop

        def _pause_in_training(*args, **kwargs):  # type: ignore[no-untyped-def]
            _pause()
            return _real_loop(*args, **kwargs)

        _finetune._train_loop = _pause_in_training
    elif _point == "version-saved":
        from clapdesk.core.finetune import versions as _versions

        _real_save_version = _versions.save_version

        def _save_then_pause(*args, **kwargs):  # type: ignore[no-untyped-def]
            saved = _real_save_version(*args, **kwargs)
            _pause()
            return saved

        _versions.save_version = _save_then_pause
    elif _point == "before-activate":
        from clapdesk.core import library as _library

        _real_activate = _library.Library.set_active_version

        def _pause_then_activate(self, version):  # type: ignore[no-untyped-def]
            _pause()
            return _real_activate(self, version)

        _library.Library.set_active_version = _pause_then_activate
