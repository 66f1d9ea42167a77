"""Nothing in a library folder can hang indexing: a pipe or a device swapped in after the scan,
links to /proc files that say 0 bytes and read for ever, and a decoder that stops answering.

Each test runs under pytest-timeout: on a build that hangs, the test fails instead of waiting.
The per-file decode limit is made small through $CLAPDESK_DECODE_SECONDS.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.core.index import decoding
from clapdesk.core.ingest.audio import NOT_A_FILE, DecodeError
from clapdesk.core.ingest.scan import content_hash
from clapdesk.core.library import Library

PROC_LINKS = [p for p in ("/proc/kmsg", "/proc/self/pagemap") if os.path.exists(p)]


@pytest.mark.timeout(30)
def test_hashing_reads_only_regular_files_and_never_past_their_size(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer for ever
    zero = tmp_path / "zero.wav"
    os.symlink("/dev/zero", zero)  # reads for ever
    for path in (fifo, zero):
        with pytest.raises(DecodeError, match=re.escape(NOT_A_FILE)):
            content_hash(str(path))
    # /proc files are regular files of size 0 whose reads go on (pagemap: 8 bytes per page of
    # the address space) or block (kmsg): hashed as what their size says, at once.
    for target in PROC_LINKS:
        link = tmp_path / (Path(target).name + ".wav")
        os.symlink(target, link)
        started = time.monotonic()
        assert content_hash(str(link)) == content_hash(str(_empty(tmp_path)))
        assert time.monotonic() - started < 5


def _empty(folder: Path) -> Path:
    path = folder / "empty.bin"
    path.write_bytes(b"")
    return path


@pytest.mark.timeout(180)
def test_pipes_devices_and_proc_links_swapped_in_after_the_scan_fail_and_the_run_goes_on(
        tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLAPDESK_DECODE_SECONDS", "10")
    folder = tmp_path / "samples"
    good = [write_sound(folder / f"good_{i}.wav", family_sound("pad", i)) for i in range(3)]
    swapped = {name: write_sound(folder / name, family_sound("kick", n))
               for n, name in enumerate(["pipe.wav", "zero.wav", "kmsg.wav", "pagemap.wav"])}
    targets = {"zero.wav": "/dev/zero", "kmsg.wav": "/proc/kmsg", "pagemap.wav": "/proc/self/pagemap"}

    def swap(p) -> None:  # type: ignore[no-untyped-def]
        if p.phase != "loading model" or not swapped["pipe.wav"].is_file():
            return
        for name, path in swapped.items():
            path.unlink()
            if name == "pipe.wav":
                os.mkfifo(path)
            elif os.path.exists(targets[name]):
                os.symlink(targets[name], path)

    library = Library(model=str(tiny_model))
    try:
        report = library.index_folders([str(folder)], progress=swap)
        failed = {Path(p).name: why for p, why in report.failed}
        assert report.indexed == len(good)
        assert failed["pipe.wav"] == NOT_A_FILE
        assert failed["zero.wav"] == NOT_A_FILE
        for name in ("kmsg.wav", "pagemap.wav"):
            if os.path.exists(targets[name]):
                assert failed[name] == "file is empty"
    finally:
        library.close()


@pytest.mark.timeout(240)
def test_a_decoder_that_stops_answering_is_ended_and_the_file_listed(
        tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A decode that never returns (the decoder process is stopped with SIGSTOP, as a decode
    wedged in a library or on a hung share would be): after the limit the file is listed as
    failed with that reason, its decoder is ended and replaced, and the other files are
    indexed. The failure passes, so the next run tries the file again."""
    monkeypatch.setenv("CLAPDESK_DECODE_SECONDS", "5")
    folder = tmp_path / "samples"
    files = [write_sound(folder / f"{i:02d}_pad.wav", family_sound("pad", i)) for i in range(4)]
    pool = decoding.shared_pool(1)
    stopped: list[int] = []

    def stop_decoder(p) -> None:  # type: ignore[no-untyped-def]
        if p.phase == "loading model" and not stopped:
            deadline = time.monotonic() + 30
            while not pool.pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            for pid in pool.pids():
                os.kill(pid, signal.SIGSTOP)
                stopped.append(pid)

    library = Library(model=str(tiny_model))
    try:
        started = time.monotonic()
        report = library.index_folders([str(folder)], progress=stop_decoder, workers=1)
        assert stopped, "the decoder process was found and stopped"
        assert report.failed == [(str(files[0]), "took longer than 5 s to decode")]
        assert report.indexed == 3
        assert time.monotonic() - started < 120
        assert all(_ended(pid) for pid in stopped), "the stuck decoder was ended, not left"
        assert set(pool.pids()).isdisjoint(stopped), "a fresh decoder took over"
        again = library.rescan()
        assert again.indexed == 1 and again.failed == []
    finally:
        library.close()


def _ended(pid: int) -> bool:
    """Gone, or dead and waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
    except OSError:
        return True
