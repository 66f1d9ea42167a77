"""Indexing's decoder processes: idle priority, no torch, crash isolation, idle release."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound

from clapdesk.core.index import decoding
from clapdesk.core.index.decoding import DecodePool, DecodeRequest, DecodeResult
from clapdesk.core.library import Library


def decoder_facts() -> dict[str, object]:
    """Runs in a decoder: what a process started by the pool looks like from inside."""
    facts: dict[str, object] = {"pid": os.getpid(), "torch": "torch" in sys.modules,
                                "blas_threads": os.environ.get("OPENBLAS_NUM_THREADS")}
    if hasattr(os, "sched_getscheduler"):
        facts["policy"] = os.sched_getscheduler(0)
        facts["nice"] = os.nice(0)
    return facts


def idle_decoder_facts() -> dict[str, object]:
    """Runs in a decoder: its facts once the model runs (a request with idle=True came)."""
    from clapdesk.core.index import decode_worker

    decode_worker.become_idle()
    return decoder_facts()


def decode_or_crash(request: DecodeRequest) -> DecodeResult:
    """Runs in a decoder: a decoding library that dies on one file, as a real one can."""
    if "crashes the decoder" in os.path.basename(request.path):
        os.kill(os.getpid(), signal.SIGSEGV)
    return decoding.decode_file(request)


def test_decoders_are_separate_idle_processes_without_torch() -> None:
    pool = DecodePool(2)
    try:
        # While the model loads: a little below normal priority (the cores are not the model's
        # yet); once it runs, idle priority, for good.
        loading = [pool.submit(decoder_facts).result(timeout=60) for _ in range(4)]
        facts = [pool.submit(idle_decoder_facts).result(timeout=60) for _ in range(4)]
        later = [pool.submit(decoder_facts).result(timeout=60) for _ in range(4)]
    finally:
        pool.close()
    assert all(f["pid"] != os.getpid() for f in facts)
    assert not any(f["torch"] for f in facts), "a decoder must not load torch (memory, start-up)"
    assert {f["blas_threads"] for f in facts} == {"1"}
    if sys.platform.startswith("linux"):
        assert {f["policy"] for f in loading} == {os.SCHED_OTHER}
        assert all(f["nice"] >= min(19, os.nice(0) + 10) for f in loading)
        assert {f["policy"] for f in facts} == {os.SCHED_IDLE}
        idle = {f["pid"] for f in facts}
        assert all(f["policy"] == os.SCHED_IDLE for f in later if f["pid"] in idle)


def test_a_decoder_result_matches_decoding_in_this_process(tmp_path: Path) -> None:
    path = write_sound(tmp_path / "pad 120 bpm.wav", family_sound("pad", 3, seconds=12.5), 44100)
    request = DecodeRequest(str(path), path.stat().st_size, path.stat().st_mtime_ns, 48000)
    pool = DecodePool(1)
    try:
        remote = pool.submit(decoding.decode_file, request).result(timeout=60)
    finally:
        pool.close()
    local = decoding.decode_file(request)
    assert remote.error is None and remote.digest == local.digest
    assert remote.decoded is not None and local.decoded is not None
    assert len(remote.decoded.windows) == len(local.decoded.windows) == 2
    for a, b in zip(remote.decoded.windows, local.decoded.windows):
        assert np.array_equal(a, b)
    assert remote.analysis == local.analysis and remote.analysis["kind"]


def test_a_file_that_crashes_its_decoder_fails_alone_and_the_run_goes_on(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "samples"
    families = ["kick", "hihat", "pad", "bass", "kick", "pad", "hihat", "bass", "pad"]
    for i, family in enumerate(families):
        write_sound(folder / f"{family}_{i:02d}.wav", family_sound(family, i))
    bad = write_sound(folder / "hit that crashes the decoder.wav", family_sound("kick", 99))
    monkeypatch.setattr(decoding, "decode_file", decode_or_crash)
    pool = DecodePool(2)
    monkeypatch.setattr(decoding, "shared_pool", lambda workers=None: pool)
    library = Library(model=str(tiny_model))
    try:
        report = library.index_folders([str(folder)])
        assert report.failed == [(str(bad), decoding.CRASHED)]
        assert report.indexed == len(families)
        record = library.catalog.file_by_path(bad)
        assert record is not None and record.error == decoding.CRASHED
        # Recorded as failed, it is not retried (and does not crash again) until it changes.
        again = library.index_folders([str(folder)])
        assert again.decoded == 0 and again.unchanged == len(families) + 1
    finally:
        library.close()
        pool.close()


def test_threads_stand_in_where_processes_cannot_start(tmp_path: Path) -> None:
    path = write_sound(tmp_path / "kick.wav", family_sound("kick", 1))
    pool = DecodePool(1, processes=False)
    try:
        assert pool.submit(decoder_facts).result()["pid"] == os.getpid()
        result = pool.submit(decoding.decode_file, DecodeRequest(str(path), 0, 0, 48000)).result()
    finally:
        pool.close()
    assert result.error is None and result.decoded is not None
    assert result.size == path.stat().st_size  # the stamp of what was read, not of the request


def test_idle_decoders_are_released_and_come_back_when_needed() -> None:
    pool = DecodePool(1, idle_seconds=0.3)
    try:
        first = pool.submit(decoder_facts).result(timeout=60)["pid"]
        deadline = time.monotonic() + 10
        while pool.running and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not pool.running, "idle decoder processes must let their memory go"
        second = pool.submit(decoder_facts).result(timeout=60)["pid"]
        assert second != first
    finally:
        pool.close()


LAUNCHER = '''import json
import sys
from {module} import {function}


def loaded() -> list[str]:
    return sorted(name for name in ("PySide6", "torch", "transformers") if name in sys.modules)


if __name__ == "__main__":
    from clapdesk.core.index.decoding import DecodePool

    pool = DecodePool(1)
    print(json.dumps(pool.submit(loaded).result(timeout=120)))
    pool.close()
'''


@pytest.mark.parametrize("kind", ["scripts", "gui-scripts"])
def test_decoders_started_from_the_app_launchers_load_neither_qt_nor_torch(
        kind: str, tmp_path: Path) -> None:
    """A decoder process imports the program's main module again: the launchers' must be light."""
    import json
    import re
    import subprocess

    pyproject = (Path(__file__).parents[1] / "pyproject.toml").read_text()
    section = pyproject.split(f"[project.{kind}]", 1)[1].split("\n[", 1)[0]
    entries = re.findall(r'^([\w-]+) = "([\w.]+):(\w+)"', section, re.MULTILINE)
    assert entries, f"no [project.{kind}] entries found"
    for name, module, function in entries:
        target = f"{module}:{function}"
        launcher = tmp_path / name
        launcher.write_text(LAUNCHER.format(module=module, function=function))
        done = subprocess.run([sys.executable, str(launcher)], capture_output=True, text=True,
                              timeout=180, cwd=Path(__file__).parents[1])
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) == [], f"{name} ({target})"


KILLED_APP = '''import os
import signal
from clapdesk.core.index.decoding import DecodePool

if __name__ == "__main__":
    pool = DecodePool(2)
    pids = sorted({pool.submit(os.getpid).result(timeout=120) for _ in range(8)})
    print(" ".join(map(str, pids)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
'''


def running(pid: int) -> bool:
    """Alive and not a zombie waiting to be reaped (a container's init may not reap)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_decoders_end_when_the_app_is_killed(tmp_path: Path) -> None:
    import subprocess

    script = tmp_path / "app.py"
    script.write_text(KILLED_APP)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=180, cwd=Path(__file__).parents[1])
    assert done.returncode == -signal.SIGKILL, done.stderr
    pids = [int(p) for p in done.stdout.split()]
    assert pids
    deadline = time.monotonic() + 15
    while any(running(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(running(pid) for pid in pids), "decoders outlived the app that started them"


def test_what_a_decoder_logs_reaches_the_app_log(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A decoder process has no log handlers: its lines travel with the result and are logged
    by the indexer (with the traceback at debug level, for --verbose)."""
    import logging

    from clapdesk.core.index import indexer

    path = write_sound(tmp_path / "kick.wav", family_sound("kick", 1))
    pool = DecodePool(1)
    try:
        result = pool.submit(decode_with_failing_analysis,
                             DecodeRequest(str(path), 0, 0, 48000)).result(timeout=60)
    finally:
        pool.close()
    assert result.error is None and result.decoded is not None and result.analysis == {}
    caplog.set_level(logging.DEBUG, logger="clapdesk")
    job = indexer._Job(indexer.FoundFile(str(path), result.size, result.mtime_ns), 1, None)
    indexer._received(job, result)
    messages = [r.getMessage() for r in caplog.records]
    assert any("analysis failed for" in m and "indexed without tempo and key" in m for m in messages)
    assert any("Traceback" in m and "tempo detector broke" in m for m in messages)


def decode_with_failing_analysis(request: DecodeRequest) -> DecodeResult:
    """Runs in a decoder: the real decode, with an analysis that raises."""
    from clapdesk.core.analysis import tags as tagging

    def broken(*args: object, **kwargs: object) -> dict[str, object]:
        raise RuntimeError("tempo detector broke")

    tagging.analyse_file = broken  # this decoder process only; the test's pool is closed after
    return decoding.decode_file(request)


def test_asking_for_another_worker_count_leaves_a_running_pool_to_finish() -> None:
    first = decoding.shared_pool(1)
    queued = [first.submit(time.sleep, 0.3) for _ in range(4)]  # the last wait in the queue
    second = decoding.shared_pool(2)
    try:
        assert second is not first and second.workers == 2
        # None cancelled under the run that waits on them.
        assert [f.result(timeout=60) for f in queued] == [None] * 4
        assert decoding.shared_pool(2) is second
    finally:
        first.close()
        second.close()
