"""Observation hooks for the clapdesk process a reliability test starts.

Python imports `sitecustomize` at start-up when this folder is on PYTHONPATH, so the tests can
run the real `python -m clapdesk` and still see inside it. The hooks go into that process only:
installing them takes their settings out of the environment, and this folder out of PYTHONPATH,
so the decoder processes clapdesk starts run exactly as they would for a user (no hook imports
numpy or torch in them before they set their thread counts). A hook whose target has been renamed
stops the process at once with a message naming it, instead of silently observing nothing; with
CLAPDESK_TEST_HOOKS_FIRED=FILE, every installed hook and every hook call appends "NAME PID" there.

Each hook is off unless its environment variable is set:

- CLAPDESK_TEST_EMBED_LOG=FILE: every call that may hand windows to the model appends one JSON
  line with the paths of the files waiting for it (a superset of those embedded), written
  before the model runs, so a SIGKILL cannot hide an embedding.
- CLAPDESK_TEST_PAUSE_IN_SAVE=FILE: the index save stops for a minute right after the index file
  was replaced and before its sidecar is, and creates FILE to say so: the test kills it there.
  With CLAPDESK_TEST_RESUME=FILE2 too, it goes on as soon as FILE2 exists.
- CLAPDESK_TEST_PEAK_FILE=FILE: at exit, the process writes its peak resident memory in KiB
  (VmHWM of its own address space; getrusage would include the parent's from before exec).
- CLAPDESK_TEST_PAUSE_AT=POINT:FILE stops a fine-tune at POINT for a minute, creating FILE:
  "training" (model loaded, training under way), "version-saved" (its folder is in place, its
  vectors not yet written) or "before-activate" (vectors committed, the version not active).
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any

SETTINGS = ("CLAPDESK_TEST_EMBED_LOG", "CLAPDESK_TEST_PAUSE_IN_SAVE", "CLAPDESK_TEST_RESUME",
            "CLAPDESK_TEST_PEAK_FILE", "CLAPDESK_TEST_PAUSE_AT", "CLAPDESK_TEST_HOOKS_FIRED")


class HookTargetMissing(Exception):
    """A hook's target is not where the hook looks for it (renamed or moved)."""


def patch(owner: Any, name: str, make: Any, hook: str) -> None:
    """Replace `owner.name` with `make(original)`; raise when there is no such attribute."""
    original = getattr(owner, name, None)
    if original is None:
        raise HookTargetMissing(f"test hook {hook}: {getattr(owner, '__name__', owner)}.{name} "
                                "does not exist any more; update tests/reliability/hooks")
    setattr(owner, name, make(original))


def _fired(hook: str) -> None:
    if _FIRED:
        with open(_FIRED, "a") as out:
            out.write(f"{hook} {os.getpid()}\n")


def _take_settings() -> dict[str, str]:
    """This process's hook settings, removed from the environment its children inherit."""
    taken = {name: os.environ.pop(name) for name in SETTINGS if name in os.environ}
    here = os.path.dirname(os.path.abspath(__file__))
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
            if p and os.path.abspath(p) != here]
    if kept:
        os.environ["PYTHONPATH"] = os.pathsep.join(kept)
    else:
        os.environ.pop("PYTHONPATH", None)
    return taken


_SETTINGS = _take_settings()
_FIRED = _SETTINGS.get("CLAPDESK_TEST_HOOKS_FIRED")


def _embed_log(path: str) -> None:
    from clapdesk.core.index import indexer

    def make(original: Any) -> Any:
        def logged_flush(self, batch, *args, **kwargs):  # type: ignore[no-untyped-def]
            _fired("embed-log")
            paths = [d.job.found.path for d in batch if d.decoded is not None]
            if paths:
                with open(path, "a", encoding="utf-8", errors="surrogateescape") as log:
                    log.write(json.dumps({"pid": os.getpid(), "paths": paths}) + "\n")
            return original(self, batch, *args, **kwargs)
        return logged_flush

    patch(indexer.Indexer, "_flush", make, "embed-log")


def _pause_in_save(mark_path: str, resume: str | None) -> None:
    from clapdesk.core.store import vector_index

    real_replace = os.replace

    class PausingOs:
        """Stands in for `os` inside vector_index: pauses after the first replace of a save."""

        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        @staticmethod
        def replace(src, dst):  # type: ignore[no-untyped-def]
            real_replace(src, dst)
            if str(dst).endswith(".hnsw"):
                _fired("pause-in-save")
                with open(mark_path, "w") as mark:
                    mark.write(str(os.getpid()))
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline and not (resume and os.path.exists(resume)):
                    time.sleep(0.05)

    patch(vector_index, "os", lambda _os: PausingOs(), "pause-in-save")


def _peak_file(path: str) -> None:
    import atexit

    def write_peak() -> None:
        _fired("peak-file")
        with open("/proc/self/status") as status:
            peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
        with open(path, "w") as out:
            out.write(peak)

    atexit.register(write_peak)


def _pause_at(setting: str) -> None:
    point, _, mark_path = setting.partition(":")

    def pause() -> None:
        _fired(f"pause-at-{point}")
        with open(mark_path, "w") as mark:
            mark.write(str(os.getpid()))
        time.sleep(60)

    def before(original: Any) -> Any:
        def paused(*args, **kwargs):  # type: ignore[no-untyped-def]
            pause()
            return original(*args, **kwargs)
        return paused

    def after(original: Any) -> Any:
        def paused(*args, **kwargs):  # type: ignore[no-untyped-def]
            done = original(*args, **kwargs)
            pause()
            return done
        return paused

    if point == "training":
        from clapdesk.core.finetune import training

        patch(training, "_train_loop", before, "pause-at-training")
    elif point == "version-saved":
        from clapdesk.core.finetune import versions

        patch(versions, "save_version", after, "pause-at-version-saved")
    elif point == "before-activate":
        from clapdesk.core import library

        patch(library.Library, "set_active_version", before, "pause-at-before-activate")
    else:
        raise HookTargetMissing(f"test hook pause-at: no pause point named {point!r}")


def _install() -> None:
    if "CLAPDESK_TEST_EMBED_LOG" in _SETTINGS:
        _embed_log(_SETTINGS["CLAPDESK_TEST_EMBED_LOG"])
    if "CLAPDESK_TEST_PAUSE_IN_SAVE" in _SETTINGS:
        _pause_in_save(_SETTINGS["CLAPDESK_TEST_PAUSE_IN_SAVE"], _SETTINGS.get("CLAPDESK_TEST_RESUME"))
    if "CLAPDESK_TEST_PEAK_FILE" in _SETTINGS:
        _peak_file(_SETTINGS["CLAPDESK_TEST_PEAK_FILE"])
    if "CLAPDESK_TEST_PAUSE_AT" in _SETTINGS:
        _pause_at(_SETTINGS["CLAPDESK_TEST_PAUSE_AT"])
    _fired("installed")


try:
    _install()
except HookTargetMissing as exc:
    # An exception here would only be printed by site.py, and the run would go on unobserved.
    sys.stderr.write(f"{exc}\n")
    sys.stderr.flush()
    os._exit(97)
