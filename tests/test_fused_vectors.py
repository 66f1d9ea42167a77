"""The fused checkpoint's vectors are repeatable: same file, same vector, whatever the batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from conftest import family_sound, tone, write_sound

from clapdesk.core.embed.embedder import ClapEmbedder
from clapdesk.core.embed.hub import resolve_model
from clapdesk.core.ingest import audio
from clapdesk.core.library import Library


def windows_of(tmp_path: Path, names: list[str]) -> dict[str, list[np.ndarray]]:
    out = {}
    for i, name in enumerate(names):
        path = write_sound(tmp_path / f"{name}.wav", family_sound(name, i))
        out[name] = audio.decode_for_index(path, 48000).windows
    return out


def test_the_same_clip_gives_the_same_vector_in_any_batch(fused_model: Path,
                                                          tmp_path: Path) -> None:
    embedder = ClapEmbedder(resolve_model(str(fused_model)))
    assert embedder.model.config.audio_config.enable_fusion
    assert embedder.feature_extractor.truncation == "fusion"
    clips = windows_of(tmp_path, ["kick", "pad", "hihat", "bass"])
    alone = embedder.pooled_features([clips["kick"]])[0]
    for seed, layout in enumerate((["pad", "kick", "hihat"], ["hihat", "bass", "pad", "kick"],
                                   ["kick", "kick"])):
        np.random.seed(seed)  # the reference extractor drew its "longer" clip from here
        batch = embedder.pooled_features([clips[n] for n in layout])
        assert np.allclose(batch[layout.index("kick")], alone, atol=1e-5, rtol=0), layout

    # The check above can fail: marking the clip "longer", as the stock extractor does with a
    # random clip of each batch, sends it through the fusion branch and changes its feature.
    inputs = embedder._fast_mel(clips["kick"])
    with torch.inference_mode():
        longer = embedder.model.audio_model(
            input_features=inputs["input_features"],
            is_longer=torch.ones((1, 1), dtype=torch.bool)).pooler_output[0].numpy()
    assert not np.allclose(longer, alone, atol=1e-3)


def test_two_libraries_store_identical_vectors(fused_model: Path, tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    for i, family in enumerate(["kick", "pad", "hihat", "bass", "kick"]):
        write_sound(folder / f"{family}_{i}.wav", family_sound(family, i))
    write_sound(folder / "long.wav", tone(25.0, 44100, seed=3))  # three windows, pooled
    stored = []
    for name, workers in (("first", 1), ("second", 2)):
        library = Library(tmp_path / name, model=str(fused_model))
        try:
            report = library.index_folders([str(folder)], workers=workers)
            assert report.indexed == 6 and not report.failed
            ids, matrix = library.catalog.vectors(library.model_key)
            paths = {r.id: r.path for r in library.catalog.files(list(map(int, ids)))}
            stored.append({paths[int(i)]: row for i, row in zip(ids, matrix)})
        finally:
            library.close()
    assert stored[0].keys() == stored[1].keys()
    for path, vector in stored[0].items():
        assert np.array_equal(vector, stored[1][path]), path
