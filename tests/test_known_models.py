"""The table of known checkpoints, `clapdesk models available`, and the one-time notice for
libraries built with a model whose text tower is untrained."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core import model_switch
from clapdesk.core.embed import known_models
from clapdesk.core.embed.hub import DEFAULT_MODEL
from clapdesk.core.library import Library


def test_the_default_has_a_working_text_tower() -> None:
    assert DEFAULT_MODEL == "laion/larger_clap_general"
    default = known_models.known(DEFAULT_MODEL)
    assert default is not None and default.text_search and not default.problems
    music = known_models.known("laion/larger_clap_music")
    assert music is not None and not music.text_search
    assert "untrained" in music.problems[0]
    fused = known_models.known("laion/clap-htsat-fused")
    assert fused is not None and "longer" in fused.problems[0]
    assert known_models.known("someone/else") is None
    assert known_models.recommended_instead("laion/larger_clap_music") == DEFAULT_MODEL


def test_models_available_lists_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--json", "models", "available"]) == 0
    listed = json.loads(capsys.readouterr().out)["models"]
    ids = [m["id"] for m in listed]
    assert ids[0] == DEFAULT_MODEL and "laion/larger_clap_music" in ids and len(ids) == 4
    assert [m["id"] for m in listed if m["default"]] == [DEFAULT_MODEL]
    assert all({"download_mb", "audio_tower", "good_at", "problems"} <= m.keys() for m in listed)
    assert main(["models", "available"]) == 0
    text = capsys.readouterr().out
    assert f"{DEFAULT_MODEL} (default)" in text and "776 MB" in text
    assert "! Its text tower is reported untrained" in text


def test_a_larger_clap_music_library_is_told_once(tiny_model: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    for i, family in enumerate(["kick", "pad", "bass"]):
        write_sound(tmp_path / "samples" / f"{family}_{i}.wav", family_sound(family, i))
    library = Library(model=str(tiny_model))
    library.index_folders([str(tmp_path / "samples")])
    assert model_switch.untrained_text_notice(library) is None  # the tiny model is fine
    library.catalog.set_meta("model", "laion/larger_clap_music")  # as an older clapdesk left it
    library.close()

    assert main(["failures"]) == 0
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clapdesk: note: "), lines
    assert "laion/larger_clap_music" in lines[0] and "untrained" in lines[0]
    assert "re-embeds 3 files, under a minute" in lines[0]
    assert f"clapdesk --model {DEFAULT_MODEL} index" in lines[0]
    assert main(["failures"]) == 0
    assert capsys.readouterr().err == "", "told once"


def test_reembedding_estimate_reads_well() -> None:
    assert known_models.describe_duration(known_models.reembed_seconds(12)) == "under a minute"
    assert known_models.describe_duration(known_models.reembed_seconds(37000)) == \
        "about 1.7 hours"
    assert known_models.describe_duration(known_models.reembed_seconds(3000)) == \
        "about 8 minutes"
