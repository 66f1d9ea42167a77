"""A second clapdesk on a library that is being indexed: indexing is refused, searching works."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from child import child_env, clapdesk_cmd, count_rows, integrity, run_clapdesk
from conftest import family_sound, write_sound

FAMILIES = ["kick", "hihat", "pad", "bass"]


def test_second_clapdesk_while_one_indexes(tmp_path: Path, tiny_model: Path) -> None:
    samples = tmp_path / "samples"
    for i in range(12):
        family = FAMILIES[i % 4]
        write_sound(samples / f"{family}_{i}.wav", family_sound(family, i))
    other = tmp_path / "more"
    write_sound(other / "late.wav", family_sound("pad", 99))
    library = tmp_path / "library"
    paused, resume = tmp_path / "paused", tmp_path / "resume"
    # The first run holds the writer lock from start to finish; the hook pauses it inside its
    # index save, so the second process meets it at a known moment, mid-write.
    first = subprocess.Popen(
        clapdesk_cmd(library, tiny_model, "index", str(samples)),
        env=child_env(CLAPDESK_TEST_PAUSE_IN_SAVE=str(paused), CLAPDESK_TEST_RESUME=str(resume)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180
        while not paused.exists():
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.05)

        code, _, err = run_clapdesk(library, tiny_model, "index", str(other))
        assert code == 1
        assert "being updated by another clapdesk" in err and "Traceback" not in err
        assert f"(process {first.pid})" in err

        code, found, err = run_clapdesk(library, tiny_model, "search", "punchy kick", "-k", "5")
        assert code == 0, err
        assert len(found["results"]) == 5
        assert all(Path(r["path"]).parent == samples for r in found["results"])
    finally:
        resume.touch()
        out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out)["indexed"] == 12

    assert integrity(library / "catalog.sqlite3") == "ok"
    assert count_rows(library / "catalog.sqlite3") == 12
    code, report, err = run_clapdesk(library, tiny_model, "index", str(samples), str(other))
    assert code == 0, err
    assert report["indexed"] == 1 and report["unchanged"] == 12
