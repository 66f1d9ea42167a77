"""The text tower's health check: untrained towers are refused for text search, trained ones pass."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.embed import health
from clapdesk.core.embed.embedder import ClapEmbedder
from clapdesk.core.embed.hub import resolve_model
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import search_similar, search_text


def make_samples(folder: Path) -> Path:
    for i, family in enumerate(["kick", "hihat", "pad", "bass", "kick", "pad"]):
        write_sound(folder / f"{family}_{i}.wav", family_sound(family, i))
    return folder


def test_spread_is_the_mean_cosine_of_different_captions() -> None:
    same = np.ones((5, 4), np.float32)
    assert health.text_spread(same) == pytest.approx(1.0)
    orthogonal = np.eye(4, dtype=np.float32) * 3.0  # lengths do not matter
    assert health.text_spread(orthogonal) == pytest.approx(0.0)
    # The limit lies between the trained checkpoints' published spreads and untrained ones'.
    assert 0.29 < health.TEXT_SPREAD_LIMIT < 0.98


def test_the_test_models_pass_and_the_random_one_is_flagged(
        tiny_model: Path, tiny_model_b: Path, untrained_model: Path) -> None:
    spreads = {}
    for name, folder in (("tiny", tiny_model), ("tiny_b", tiny_model_b),
                         ("untrained", untrained_model)):
        embedder = ClapEmbedder(resolve_model(str(folder)))
        spreads[name] = embedder.text_health.text_spread
        assert embedder.text_health.probes == len(health.PROBE_CAPTIONS)
    print("text spreads:", {k: round(v, 4) for k, v in spreads.items()})
    assert spreads["tiny"] < 0.5 and spreads["tiny_b"] < 0.5
    assert spreads["untrained"] > 0.95  # 0.985 for this seed; the limit is 0.7
    assert ClapEmbedder(resolve_model(str(tiny_model))).text_search_ok


def test_the_result_is_kept_per_model_and_costs_nothing_next_time(tiny_model: Path) -> None:
    identity = resolve_model(str(tiny_model))
    first = ClapEmbedder(identity).text_health
    assert not first.cached and first.seconds > 0
    again = ClapEmbedder(identity).text_health
    assert again.cached and again.text_spread == pytest.approx(first.text_spread)
    assert health.cached(identity.encoder_key) == again


def test_a_flagged_model_serves_sound_alikes_but_refuses_text_search(
        untrained_model: Path, tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "samples")
    library = Library(model=str(untrained_model))
    try:
        library.index_folders([str(samples)])
        with pytest.raises(health.TextSearchOff) as caught:
            search_text(library, "kick", k=3)
        message = str(caught.value)
        assert untrained_model.name in message and "laion/larger_clap_general" in message
        assert "Sound-alikes still work" in message and "\n" not in message
        alike = search_similar(library, str(samples / "kick_0.wav"), k=3).hits
        assert len(alike) == 3
        # A query made only of constraints needs no text vector, so it still works.
        assert search_text(library, "one-shot", k=10).hits
    finally:
        library.close()


def test_cli_text_search_exits_1_with_one_line_and_doctor_shows_health(
        untrained_model: Path, tiny_model: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    samples = make_samples(tmp_path / "samples")
    library = tmp_path / "lib"
    assert main(["--library", str(library), "--model", str(untrained_model), "index",
                 str(samples)]) == 0
    capsys.readouterr()
    env_cmd = [sys.executable, "-m", "clapdesk", "--library", str(library), "search", "kick"]
    done = subprocess.run(env_cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("clapdesk: Text search is off for "), lines
    assert untrained_model.name in lines[0] and "--model laion/larger_clap_general" in lines[0]

    assert main(["--library", str(library), "--json", "doctor"]) == 0
    doctor = json.loads(capsys.readouterr().out)
    assert doctor["model_health"]["text_ok"] is False
    assert doctor["model_health"]["text_spread"] > 0.98
    assert doctor["model_health"]["cached"] is True  # measured by the search: no model load

    other = tmp_path / "lib-ok"
    assert main(["--library", str(other), "--model", str(tiny_model), "index",
                 str(samples)]) == 0
    capsys.readouterr()
    assert main(["--library", str(other), "--json", "doctor"]) == 0
    doctor = json.loads(capsys.readouterr().out)
    assert doctor["model_health"]["text_ok"] is True
    assert doctor["model_health"]["text_spread"] < 0.5


def test_a_fine_tuned_version_is_checked_too(tiny_model: Path, tmp_path: Path) -> None:
    import copy

    import torch

    from clapdesk.core.finetune import versions

    samples = make_samples(tmp_path / "samples")
    library = Library(model=str(tiny_model))
    try:
        library.index_folders([str(samples)])
        embedder = library.embedder()
        assert embedder.text_search_ok
        collapsed = copy.deepcopy(embedder.model.text_projection)
        with torch.no_grad():  # a head that maps every caption to one vector
            collapsed.linear2.weight.zero_()
            collapsed.linear2.bias.fill_(0.1)
        info = {"base": embedder.encoder_key}
        versions.save_version(library.paths.models, "collapsed",
                              embedder.model.audio_projection, collapsed, info)
        versions.activate(library, "collapsed")
        assert library.embedder().text_health.model_key == library.model_key
        assert not library.embedder().text_search_ok
        with pytest.raises(health.TextSearchOff, match="clapdesk models revert"):
            search_text(library, "kick", k=3)
        versions.revert(library)
        assert library.embedder().text_search_ok
        assert search_text(library, "kick", k=2).hits
    finally:
        library.close()


def test_a_library_keeps_the_exact_commit_of_its_vectors(hub_model: str, tmp_path: Path) -> None:
    samples = make_samples(tmp_path / "samples")
    library = Library(model=hub_model, allow_download=False)
    try:
        library.index_folders([str(samples)])
        identity = library.identity
        assert identity.revision == "a" * 40  # the snapshot's commit, as the hub cache names it
        assert library.catalog.get_meta(f"revision:{identity.encoder_key}") == identity.revision
    finally:
        library.close()
