"""One file cannot poison search: a float WAV of finite +-3.4e38 samples (which overflow in the
mix-down and the resampler) is indexed with a finite vector, no NaN ever reaches the catalog or
the ANN index, `--json` output is always valid JSON, and a version with NaN heads is refused."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.finetune import versions
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import search_similar

HUGE = np.float32(3.4e38)


def _strict_json(text: str) -> dict:
    def refuse(constant: str) -> None:
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def _vectors(catalog: Path) -> list[np.ndarray]:
    db = sqlite3.connect(catalog)
    try:
        return [np.frombuffer(v, np.float32) for (v,) in db.execute("SELECT vector FROM vectors")]
    finally:
        db.close()


def test_huge_float_samples_give_a_finite_vector_and_valid_json(
        tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "samples"
    good = [write_sound(folder / f"{fam}_{i}.wav", family_sound(fam, i))
            for i, fam in enumerate(["kick", "pad", "bass", "hihat", "kick", "pad"])]
    rng = np.random.default_rng(3)
    loud = np.where(rng.random((44100 * 3, 2)) > 0.5, HUGE, -HUGE).astype(np.float32)
    write_sound(folder / "overflow_stereo.wav", loud, 44100, subtype="FLOAT")
    write_sound(folder / "overflow_mono.wav", loud[:, 0].copy(), 48000, subtype="FLOAT")
    library = Library(model=str(tiny_model))
    try:
        report = library.index_folders([str(folder)])
        assert report.failed == [] and report.indexed == 8
        stored = _vectors(library.paths.catalog)
        assert len(stored) == 8 and all(np.isfinite(v).all() for v in stored)
        # Every good file still finds itself first (recall of the ANN index intact).
        for path in good:
            hits = search_similar(library, str(path), k=3).hits
            assert hits and all(np.isfinite(h.score) for h in hits)
    finally:
        library.close()
    assert main(["--json", "search", "loud noise", "-k", "10"]) == 0
    result = _strict_json(capsys.readouterr().out)
    assert len(result["results"]) == 8


def test_a_version_with_nan_heads_is_refused(tmp_path: Path, tiny_model: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    folder = tmp_path / "samples"
    write_sound(folder / "kick.wav", family_sound("kick", 1))
    library = Library(model=str(tiny_model))
    try:
        library.index_folders([str(folder)])
        embedder = library.embedder()
        audio_head = embedder.model.audio_projection
        text_head = embedder.model.text_projection
        versions.save_version(library.paths.models, "tampered", audio_head, text_head,
                              {"base": embedder.encoder_key})
        state = {k: v.clone() for k, v in audio_head.state_dict().items()}
        first = next(iter(state))
        state[first][..., 0] = float("nan")
        from safetensors.torch import save_file
        save_file(state, str(library.paths.models / "tampered" / versions.AUDIO_HEAD_FILE))
        with pytest.raises(versions.VersionError, match="NaN or infinite weights"):
            versions.activate(library, "tampered")
        assert library.active_version is None
    finally:
        library.close()
    assert main(["models", "activate", "tampered"]) == 1
    assert "NaN or infinite weights" in capsys.readouterr().err
    del torch
