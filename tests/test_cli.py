"""`clapdesk` on the command line: JSON shapes and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict]:
    """Run a verb that must succeed; returns its exit code and its JSON."""
    code = main(["--json", *argv])
    captured = capsys.readouterr()
    out = captured.out.strip()
    assert code == 0, captured.err
    return code, (json.loads(out) if out else {})


@pytest.fixture
def samples(tmp_path: Path) -> Path:
    for i, family in enumerate(["kick", "hihat", "pad", "bass", "kick", "pad"]):
        write_sound(tmp_path / "samples" / f"{family}_{i}.wav", family_sound(family, i))
    (tmp_path / "samples" / "readme.wav").write_text("not audio at all")
    return tmp_path / "samples"


def test_index_search_similar_doctor(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                     samples: Path) -> None:
    code, report = run_json(capsys, "--model", str(tiny_model), "index", str(samples))
    assert code == 0, "some files failing is still a success"
    assert {"indexed", "unchanged", "removed", "failed", "seconds"} <= report.keys()
    assert report["indexed"] == 6 and report["unchanged"] == 0 and report["removed"] == 0
    assert [f["path"] for f in report["failed"]] == [str(samples / "readme.wav")]
    assert report["failed"][0]["error"].startswith("not an audio file")

    code, report = run_json(capsys, "index", str(samples))  # the library remembers its model
    assert code == 0 and report["unchanged"] == 7 and report["indexed"] == 0

    code, found = run_json(capsys, "search", "punchy kick", "-k", "3")
    assert code == 0 and len(found["results"]) == 3
    first = found["results"][0]
    assert {"path", "match", "cosine", "duration", "bpm", "key", "kind"} <= first.keys()
    matches = [r["match"] for r in found["results"]]
    assert matches == sorted(matches, reverse=True) and all(0 <= m < 100 for m in matches)
    cosines = [r["cosine"] for r in found["results"]]
    assert cosines == sorted(cosines, reverse=True)
    # Two kicks in six files: they stand about one standard deviation above the library's
    # typical file for this query; files below it read 0 %.
    assert matches[0] > 30
    # Two kicks in the folder: they come first.
    assert [Path(r["path"]).name for r in found["results"][:2]] == ["kick_0.wav", "kick_4.wav"] \
        or [Path(r["path"]).name for r in found["results"][:2]] == ["kick_4.wav", "kick_0.wav"]

    code, found = run_json(capsys, "search", "kick", "--in", str(samples), "-k", "50")
    assert code == 0 and len(found["results"]) == 6
    assert found["results"][-1]["match"] == 0.0 and found["results"][-1]["cosine"] < 0.3

    code, alike = run_json(capsys, "similar", str(samples / "kick_0.wav"), "-k", "2")
    assert code == 0 and len(alike["results"]) == 2
    assert all(r["path"] != str(samples / "kick_0.wav") for r in alike["results"])

    code, doctor = run_json(capsys, "doctor")
    assert code == 0 and doctor["files"] == 6 and doctor["failed"] == 1
    assert doctor["model_state"] == "available" and doctor["device"] == "cpu"
    assert {"torch", "transformers", "library", "catalog_bytes"} <= doctor.keys()


def test_plain_output_is_a_readable_table(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                          samples: Path) -> None:
    assert main(["--model", str(tiny_model), "index", str(samples)]) == 0
    assert "indexed 6" in capsys.readouterr().out
    assert main(["search", "warm pad", "-k", "2"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].lstrip().startswith("1")
    assert all("pad_" in line for line in lines), lines  # the two pads, best first
    # A readable match ("78 %"), never a raw cosine such as 0.132 or -0.01.
    assert all(line.split()[1].isdigit() and line.split()[2] == "%" for line in lines), lines


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["search"])
    assert caught.value.code == 2
    with pytest.raises(SystemExit) as caught:
        main(["frobnicate"])
    assert caught.value.code == 2


def test_fatal_errors_are_one_plain_line(tmp_path: Path) -> None:
    env = {**os.environ, "CLAPDESK_LIBRARY": str(tmp_path / "lib"), "HF_HUB_OFFLINE": "1"}
    for argv, expected in (
        (["--model", "nobody/no-such-clap", "search", "kick"], "could not be downloaded"),
        (["--model", str(tmp_path / "missing"), "search", "kick"], "does not exist"),
        (["index", str(tmp_path / "nope")], "is not a folder"),
        (["similar", str(tmp_path / "nope.wav")], "is not a file"),
    ):
        done = subprocess.run([sys.executable, "-m", "clapdesk", *argv], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("clapdesk: "), done.stderr
        assert expected in lines[0]
        assert "Traceback" not in done.stderr
