"""Every kind of bad file gets a plain reason in the failures list, and the run goes on.

The corpus is written by the test. Files that can be read (silent, one sample, NaN/Inf, eight
channels, 8 kHz, 384 kHz, a WAV named .mp3, a name that is not UTF-8) are indexed; the rest are
listed with the exact reason a producer sees, never a traceback.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, tone, write_sound
from corpus import encoded, make_link_loop, wav_bytes, wav_with_codec, write_bytes

from clapdesk.cli import main
from clapdesk.core.index import plan as plan_module
from clapdesk.core.library import Library

NOT_UTF8 = b"caf\xe9 kick \xff.wav"  # Latin-1 bytes, as old sample CDs copied them

EXPECTED_FAILURES = {
    "empty.wav": "file is empty",
    "header_cut.wav": "file is truncated",
    "data_cut.wav": "file is truncated",
    "notes.wav": "not an audio file",
    "wma_inside.wav": "unsupported codec in WAV container (WMA)",
    "ac3_inside.wav": "unsupported codec in WAV container (AC-3)",
    "loop_a.wav": "the link loops back on itself",
    "loop_b.wav": "the link loops back on itself",
    "pipe.wav": "not a regular file (a pipe or a device)",
    "gone.wav": "the link points to a file that does not exist",
    "half.flac": "file is damaged or truncated",
    "stub.flac": "file is truncated",
    "half.aiff": "file is truncated",
}
EXPECTED_INDEXED = {
    # name: (sample rate, channels)
    "really_a_wav.mp3": (44100, 1),
    "one_sample.wav": (44100, 1),
    "silent.wav": (44100, 1),
    "nan_inf.wav": (44100, 1),
    "eight_channels.wav": (48000, 8),
    "rate_8k.wav": (8000, 1),
    "rate_384k.wav": (384000, 1),
    "adpcm.wav": (22050, 1),
    os.fsdecode(NOT_UTF8): (44100, 1),
}


def write_corpus(folder: Path) -> None:
    folder.mkdir(parents=True)
    good = wav_bytes(tone(1.0), 44100)
    write_bytes(folder / "empty.wav", b"")
    write_bytes(folder / "header_cut.wav", good[:20])
    write_bytes(folder / "data_cut.wav", good[: 44 + 2000])
    (folder / "notes.wav").write_text("kick: punchy\nsnare: tight\n" * 20)
    write_bytes(folder / "really_a_wav.mp3", good)
    write_bytes(folder / "wma_inside.wav", wav_with_codec(0x0161, os.urandom(8192)))
    write_bytes(folder / "ac3_inside.wav", wav_with_codec(0x2000, os.urandom(8192), extra=b""))
    write_sound(folder / "one_sample.wav", np.array([0.5], np.float32))
    write_sound(folder / "silent.wav", np.zeros(44100, np.float32))
    broken = tone(1.0)
    broken[100], broken[200], broken[300] = np.nan, np.inf, -np.inf
    write_sound(folder / "nan_inf.wav", broken, subtype="FLOAT")
    write_sound(folder / "eight_channels.wav", tone(1.0, rate=48000, channels=8), rate=48000)
    write_sound(folder / "rate_8k.wav", tone(1.0, rate=8000, freq=200), rate=8000)
    write_sound(folder / "rate_384k.wav", tone(0.5, rate=384000, freq=3000), rate=384000)
    write_sound(folder / "adpcm.wav", family_sound("kick", 1, rate=22050), rate=22050,
                subtype="MS_ADPCM")
    write_bytes(os.path.join(os.fsencode(folder), NOT_UTF8), good)
    # Copies cut off half-way. (An Ogg cut off plays up to its last whole page, and has no
    # length in its header to compare with: it is indexed as the shorter sound it now is.)
    for fmt in ("FLAC", "AIFF"):
        whole = encoded(tone(3.0), 44100, fmt)
        write_bytes(folder / f"half.{fmt.lower()}", whole[: len(whole) // 2])
        if fmt == "FLAC":
            write_bytes(folder / "stub.flac", whole[:30])
    make_link_loop(folder)
    os.symlink("nowhere.wav", folder / "gone.wav")
    os.mkfifo(folder / "pipe.wav")  # reading it would hang the run: it must never be opened
    (folder / "folder.wav").mkdir()  # a folder named like a file is a folder
    write_sound(folder / "folder.wav" / "inside.wav", family_sound("pad", 3))


def test_bad_file_corpus(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]
                         ) -> None:
    samples = tmp_path / "samples"
    write_corpus(samples)
    code = main(["--json", "--model", str(tiny_model), "index", str(samples)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    report = json.loads(captured.out)

    reasons = {Path(f["path"]).name: f["error"] for f in report["failed"]}
    assert reasons == EXPECTED_FAILURES
    assert report["indexed"] == len(EXPECTED_INDEXED) + 1  # + folder.wav/inside.wav

    library = Library(model=str(tiny_model))
    try:
        records = {Path(r.path).name: r for r in library.catalog.live_files()}
        assert set(records) == set(EXPECTED_INDEXED) | {"inside.wav"}
        for name, (rate, channels) in EXPECTED_INDEXED.items():
            assert (records[name].sample_rate, records[name].channels) == (rate, channels), name
        assert records["really_a_wav.mp3"].format == "WAV"
        assert records["one_sample.wav"].duration == pytest.approx(1 / 44100)
        # The name that is not UTF-8 round-trips to the exact bytes on disk.
        odd = records[os.fsdecode(NOT_UTF8)]
        assert os.fsencode(odd.path) == os.path.join(os.fsencode(samples), NOT_UTF8)
        ids, vectors = library.catalog.vectors(library.model_key)
        assert len(ids) == len(records) and np.isfinite(vectors).all()
        assert not any("/again/" in r.path for r in records.values()), "the folder loop was walked"
        # Failures stored in the catalog are the ones `clapdesk failures` shows (files only:
        # links and pipes have no row and are reported afresh by each run).
        stored = {Path(p).name: e for p, e in library.catalog.failures()}
        assert stored == {k: v for k, v in EXPECTED_FAILURES.items()
                          if not k.startswith(("loop_", "pipe", "gone"))}
    finally:
        library.close()

    # A rescan does not retry unchanged failures and changes nothing.
    code = main(["--json", "index", str(samples)])
    again = json.loads(capsys.readouterr().out)
    assert code == 0 and again["indexed"] == 0
    assert again["unchanged"] == len(records) + len(stored)


def test_unreadable_file_is_reported(tmp_path: Path, tiny_model: Path) -> None:
    """chmod 000. Root reads anything, so as root the same file must simply be indexed; the
    reason wording for a normal user is checked by test_unreadable_as_another_user."""
    samples = tmp_path / "samples"
    write_sound(samples / "locked.wav", family_sound("bass", 2))
    os.chmod(samples / "locked.wav", 0)
    library = Library(model=str(tiny_model))
    try:
        report = library.index_folders([str(samples)])
    finally:
        library.close()
    if os.geteuid() == 0:
        assert report.indexed == 1 and report.failed == []
    else:
        assert report.failed == [(str(samples / "locked.wav"),
                                  "permission denied: clapdesk may not read this file")]


def test_file_deleted_or_rewritten_between_scan_and_decode(
        tmp_path: Path, tiny_model: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    samples = tmp_path / "samples"
    for name in ("stays", "deleted", "rewritten"):
        write_sound(samples / f"{name}.wav", family_sound("pad", len(name), seconds=2.0))
    real_walk = plan_module.walk_audio

    def walk_then_change(root: str):  # type: ignore[no-untyped-def]
        found = real_walk(root)  # the scan has recorded sizes and times...
        os.remove(samples / "deleted.wav")  # ...then the files change under it
        write_sound(samples / "rewritten.wav", family_sound("kick", 9, seconds=0.5))
        return found

    monkeypatch.setattr(plan_module, "walk_audio", walk_then_change)
    library = Library(model=str(tiny_model))
    try:
        report = library.index_folders([str(samples)])
        assert report.failed == [(str(samples / "deleted.wav"),
                                  "file vanished while it was being indexed")]
        assert report.indexed == 2
        rewritten = library.catalog.file_by_path(samples / "rewritten.wav")
        assert rewritten is not None and rewritten.duration == pytest.approx(0.5)
        # Stored with the stamp of what was read, so the next scan does not index it again.
        st = os.stat(samples / "rewritten.wav")
        assert (rewritten.size, rewritten.mtime_ns) == (st.st_size, st.st_mtime_ns)
        monkeypatch.setattr(plan_module, "walk_audio", real_walk)
        again = library.index_folders([str(samples)])
        assert again.indexed == 0 and again.unchanged == 2 and again.removed == 1
    finally:
        library.close()
