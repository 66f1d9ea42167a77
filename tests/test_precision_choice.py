"""The automatic precision: chosen on the producer's files, kept once made, overridden by a setting."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from modelfactory import family_sound

FAMILIES = ("kick", "hihat", "pad", "bass", "noise")


def _write_library(folder: Path, count: int = 24) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        family = FAMILIES[i % len(FAMILIES)]
        sf.write(folder / f"{family}_{i:02d}.wav", family_sound(family, i, rate=44100), 44100)
    return folder


def _files(folder: Path) -> list[str]:
    return sorted(str(p) for p in folder.glob("*.wav"))


def test_overlap_is_one_for_the_same_vectors_and_falls_with_changed_ones() -> None:
    from clapdesk.core.index.precision_choice import top_k_overlap

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((40, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    text = rng.standard_normal((6, 16)).astype(np.float32)
    assert top_k_overlap(vectors, vectors.copy(), text) == {"text": 1.0, "sound_alike": 1.0}
    shuffled = vectors[rng.permutation(40)]
    changed = top_k_overlap(vectors, shuffled, text)
    assert changed["text"] < 0.6 and changed["sound_alike"] < 0.6


def test_a_cpu_without_native_support_stays_float32(tiny_model: Path, tmp_path: Path) -> None:
    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.index.precision_choice import decide, native_precisions

    assert native_precisions(frozenset({"sse4_2", "fma"})) == []
    assert native_precisions(frozenset({"avx2", "fma"})) == ["int8"]
    assert native_precisions(frozenset({"avx512_vnni"})) == ["int8"]
    assert native_precisions(frozenset({"amx_bf16", "amx_int8"})) == ["bfloat16", "int8"]
    embedder = load_embedder(str(tiny_model), device="cpu")
    choice = decide(embedder, _files(_write_library(tmp_path / "lib")), native=[])
    assert choice.precision == "float32" and "natively" in choice.reason


def test_a_candidate_that_loses_results_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    import torch

    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.embed.fast_tower import TowerOutput
    from clapdesk.core.index.precision_choice import decide

    embedder = load_embedder(str(tiny_model), device="cpu")
    generator = torch.Generator().manual_seed(3)

    def bad(mel, longer):  # noqa: ANN001, ANN202
        # Fast, but its features are noise: search would return other sounds.
        return TowerOutput(torch.randn(len(mel), embedder.feature_dim, generator=generator))

    choice = decide(embedder, _files(_write_library(tmp_path / "lib")), native=["bfloat16"],
                    towers={"bfloat16": bad})
    assert choice.precision == "float32"
    assert "bfloat16 changed search results" in choice.reason
    overlap = choice.figures["bfloat16"]["top10_overlap"]
    assert min(overlap.values()) < 0.95
    assert choice.figures["bfloat16"]["speedup"] > 1.0  # refused for its results, not its speed


def test_a_faster_candidate_that_keeps_results_is_taken(tiny_model: Path, tmp_path: Path) -> None:
    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.index.precision_choice import decide

    embedder = load_embedder(str(tiny_model), device="cpu")
    exact = embedder.fast_tower

    def slow(mel, longer):  # noqa: ANN001, ANN202
        time.sleep(0.25)  # far more than the timing noise of a busy machine
        return exact(mel, longer)

    # float32 made slow; the "candidate" is float32's own tower, so it keeps every result.
    embedder.fast_tower = slow
    choice = decide(embedder, _files(_write_library(tmp_path / "lib")), native=["int8"],
                    towers={"int8": exact})
    assert choice.precision == "int8" and choice.decided_now
    assert choice.figures["int8"]["top10_overlap"] == {"text": 1.0, "sound_alike": 1.0}
    assert choice.figures["int8"]["speedup"] >= 1.15
    assert "faster than float32" in choice.reason and "natively" in choice.reason
    # One that keeps the results but is slower is not taken.
    embedder.fast_tower = exact
    choice = decide(embedder, _files(tmp_path / "lib"), native=["int8"], towers={"int8": slow})
    assert choice.precision == "float32" and "no reduced precision was clearly faster" in choice.reason


def test_too_few_files_leave_the_choice_for_a_later_run(tiny_model: Path, tmp_path: Path) -> None:
    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.index.precision_choice import decide

    embedder = load_embedder(str(tiny_model), device="cpu")
    files = _files(_write_library(tmp_path / "lib", count=6))
    assert decide(embedder, files, native=["bfloat16"]) is None


def test_first_indexing_decides_once_and_the_catalog_keeps_it(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.index import precision_choice
    from clapdesk.core.library import Library

    folder = _write_library(tmp_path / "samples")
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    report = library.index_folders([str(folder)])
    choice = report.precision
    assert choice is not None and choice.decided_now and choice.automatic
    assert report.indexed == 24
    # Whatever this CPU chose, the model indexed in it, and the reason is in the report.
    assert library.embedder().precision == choice.precision
    assert report.to_json()["precision"]["note"].startswith(f"precision: {choice.precision}")
    raw = library.catalog.get_meta(precision_choice.meta_key(library.identity.encoder_key))
    assert json.loads(raw)["precision"] == choice.precision
    library.close()

    # The next start loads the stored choice and decides nothing again.
    monkeypatch.setattr(precision_choice, "decide", lambda *a, **k: pytest.fail("decided again"))
    again = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    assert again.embedder().precision == choice.precision
    later = again.index_folders([str(folder)])
    assert later.precision.precision == choice.precision and not later.precision.decided_now
    again.close()


def test_the_sample_the_choice_embedded_is_not_embedded_again_by_the_indexer(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.index import precision_choice
    from clapdesk.core.ingest import audio
    from clapdesk.core.library import Library

    # int8 is a candidate whatever this CPU runs, and keeps too little, so float32 stays.
    monkeypatch.setattr(precision_choice, "native_precisions", lambda *a: ["int8"])
    monkeypatch.setattr(precision_choice, "KEEPS_RESULTS", 1.01)
    folder = _write_library(tmp_path / "samples", count=50)
    sample = set(precision_choice.sample_files([str(folder)]))
    assert len(sample) == precision_choice.SAMPLE_FILES
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    embedder = library.embedder()
    windows = {p: audio.decode_for_index(p, embedder.sampling_rate).windows for p in _files(folder)}
    sent: list[int] = []
    real = embedder.features_for

    def counting(chunk):  # noqa: ANN001, ANN202
        sent.append(len(chunk))
        return real(chunk)

    monkeypatch.setattr(embedder, "features_for", counting)
    phases: list[str] = []
    report = library.index_folders([str(folder)], progress=lambda p: phases.append(p.phase))
    assert report.precision.precision == "float32" and report.precision.decided_now
    # The progress said what the minute before the first file was heard went to.
    assert "choosing precision" in phases
    assert phases.index("choosing precision") < phases.index("embedding")
    assert report.indexed == 50 and not report.failed
    # Only the ten files outside the sample went through the audio tower during indexing.
    assert sum(sent) == sum(len(w) for p, w in windows.items() if p not in sample)
    # And the sample's features are the ones the model gives those files, every one stored.
    ids, stored = library.catalog.features(embedder.encoder_key)
    by_id = dict(zip(ids.tolist(), stored, strict=True))
    for path in sorted(sample)[:8]:
        expected = real(windows[path]).mean(axis=0)
        got = by_id[library.catalog.file_by_path(path).id]
        assert np.abs(got - expected).max() <= 1e-5 * max(1.0, np.abs(expected).max())
    library.close()


def test_a_precision_set_by_the_producer_wins_over_the_stored_choice(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.index import precision_choice
    from clapdesk.core.index.precision_choice import PrecisionChoice
    from clapdesk.core.library import Library

    folder = _write_library(tmp_path / "samples")
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    key = precision_choice.meta_key(library.identity.encoder_key)
    library.catalog.set_meta(key, PrecisionChoice("int8", True, "test").to_meta())
    assert library.embedder().precision == "int8"
    library.close()
    monkeypatch.setattr(precision_choice, "settle", lambda *a, **k: pytest.fail("chose anyway"))
    forced = Library(root=tmp_path / "lib", model=str(tiny_model), precision="float32")
    report = forced.index_folders([str(folder)])
    assert forced.embedder().precision == "float32" and report.precision is None
    assert "precision" not in report.to_json()
    forced.close()


def test_the_cli_says_which_precision_and_its_flag_overrides(
        tiny_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from clapdesk.cli import main

    folder = _write_library(tmp_path / "samples")
    library = str(tmp_path / "lib")
    assert main(["--library", library, "--model", str(tiny_model), "index", str(folder)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if "precision:" in x)
    assert "chosen automatically" in line
    assert main(["--library", library, "--model", str(tiny_model), "--precision", "float32",
                 "--json", "index", str(folder)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert "precision" not in result
