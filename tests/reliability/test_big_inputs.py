"""Big inputs: an hour-long file indexed in bounded memory, a folder of 20,000 files, and a file
the indexing user may not read (tested as an unprivileged user even when CI runs as root)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from child import child_env, clapdesk_cmd, count_rows
from conftest import family_sound, write_sound
from corpus import write_streaming_wav

from clapdesk.core.index import indexer as indexer_module
from clapdesk.core.ingest.scan import walk_audio
from clapdesk.core.library import Library

# What indexing does with one file besides the model: hash it, read its windows, analyse it.
DECODE_ONLY = """
import sys
from clapdesk.core.ingest import audio
from clapdesk.core.ingest.scan import content_hash
from clapdesk.core.analysis.tags import analyse_file
path = sys.argv[1]
content_hash(path)
decoded = audio.decode_for_index(path, 48000)
analyse_file(decoded, path)
"""


def peak_rss_mb(cmd: list[str], peak_file: Path) -> tuple[int, float, str]:
    """(exit code, the child's own peak resident memory in MB, stderr)."""
    done = subprocess.run(cmd, env=child_env(CLAPDESK_TEST_PEAK_FILE=str(peak_file)),
                          capture_output=True, text=True, timeout=300)
    peak = int(peak_file.read_text()) / 1024 if peak_file.exists() else float("nan")
    return done.returncode, peak, done.stderr


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="peak memory is read from /proc")
def test_hour_long_file_is_indexed_in_bounded_memory(tmp_path: Path, tiny_model: Path) -> None:
    """One hour of mono 16-bit audio at 8 kHz is a 58 MB file (115 MB as float32, 690 MB at
    the model's 48 kHz). A two-minute file already uses the most windows a file gets (six), so
    the hour-long one may cost no more memory than it: the peak must stay within 24 MB of it,
    less than half the file's own size. Measured end to end (`clapdesk index`) and for the
    file's own work alone (hash, windows, analysis) in a child without the model."""
    long_dir, short_dir = tmp_path / "long", tmp_path / "short"
    long_dir.mkdir()
    write_streaming_wav(long_dir / "field_recording.wav", seconds=3600, rate=8000)
    assert (long_dir / "field_recording.wav").stat().st_size > 57_000_000
    short_dir.mkdir()
    write_streaming_wav(short_dir / "two_minutes.wav", seconds=120, rate=8000)

    peak = tmp_path / "peak"
    code, short_peak, err = peak_rss_mb(
        clapdesk_cmd(tmp_path / "lib-short", tiny_model, "index", str(short_dir)), peak)
    assert code == 0, err
    code, long_peak, err = peak_rss_mb(
        clapdesk_cmd(tmp_path / "lib-long", tiny_model, "index", str(long_dir)), peak)
    assert code == 0, err
    growth = long_peak - short_peak
    # The model's loading peak can hide smaller costs, so the file's own work (hash, windows,
    # analysis) is measured again in a child without the model, where nothing hides it.
    work = [sys.executable, "-c", DECODE_ONLY]
    code, short_work, err = peak_rss_mb([*work, str(short_dir / "two_minutes.wav")], peak)
    assert code == 0, err
    code, long_work, err = peak_rss_mb([*work, str(long_dir / "field_recording.wav")], peak)
    assert code == 0, err
    work_growth = long_work - short_work
    print(f"peak RSS of clapdesk index: 2 min file {short_peak:.0f} MB, 1 h file "
          f"{long_peak:.0f} MB (+{growth:.1f} MB); of hashing, decoding and analysing alone: "
          f"{short_work:.0f} MB vs {long_work:.0f} MB (+{work_growth:.1f} MB)")
    assert growth < 24, f"indexing an hour-long file grew peak memory by {growth:.0f} MB"
    assert work_growth < 24, f"decoding an hour-long file grew peak memory by {work_growth:.0f} MB"

    library = Library(tmp_path / "lib-long", model=str(tiny_model))
    try:
        (record,) = library.catalog.live_files()
        assert record.duration == pytest.approx(3600.0)
        assert record.sample_rate == 8000
    finally:
        library.close()


