"""Switching a library's model is a decision: said, done with a re-embedding run, never silent.

Two different tiny CLAPs stand for two models; a fine-tuned version of the first is saved with
the first's own heads, so nothing is trained here.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.finetune import versions
from clapdesk.core.library import Library
from clapdesk.core.model_switch import DEFAULT_SECONDS_PER_FILE, plan_switch
from clapdesk.core.search.ranking import search_text


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def results(capsys: pytest.CaptureFixture[str], *argv: str) -> list[str]:
    code, out, err = run(capsys, "--json", *argv)
    assert code == 0, err
    return [r["path"] for r in json.loads(out)["results"]]


@pytest.fixture
def library_on_a(tmp_path: Path, tiny_model: Path) -> Path:
    """Six sounds in two packs, indexed with model A, with a fine-tuned version active."""
    folder = tmp_path / "samples"
    for i, family in enumerate(["kick", "pad", "bass", "kick", "hihat", "pad"]):
        write_sound(folder / f"pack{i % 2}" / f"{family}_{i}.wav", family_sound(family, i))
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])
    embedder = library.embedder()
    versions.save_version(library.paths.models, "ft-mine",
                          copy.deepcopy(embedder.model.audio_projection),
                          copy.deepcopy(embedder.model.text_projection),
                          {"base": embedder.encoder_key})
    versions.activate(library, "ft-mine")
    library.close()
    return folder


def test_naming_another_model_says_what_a_switch_takes_and_changes_nothing(
        capsys: pytest.CaptureFixture[str], library_on_a: Path, tiny_model: Path,
        tiny_model_b: Path) -> None:
    before = results(capsys, "search", "kick", "-k", "6")
    assert len(before) == 6

    code, out, err = run(capsys, "--model", str(tiny_model_b), "search", "kick")
    assert code == 1 and out == "" and "no results" not in out
    assert f"embedded with {tiny_model}" in err
    assert f"clapdesk models switch {tiny_model_b}" in err
    assert "re-embed 6 files" in err and "under a minute" in err

    # Nothing was switched: plain searches still find everything, the version is still active.
    assert results(capsys, "search", "kick", "-k", "6") == before
    code, out, _ = run(capsys, "--json", "models")
    listed = json.loads(out)
    assert listed["active"] == "ft-mine" and [v["name"] for v in listed["versions"]] == ["ft-mine"]
    # Listed under the other model too, as the first model's version.
    code, out, _ = run(capsys, "--model", str(tiny_model_b), "models")
    assert code == 0 and "ft-mine" in out and "(for tiny-clap" in out


def test_a_switch_re_embeds_everything_then_the_library_uses_the_new_model(
        capsys: pytest.CaptureFixture[str], library_on_a: Path, tiny_model: Path,
        tiny_model_b: Path) -> None:
    code, out, err = run(capsys, "models", "switch", str(tiny_model_b))
    assert code == 0, err
    assert "re-embedding 6 files" in err and f"the library now uses {tiny_model_b}" in out
    assert len(results(capsys, "search", "kick", "-k", "6")) == 6  # with B, remembered
    code, out, _ = run(capsys, "--json", "doctor")
    assert json.loads(out)["model"] == str(tiny_model_b)
    code, out, _ = run(capsys, "models")
    assert "ft-mine" in out, "the first model's version must stay visible"

    # Back to A: its vectors never left, so nothing is re-embedded and its version is back.
    code, out, err = run(capsys, "--json", "models", "switch", str(tiny_model))
    assert code == 0, err
    assert json.loads(out)["re_embedded"] == 0
    code, out, _ = run(capsys, "--json", "models")
    assert json.loads(out)["active"] == "ft-mine"
    assert len(results(capsys, "search", "kick", "-k", "6")) == 6


def test_index_with_another_model_is_a_switch_and_a_partial_one_keeps_the_old_model(
        capsys: pytest.CaptureFixture[str], library_on_a: Path, tiny_model: Path,
        tiny_model_b: Path) -> None:
    # Only one pack embedded with B (as a cancelled switch leaves it): still A's library.
    partial = Library(model=str(tiny_model_b))
    plan = plan_switch(partial)
    assert plan is not None and plan.files == 6
    partial.index_folders([str(library_on_a / "pack0")])
    partial.close()
    reopened = Library()
    assert reopened.model_ref == str(tiny_model)
    assert len(search_text(reopened, "kick", k=6).hits) == 6  # on A's vectors
    plan = plan_switch(Library(model=str(tiny_model_b)))
    assert plan is not None and plan.files == 3  # what is left to do
    reopened.close()

    # `index --model B` (one folder named) re-embeds the whole library and switches it.
    code, out, err = run(capsys, "--model", str(tiny_model_b), "index", str(library_on_a / "pack1"))
    assert code == 0, err
    assert "switching the library" in err
    assert Library().model_ref == str(tiny_model_b)
    assert len(results(capsys, "search", "kick", "-k", "6")) == 6


def test_the_estimate_uses_the_measured_speed(library_on_a: Path, tiny_model_b: Path) -> None:
    library = Library(model=str(tiny_model_b))
    library.catalog.set_meta("seconds_per_file", "30")
    plan = plan_switch(library)
    assert plan is not None and plan.seconds == 6 * 30 and plan.estimate == "about 3 minutes"
    library.catalog.set_meta("seconds_per_file", None)
    assert plan_switch(library).seconds == 6 * DEFAULT_SECONDS_PER_FILE
    library.close()
