"""The fast paths of indexing really are the ones taken: each file's sound is embedded once,
in batches, through the batched log-mel rather than the reference extractor."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound

from clapdesk.core import indexer
from clapdesk.core.library import Library
from clapdesk.core.model import ClapEmbedder


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of windows in every call to the model (the real method still runs)."""
    calls: list[int] = []
    real = ClapEmbedder.features_for

    def spy(self: ClapEmbedder, windows):
        calls.append(len(windows))
        return real(self, windows)

    monkeypatch.setattr(ClapEmbedder, "features_for", spy)
    return calls


def sample_folder(root: Path) -> Path:
    write_sound(root / "drums" / "kick.wav", family_sound("kick", 1))
    write_sound(root / "drums" / "hat.wav", family_sound("hihat", 2, rate=48000), rate=48000)
    write_sound(root / "synths" / "pad.wav", family_sound("pad", 3, rate=22050, seconds=12.0),
                rate=22050)
    write_sound(root / "synths" / "bass.wav", family_sound("bass", 4), subtype="PCM_24")
    return root


def test_identical_files_are_embedded_once(tiny_model: Path, tmp_path: Path,
                                           model_calls: list[int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Small batches, so copies land both in the batch of their original and in later ones.
    monkeypatch.setattr(indexer, "BATCH_WINDOWS", 2)
    folder = sample_folder(tmp_path / "samples")
    shutil.copy(folder / "drums" / "kick.wav", folder / "drums" / "kick copy.wav")
    (folder / "zz later").mkdir()
    shutil.copy(folder / "synths" / "pad.wav", folder / "zz later" / "pad again.wav")
    shutil.copy(folder / "drums" / "hat.wav", folder / "zz later" / "hat again.wav")
    library = Library(model=str(tiny_model))
    report = library.index_folders([str(folder)])
    assert report.indexed == 7 and report.duplicates == 3 and not report.failed
    # kick, hat and bass are one window each, the 12 s pad two: five windows, each embedded once,
    # in calls of exactly BATCH_WINDOWS (the pad's two windows straddle two calls) but the last.
    assert sum(model_calls) == 5
    assert model_calls == [2, 2, 1]
    copies = [("drums/kick.wav", "drums/kick copy.wav"), ("synths/pad.wav", "zz later/pad again.wav"),
              ("drums/hat.wav", "zz later/hat again.wav")]
    for original, copy in copies:
        a = library.catalog.file_by_path(str(folder / original))
        b = library.catalog.file_by_path(str(folder / copy))
        assert a is not None and b is not None and a.id != b.id
        _, vectors = library.catalog.vectors(library.model_key, [a.id, b.id])
        assert len(vectors) == 2 and np.array_equal(vectors[0], vectors[1])

    # A copy that turns up in a later run is not embedded either.
    model_calls.clear()
    shutil.copy(folder / "synths" / "bass.wav", folder / "synths" / "bass copy.wav")
    again = library.index_folders([str(folder)])
    assert again.indexed == 1 and again.duplicates == 1 and model_calls == []
    library.close()


def test_indexing_uses_the_batched_log_mel(tiny_model: Path, tmp_path: Path,
                                           model_calls: list[int],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.features import BatchedLogMel

    mel_batches: list[int] = []
    real_mel = BatchedLogMel.__call__

    def mel_spy(self: BatchedLogMel, waves, sampling_rate=None):
        mel_batches.append(len(waves))
        return real_mel(self, waves, sampling_rate)

    monkeypatch.setattr(BatchedLogMel, "__call__", mel_spy)
    folder = sample_folder(tmp_path / "samples")
    library = Library(model=str(tiny_model))
    embedder = library.embedder()

    def reference_called(*args, **kwargs):
        raise AssertionError("the reference feature extractor ran in the indexing path")

    monkeypatch.setattr(embedder, "feature_extractor", reference_called)
    report = library.index_folders([str(folder)])
    assert report.indexed == 4 and not report.failed
    assert sum(mel_batches) == sum(model_calls) == 5
    # Windows go to the model together, not one file at a time.
    assert max(model_calls) > 1
    assert all(n <= max(indexer.BATCH_WINDOWS, 2) for n in model_calls)
    library.close()


def test_int8_mode_quantises_the_audio_tower_and_stays_close(tiny_model: Path) -> None:
    import torch

    from clapdesk.core.model import load_embedder

    exact = load_embedder(str(tiny_model), device="cpu")
    fast = load_embedder(str(tiny_model), device="cpu", precision="int8")
    quantised = [m for m in fast.model.audio_model.modules()
                 if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    assert quantised, "int8 mode left every Linear layer in float32"
    assert not any(isinstance(m, torch.ao.nn.quantized.dynamic.Linear)
                   for m in fast.model.text_model.modules()), "text vectors must stay float32"
    windows = [family_sound(kind, i, rate=exact.sampling_rate)
               for i, kind in enumerate(("kick", "hihat", "pad", "bass"))]
    a = exact.project_audio(exact.features_for(windows))
    b = fast.project_audio(fast.features_for(windows))
    assert np.all(np.sum(a * b, axis=1) > 0.98)
    assert np.array_equal(exact.embed_text(["dark kick"]), fast.embed_text(["dark kick"]))


def test_a_query_is_encoded_on_one_thread_and_the_setting_restored(tiny_model: Path) -> None:
    import torch

    from clapdesk.core.model import load_embedder

    embedder = load_embedder(str(tiny_model), device="cpu")
    seen: list[int] = []
    real_forward = embedder.model.text_model.forward

    def watching(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real_forward(*args, **kwargs)

    embedder.model.text_model.forward = watching
    before = torch.get_num_threads()
    query = embedder.embed_text(["punchy kick"])
    many = embedder.embed_text([f"the sound of {w}" for w in ("kick", "snare", "pad", "bass", "fx")])
    assert seen == [1, before]  # a query on one thread; a batch of prompts on all of them
    assert torch.get_num_threads() == before
    assert query.shape == (1, embedder.dim) and many.shape == (5, embedder.dim)
