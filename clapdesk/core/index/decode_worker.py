"""Start-up of an indexing decoder process. Standard library only at the top of this module.

A decoder process imports this module before anything else of clapdesk's, so what must hold
before numpy loads (one BLAS thread) is set here, and the process lowers its own priority
before it does any work.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

# numpy's BLAS would otherwise start a thread per core in every decoder, each competing with
# the model for the same cores; the work here is one file at a time in any case.
_ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def start() -> None:
    """Initialiser of every decoder process: one BLAS thread, idle priority, imports done."""
    for name in _ONE_THREAD:
        os.environ[name] = "1"
    # Ctrl+C in a terminal reaches the whole process group: the indexer handles it and ends
    # its decoders, which must not each print a traceback of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _capture_stderr()
    exit_with_parent()
    # Below the window, a DAW and the model's load, but not idle yet: while the model loads
    # the cores are not the model's, and at idle priority on a busy machine the first files
    # waited minutes for a core (bench_first_search: none decoded before the model was ready).
    # The first request sent once the model runs makes the process idle (become_idle).
    global _in_decoder_process
    _in_decoder_process = True
    _nice(10)
    # Imported now, while the process starts, not inside the first file's decode: scipy.signal
    # alone takes about half a second.
    import clapdesk.core.analysis.sound  # noqa: F401
    import clapdesk.core.index.decoding  # noqa: F401


_stderr_log: int | None = None
_in_decoder_process = False
_idle = False


def become_idle() -> None:
    """Idle priority from now on, for good (a decoder process only; once is enough)."""
    global _idle
    if _in_decoder_process and not _idle:
        _idle = True
        lower_priority()


def _nice(step: int) -> None:
    try:
        os.nice(step)
    except (AttributeError, OSError):
        pass  # left at normal priority


def _capture_stderr() -> None:
    """Send this process's standard error to a private file that drain_stderr() empties.

    libmpg123 (inside libsndfile) writes notes straight to file descriptor 2 while decoding
    MP3s it decodes fine ("Note: Trying to resync..."); they reached the terminal of every
    successful run. The indexer logs them at debug level instead (clapdesk -v shows them).
    """
    global _stderr_log
    import tempfile

    folder = tempfile.gettempdir()
    name = os.path.join(folder, f"clapdesk-decoder-{os.getpid()}.log")
    try:
        fd = os.open(name, os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o600)
        os.unlink(name)  # nameless: gone when the process ends
        sys.stderr.flush()
        os.dup2(fd, 2)
    except OSError as exc:
        log.debug("standard error of the decoder stays as it is (%s)", exc)
        return
    _stderr_log = fd


def drain_stderr() -> str:
    """What this decoder process wrote to standard error since the last call ("" if nothing)."""
    if _stderr_log is None:
        return ""
    try:
        size = os.fstat(_stderr_log).st_size
        if not size:
            return ""
        text = os.pread(_stderr_log, min(size, 1 << 16), 0).decode("utf-8", "replace")
        os.ftruncate(_stderr_log, 0)
    except OSError:
        return ""
    return text


def exit_with_parent() -> None:
    """End this process when the app that started it ends, however it ends (the render helpers
    of audition/render.py start with it too).

    A decoder waits for work on a queue that it holds both ends of, so it would never see the
    app go if the app were killed or crashed: a thread waits on the parent's sentinel instead.
    """
    import multiprocessing
    import threading

    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        parent.join()
        os._exit(0)

    threading.Thread(target=watch, name="clapdesk-parent-watch", daemon=True).start()


def lower_priority() -> None:
    """Run this process only when the cores have nothing else to do (as far as the OS allows).

    Indexing is bound by the model: its threads use every core. A decoder at normal priority
    takes cores from them mid-layer, and the model's other thread then waits at the end of the
    layer for the one that lost its core, so each second taken costs the model up to two. At
    idle priority the decoders run when the model waits for them, when the machine has a spare
    core, or between the model's layers; a DAW or the app's own window always comes first.
    """
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):  # Linux
        try:
            os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
            return
        except OSError as exc:
            log.debug("SCHED_IDLE refused (%s); lowering the nice value instead", exc)
    if sys.platform == "win32":
        try:
            import ctypes

            kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
            idle_priority_class = 0x40
            kernel32.SetPriorityClass(kernel32.GetCurrentProcess(), idle_priority_class)
        except (AttributeError, OSError) as exc:
            log.debug("idle priority class refused (%s)", exc)
        return
    try:
        os.nice(19)
    except (AttributeError, OSError):
        pass  # left at normal priority: slower indexing, nothing worse