@pytest.mark.slow
def test_twenty_thousand_files(tmp_path: Path, tiny_model: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    """20,000 ten-millisecond clicks in 40 folders. What is measured at full size is what does
    not need the model: the scan, and planning a rescan (size and mtime against the catalog).
    Decoding and analysing 20,000 files takes minutes on a 2-core CI machine, so only one
    folder of 500 is indexed for real; they share one sound, which must be embedded once."""
    samples = tmp_path / "many"
    click = io.BytesIO()
    sf.write(click, (0.3 * np.sin(np.arange(80) / 3)).astype(np.float32), 8000, format="WAV",
             subtype="PCM_16")
    raw = click.getvalue()
    started = time.perf_counter()
    for folder in range(40):
        target = samples / f"pack{folder:02d}"
        target.mkdir(parents=True)
        for i in range(500):
            fd = os.open(target / f"click_{i:03d}.wav", os.O_WRONLY | os.O_CREAT, 0o644)
            os.write(fd, raw)
            os.close(fd)
    written = time.perf_counter() - started

    started = time.perf_counter()
    scan = walk_audio(str(samples))
    scan_seconds = time.perf_counter() - started
    assert len(scan.found) == 20_000 and scan.not_files == [] and scan.unreadable_folders == []
    assert scan_seconds < 10, f"scanning 20,000 files took {scan_seconds:.1f} s"

    embedded = []  # windows handed to the audio encoder
    original = indexer_module.ClapEmbedder.features_for

    def counting(self, windows):  # type: ignore[no-untyped-def]
        embedded.append(len(windows))
        return original(self, windows)

    monkeypatch.setattr(indexer_module.ClapEmbedder, "features_for", counting)
    library = Library(model=str(tiny_model))
    try:
        started = time.perf_counter()
        report = library.index_folders([str(samples / "pack00")])
        index_seconds = time.perf_counter() - started
        assert report.indexed == 500 and report.failed == []
        assert sum(embedded) == 1, "identical content is embedded once"
        started = time.perf_counter()
        again = library.index_folders([str(samples / "pack00")])
        rescan_seconds = time.perf_counter() - started
        assert again.unchanged == 500 and again.indexed == 0 and sum(embedded) == 1
    finally:
        library.close()
    print(f"20k files: written in {written:.1f} s, scanned in {scan_seconds:.2f} s; "
          f"500 indexed in {index_seconds:.1f} s, unchanged rescan of 500 in {rescan_seconds:.2f} s")
    assert rescan_seconds < 5


def test_unreadable_file_without_root_powers(tmp_path: Path, tiny_model: Path) -> None:
    """chmod 000 stops anyone but root, and CI runs as root. So as root the real `clapdesk
    index` runs through `setpriv` without the capabilities that let root read anything
    (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH): still uid 0, but bound by file permissions.
    An unreadable file is listed with its reason; a folder that became unreadable is listed
    too, and the files indexed from it before are kept, not dropped as deleted."""
    samples = tmp_path / "samples"
    write_sound(samples / "open.wav", family_sound("pad", 2))
    write_sound(samples / "vault" / "a.wav", family_sound("kick", 3))
    write_sound(samples / "vault" / "b.wav", family_sound("bass", 4))
    library = tmp_path / "library"
    cmd = clapdesk_cmd(library, tiny_model, "index", str(samples))
    done = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=240)
    assert done.returncode == 0 and json.loads(done.stdout)["indexed"] == 3, done.stderr

    write_sound(samples / "locked.wav", family_sound("kick", 1))
    os.chmod(samples / "locked.wav", 0)
    os.chmod(samples / "vault", 0)
    try:
        if os.geteuid() == 0:
            setpriv = shutil.which("setpriv")
            if setpriv is None:
                pytest.skip("running as root without util-linux setpriv: root reads any file")
            cmd = [setpriv, "--bounding-set=-dac_override,-dac_read_search", *cmd]
        done = subprocess.run(cmd, env=child_env(), capture_output=True, text=True, timeout=240)
    finally:
        os.chmod(samples / "vault", 0o755)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert sorted((f["path"], f["error"]) for f in report["failed"]) == [
        (str(samples / "locked.wav"), "permission denied: clapdesk may not read this file"),
        (str(samples / "vault"), "folder cannot be read: Permission denied"),
    ]
    assert (report["indexed"], report["unchanged"], report["removed"]) == (0, 3, 0)
    assert count_rows(library / "catalog.sqlite3") == 3
