"""Smaller faults: damage in the catalog's last page stops indexing before it writes; file
names with newlines and terminal escapes print as escapes; a CSV with one huge field still
gives its tags; `tag` finds a file reached through a linked folder; libmpg123's notes stay off
the terminal of a successful run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from child import child_env
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.finetune.prompts import read_tags_csv
from clapdesk.core.library import Library
from clapdesk.core.store.paths import LibraryPaths


def _indexed_library(folder: Path, tiny_model: Path, count: int = 3) -> None:
    for i, fam in enumerate(["kick", "pad", "bass", "hihat"][:count]):
        write_sound(folder / f"{fam}_{i}.wav", family_sound(fam, i))
    library = Library(model=str(tiny_model))
    try:
        assert library.index_folders([str(folder)]).indexed == count
    finally:
        library.close()


def test_damage_in_the_last_page_stops_indexing_before_it_writes(
        tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "samples"
    _indexed_library(folder, tiny_model)
    catalog = LibraryPaths().catalog
    data = bytearray(catalog.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[-page:] = b"\xa5" * page  # a disk fault in the last page
    catalog.write_bytes(bytes(data))
    damaged = catalog.read_bytes()
    write_sound(folder / "new_kick.wav", family_sound("kick", 9))
    capsys.readouterr()
    assert main(["index"]) == 1
    err = capsys.readouterr().err
    assert "is damaged" in err and "nothing was written" in err
    assert catalog.read_bytes() == damaged
    assert main(["--json", "doctor"]) == 0  # doctor reports the damage, it does not fall over it
    report = json.loads(capsys.readouterr().out)
    assert report["catalog_check"] != "ok"
    assert isinstance(report["files"], int) or "could not be read" in report["catalog_unreadable"]


def test_plain_text_output_escapes_control_characters_in_file_names(
        tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "samples"
    evil = "kick\n  1  0.999  /etc/passwd \x1b[2J\x1b[31mred\r\t.wav"
    write_sound(folder / evil, family_sound("kick", 1))
    library = Library(model=str(tiny_model))
    try:
        library.index_folders([str(folder)])
    finally:
        library.close()
    capsys.readouterr()
    assert main(["search", "kick", "-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\r" not in out and "\t" not in out
    assert len([line for line in out.splitlines() if line.strip()]) == 1
    assert "kick\\n  1  0.999  /etc/passwd \\x1b[2J\\x1b[31mred\\r\\t.wav" in out
    assert main(["--json", "search", "kick", "-k", "5"]) == 0
    hit = json.loads(capsys.readouterr().out)["results"][0]
    assert hit["path"] == str(folder / evil)  # JSON carries the name exactly


def test_a_csv_with_one_field_over_128_kib_still_gives_its_tags(tmp_path: Path) -> None:
    sheet = tmp_path / "tags.csv"
    sheet.write_text("path,tags,notes\n"
                     "kick.wav,punchy;dusty,short\n"
                     f"pad.wav,warm,{'x' * 200_000}\n"
                     "bass.wav,sub\n", encoding="utf-8")
    tags = read_tags_csv(str(sheet))
    assert tags[str(tmp_path / "kick.wav")] == ["punchy", "dusty", "short"]
    assert tags[str(tmp_path / "pad.wav")] == ["warm"]  # the 200 kB "tag" is skipped
    assert tags[str(tmp_path / "bass.wav")] == ["sub"]


def test_tag_finds_an_indexed_file_through_a_linked_folder(
        tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "drive" / "samples"
    _indexed_library(real, tiny_model, count=1)
    os.symlink(tmp_path / "drive", tmp_path / "shortcut")
    capsys.readouterr()
    through_link = tmp_path / "shortcut" / "samples" / "kick_0.wav"
    assert main(["--json", "tag", str(through_link), "--add", "mine"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["files"][0]["path"] == str(real / "kick_0.wav")
    assert "mine" in out["files"][0]["user_tags"]
    # And a library folder added through a link, tagged by the real path.
    linked_root = tmp_path / "linked-root"
    os.symlink(real, linked_root)
    assert main(["--json", "index", str(linked_root)]) == 0
    capsys.readouterr()
    assert main(["--json", "tag", str(real / "kick_0.wav"), "--add", "again"]) == 0


def _mp3_with_junk(path: Path) -> None:
    t = np.arange(44100 * 2) / 44100
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 44100, format="MP3")
    data = path.read_bytes()
    half = len(data) // 2
    path.write_bytes(data[:half] + b"\x00" * 2000 + data[half:] + b"\x00" * 3000)


@pytest.mark.timeout(300)
def test_libmpg123_notes_stay_off_the_terminal(tmp_path: Path, tiny_model: Path) -> None:
    folder = tmp_path / "samples"
    write_sound(folder / "pad.wav", family_sound("pad", 1))
    _mp3_with_junk(folder / "resync.mp3")
    done = subprocess.run(
        [sys.executable, "-m", "clapdesk", "--model", str(tiny_model), "--json", "index",
         str(folder)], capture_output=True, text=True, env=child_env(), timeout=280)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["indexed"] >= 1
    assert "Note:" not in done.stderr and "mpg123" not in done.stderr, done.stderr
