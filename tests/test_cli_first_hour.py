"""The command line in a producer's first hour: exclusions, hints, usage errors, tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main


@pytest.fixture
def indexed(tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    folder = tmp_path / "samples"
    for i, name in enumerate(["kick_dry", "vocal_chop", "pad_warm", "vocal_hook", "bass_sub"]):
        family = name.split("_")[0] if name.split("_")[0] in ("kick", "pad", "bass") else "fx"
        write_sound(folder / f"{name}.wav", family_sound(family, i))
    assert main(["--model", str(tiny_model), "index", str(folder)]) == 0
    capsys.readouterr()
    return folder


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def found(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    code, out, err = run(capsys, "--json", "search", *argv)
    assert code == 0, err
    return [Path(r["path"]).name for r in json.loads(out)["results"]]


def test_queries_that_start_with_a_minus_are_exclusions_as_the_readme_says(
        capsys: pytest.CaptureFixture[str], indexed: Path) -> None:
    everything = found(capsys, "-k", "10", "sound")
    assert len(everything) == 5
    # The README's example, as one argument and as words of their own, options anywhere.
    for argv in (["-vocal"], ["kick", "-vocal"], ["-vocal", "kick", "-k", "10"],
                 ["-k", "10", "kick -vocal"], ["--", "-vocal"], ["-vocal", "-k10"]):
        names = found(capsys, *argv)
        assert names and not any("vocal" in n for n in names), (argv, names)
    assert len(found(capsys, "-vocal", "-k", "10")) == 3
    # "-k" followed by its value is still the option, and a bad option is still an error.
    assert len(found(capsys, "pad", "-k", "2")) == 2
    code, _, err = run(capsys, "search", "kick", "-k", "0")
    assert code == 2 and "-k must be at least 1" in err


def test_search_and_similar_on_an_empty_library_say_to_index(
        capsys: pytest.CaptureFixture[str], tiny_model: Path, tmp_path: Path) -> None:
    sound = write_sound(tmp_path / "elsewhere" / "kick.wav", family_sound("kick", 1))
    for argv in (["search", "kick"], ["similar", str(sound)]):
        code, out, err = run(capsys, "--model", str(tiny_model), *argv)
        assert code == 1 and out == ""
        assert "clapdesk index FOLDER" in err and "no results" not in out, err


def test_similar_to_a_file_that_is_not_audio_is_a_plain_message(
        capsys: pytest.CaptureFixture[str], indexed: Path, tmp_path: Path) -> None:
    notes = tmp_path / "notes.wav"
    notes.write_text("these are my notes, not a sound")
    code, _, err = run(capsys, "similar", str(notes))
    assert code == 1
    assert "unexpected error" not in err and "DecodeError" not in err
    assert "cannot be read as a sound" in err and str(notes) in err


def test_usage_errors_exit_2_with_a_hint(capsys: pytest.CaptureFixture[str],
                                          indexed: Path) -> None:
    code, out, err = run(capsys, "search", "")
    assert code == 2 and out == "" and "the query is empty" in err and "clapdesk search" in err
    code, out, err = run(capsys, "search", "kick", "--format", "mp4")
    assert code == 2 and "no results" not in out
    assert "mp4" in err and "WAV" in err and "FLAC" in err and "MP3" in err
    assert found(capsys, "kick", "--format", "wav", "-k", "9")  # a known one still works
    code, _, err = run(capsys, "similar", str(indexed / "kick_dry.wav"), "-k", "0")
    assert code == 2
    code, _, err = run(capsys, "models", "activate")
    assert code == 2 and "VERSION" in err


def test_a_rescan_counts_the_files_that_still_fail(capsys: pytest.CaptureFixture[str],
                                                   indexed: Path) -> None:
    for i in range(3):
        (indexed / f"broken_{i}.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEnot really audio")
    code, out, _ = run(capsys, "index", str(indexed))
    assert code == 0 and "failed 3" in out
    code, out, _ = run(capsys, "index")  # nothing changed: the same three still fail
    assert code == 0 and "failed 3" in out, out
    assert out.count("still failing:") == 3
    code, out, _ = run(capsys, "--json", "index")
    assert len(json.loads(out)["still_failing"]) == 3


def test_tags_split_on_commas_refuse_a_missing_hide_and_list_alone(
        capsys: pytest.CaptureFixture[str], indexed: Path) -> None:
    kick = str(indexed / "kick_dry.wav")
    code, out, err = run(capsys, "--json", "tag", kick, "--add", "club kick, techno")
    assert code == 0, err
    assert json.loads(out)["files"][0]["user_tags"] == ["club kick", "techno"]

    # Listing alone changes nothing.
    code, out, err = run(capsys, "tag", kick)
    assert code == 0, err
    assert out.startswith(kick) and "club kick, techno" in out

    code, out, err = run(capsys, "tag", kick, "--hide", "no-such-tag")
    assert code == 1 and "has no tag 'no-such-tag'" in err
    code, out, err = run(capsys, "tag", kick, "--hide", "techno")
    assert code == 1 and "your own tag" in err
    # A tag it has is hidden, and no longer listed.
    code, out, _ = run(capsys, "--json", "tag", kick)
    automatic = [t for t in json.loads(out)["files"][0]["tags"] if t not in ("club kick", "techno")]
    assert automatic
    code, out, err = run(capsys, "--json", "tag", kick, "--hide", automatic[0])
    assert code == 0, err
    assert automatic[0] not in json.loads(out)["files"][0]["tags"]
