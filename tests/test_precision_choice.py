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
    from clapdesk.core.index.precision_choice import native_precisions
    from clapdesk.core.index.precision_trial import choose_on_files

    assert native_precisions(frozenset({"sse4_2", "fma"})) == []
    assert native_precisions(frozenset({"avx2", "fma"})) == ["int8"]
    assert native_precisions(frozenset({"avx512_vnni"})) == ["int8"]
    assert native_precisions(frozenset({"amx_bf16", "amx_int8"})) == ["bfloat16", "int8"]
    embedder = load_embedder(str(tiny_model), device="cpu")
    choice = choose_on_files(embedder, _files(_write_library(tmp_path / "lib")), native=[])
    assert choice.precision == "float32" and "natively" in choice.reason


def test_a_candidate_that_loses_results_is_refused(tiny_model: Path, tmp_path: Path) -> None:
    import torch

    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.embed.fast_tower import TowerOutput
    from clapdesk.core.index.precision_trial import choose_on_files

    embedder = load_embedder(str(tiny_model), device="cpu")
    generator = torch.Generator().manual_seed(3)

    def bad(mel, longer):  # noqa: ANN001, ANN202
        # Fast, but its features are noise: search would return other sounds.
        return TowerOutput(torch.randn(len(mel), embedder.feature_dim, generator=generator))

    choice = choose_on_files(embedder, _files(_write_library(tmp_path / "lib")), native=["bfloat16"],
                    towers={"bfloat16": bad})
    assert choice.precision == "float32"
    assert "bfloat16 changed search results" in choice.reason
    overlap = choice.figures["bfloat16"]["top10_overlap"]
    assert min(overlap.values()) < 0.95
    assert choice.figures["bfloat16"]["speedup"] > 1.0  # refused for its results, not its speed


def test_a_faster_candidate_that_keeps_results_is_taken(tiny_model: Path, tmp_path: Path) -> None:
    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.index.precision_trial import choose_on_files

    embedder = load_embedder(str(tiny_model), device="cpu")
    exact = embedder.fast_tower

    def slow(mel, longer):  # noqa: ANN001, ANN202
        time.sleep(0.25)  # far more than the timing noise of a busy machine
        return exact(mel, longer)

    # float32 made slow; the "candidate" is float32's own tower, so it keeps every result.
    embedder.fast_tower = slow
    choice = choose_on_files(embedder, _files(_write_library(tmp_path / "lib")), native=["int8"],
                    towers={"int8": exact})
    assert choice.precision == "int8" and choice.decided_now
    assert choice.figures["int8"]["top10_overlap"] == {"text": 1.0, "sound_alike": 1.0}
    assert choice.figures["int8"]["speedup"] >= 1.15
    assert "faster than float32" in choice.reason and "natively" in choice.reason
    # One that keeps the results but is slower is not taken.
    embedder.fast_tower = exact
    choice = choose_on_files(embedder, _files(tmp_path / "lib"), native=["int8"], towers={"int8": slow})
    assert choice.precision == "float32" and "no reduced precision was clearly faster" in choice.reason


def test_too_few_files_leave_the_choice_for_a_later_run(tiny_model: Path, tmp_path: Path) -> None:
    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.index.precision_trial import choose_on_files

    embedder = load_embedder(str(tiny_model), device="cpu")
    files = _files(_write_library(tmp_path / "lib", count=6))
    assert choose_on_files(embedder, files, native=["bfloat16"]) is None


def test_first_indexing_decides_once_and_the_catalog_keeps_it(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.index import precision_choice
    from clapdesk.core.index.precision_trial import PrecisionTrial
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
    monkeypatch.setattr(PrecisionTrial, "prepare", lambda *a, **k: pytest.fail("decided again"))
    again = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    assert again.embedder().precision == choice.precision
    later = again.index_folders([str(folder)])
    assert later.precision.precision == choice.precision and not later.precision.decided_now
    again.close()


def test_the_choice_is_made_on_the_first_files_and_the_rest_runs_in_the_winner(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.index.indexer import BATCH_WINDOWS
    from clapdesk.core.index.precision_trial import PrecisionTrial, pick_sample
    from clapdesk.core.ingest import audio
    from clapdesk.core.library import Library

    folder = _write_library(tmp_path / "samples", count=60)
    paths = _files(folder)
    sample = set(pick_sample(paths))
    assert 20 <= len(sample) < len(paths)
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    embedder = library.embedder()
    windows = {p: len(audio.decode_for_index(p, embedder.sampling_rate).windows) for p in paths}
    exact = embedder.fast_tower
    through: dict[str, int] = {"float32": 0, "int8": 0}

    def slow_float32(mel, longer):  # noqa: ANN001, ANN202
        through["float32"] += len(mel)
        time.sleep(0.1)  # far more than the timing noise of a busy machine
        return exact(mel, longer)

    searchable_at_first_candidate: list[int] = []

    def candidate(mel, longer):  # noqa: ANN001, ANN202
        # float32's own tower: it keeps every result, and it is faster than the slowed one.
        if not searchable_at_first_candidate:
            searchable_at_first_candidate.append(len(library.vector_index()))
        through["int8"] += len(mel)
        return exact(mel, longer)

    embedder.fast_tower = slow_float32
    prepare = PrecisionTrial.prepare
    monkeypatch.setattr(PrecisionTrial, "prepare", lambda e: prepare(
        e, native=["int8"], towers={"int8": candidate}))
    seen: list[tuple[str, int, tuple[str, ...]]] = []
    told: list[tuple[tuple[str, ...], float | None, float | None]] = []

    def progress(p) -> None:  # noqa: ANN001
        seen.append((p.phase, p.done, p.comparing))
        told.append((p.comparing, p.eta_low, p.eta))

    report = library.index_folders([str(folder)], progress=progress)
    choice = report.precision
    assert choice.precision == "int8" and choice.decided_now
    assert choice.figures["files"] == len(sample)
    assert choice.figures["int8"]["top10_overlap"] == {"text": 1.0, "sound_alike": 1.0}
    assert report.indexed == 60 and not report.failed
    # The sample went first, and its files were searchable while the choice was being made:
    # the progress said "comparing" over files already embedded, and nothing before them.
    # (Events in the order the indexer took the files; the decoders may finish out of order.)
    order = [detail for _, event, detail in library.timeline.events if event == "decoded"]
    assert len(order) == 60 and set(order[:len(sample)]) == sample
    comparing = [done for phase, done, trying in seen if trying == ("int8",)]
    assert comparing and comparing[0] == 1 and max(comparing) >= len(sample) - 1
    assert all(phase != "choosing precision" for phase, _, _ in seen)
    # While comparing, the time left is a range once the candidate has been timed: from its
    # pace (here the faster) to float32's; once the rest runs in the winner, one figure, near
    # the range's fast end.
    ranges = [(low, eta) for trying, low, eta in told if trying and eta is not None]
    assert ranges and all(low is not None and low < eta for low, eta in ranges)
    after = [eta for trying, _, eta in told if not trying and eta is not None]
    assert after and all(low is None for trying, low, _ in told if not trying)
    fast, slow = ranges[-1]
    assert abs(after[0] - fast) < abs(after[0] - slow), (ranges[-3:], after[:3])
    # Every window went through float32 once during the trial or not at all: the sample's,
    # and at most the rest of the trial's last model call; afterwards only the winner ran.
    in_sample = sum(windows[p] for p in sample)
    assert in_sample <= through["float32"] < in_sample + BATCH_WINDOWS
    assert through["int8"] == sum(windows.values())
    assert library.embedder().precision == "int8"
    # The candidate ran only once the first model call's files were in the index: the trial
    # never holds a file back from the search.
    assert searchable_at_first_candidate[0] >= 1
    library.close()


def test_a_trial_whose_towers_cannot_be_built_keeps_float32_and_says_why(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.embed import fast_tower
    from clapdesk.core.index.precision_trial import PrecisionTrial
    from clapdesk.core.library import Library

    built_with_files_in: list[int] = []
    build = fast_tower.build_fast_tower

    def no_tower(model, precision, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if precision == "float32":  # the model's own tower, built as it loads
            return build(model, precision, *args, **kwargs)
        built_with_files_in.append(len(library.vector_index()))
        return None

    monkeypatch.setattr(fast_tower, "build_fast_tower", no_tower)
    prepare = PrecisionTrial.prepare
    monkeypatch.setattr(PrecisionTrial, "prepare", lambda e: prepare(e, native=["int8"]))
    folder = _write_library(tmp_path / "samples", count=30)
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    report = library.index_folders([str(folder)])
    assert report.indexed == 30 and not report.failed
    assert report.precision.precision == "float32"
    assert "no reduced-precision tower could be built" in report.precision.reason
    assert library.embedder().precision == "float32"
    # The build was tried once, after the first files were searchable.
    assert len(built_with_files_in) == 1 and built_with_files_in[0] >= 1
    library.close()


def test_a_run_with_too_few_new_files_leaves_the_choice_for_later(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.index import precision_choice
    from clapdesk.core.index.precision_trial import PrecisionTrial
    from clapdesk.core.library import Library

    monkeypatch.setattr(PrecisionTrial, "prepare", lambda *a, **k: pytest.fail("no trial"))
    folder = _write_library(tmp_path / "samples", count=precision_choice.MIN_FILES - 1)
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    report = library.index_folders([str(folder)])
    assert report.indexed == precision_choice.MIN_FILES - 1 and report.precision is None
    assert library.catalog.get_meta(
        precision_choice.meta_key(library.identity.encoder_key)) is None
    library.close()


def test_the_indexing_thread_never_asks_for_the_device_before_the_model_is_loaded(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asking for the device imports torch: on the indexing thread that held the scan of a new
    folder back by 2.4 s. The model's own load (its thread) is where the device is decided."""
    import threading
    from types import SimpleNamespace

    from clapdesk.core import library as library_module
    from clapdesk.core.library import Library

    asked_on: list[str] = []
    real = library_module.pick_device

    def pick_device(requested=None):  # noqa: ANN001, ANN202
        asked_on.append(threading.current_thread().name)
        return real(requested)

    monkeypatch.setattr(library_module, "pick_device", pick_device)
    folder = _write_library(tmp_path / "samples")
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    indexing = threading.current_thread().name
    report = library.index_folders([str(folder)])
    assert report.indexed == 24 and report.precision is not None
    assert asked_on and indexing not in asked_on, asked_on
    # On a GPU the run has nothing to choose, and records no choice.
    from clapdesk.core.store.catalog import Catalog

    fresh = Library(root=tmp_path / "other", model=str(tiny_model), precision="auto")
    catalog = Catalog(fresh.paths.catalog)
    auto = fresh._auto_precision(catalog)
    assert auto is not None and auto.prepare(SimpleNamespace(device="cuda")) is None
    catalog.close()
    library.close()
    fresh.close()


def test_a_precision_set_by_the_producer_wins_over_the_stored_choice(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.index import precision_choice
    from clapdesk.core.index.precision_choice import PrecisionChoice
    from clapdesk.core.index.precision_trial import PrecisionTrial
    from clapdesk.core.library import Library

    folder = _write_library(tmp_path / "samples")
    library = Library(root=tmp_path / "lib", model=str(tiny_model), precision="auto")
    key = precision_choice.meta_key(library.identity.encoder_key)
    library.catalog.set_meta(key, PrecisionChoice("int8", True, "test").to_meta())
    assert library.embedder().precision == "int8"
    library.close()
    monkeypatch.setattr(PrecisionTrial, "prepare", lambda *a, **k: pytest.fail("chose anyway"))
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


def test_the_trial_times_float32_only_on_calls_the_candidates_also_ran(tiny_model: Path) -> None:
    from clapdesk.core.embed.embedder import load_embedder
    from clapdesk.core.index.precision_trial import PrecisionTrial

    embedder = load_embedder(str(tiny_model), device="cpu")
    trial = PrecisionTrial.prepare(embedder, towers={"int8": embedder.fast_tower})
    rng = np.random.default_rng(0)
    windows = [0.1 * rng.standard_normal(embedder.window_samples).astype(np.float32)
               for _ in range(4)]
    calls = [trial.embed(embedder, windows) for _ in range(3)]
    assert trial.windows_timed == 0 and not trial.seconds  # the candidates owe all three
    trial.catch_up(embedder)
    # The first call builds kernels: left out for both towers, the other two timed for both.
    assert trial.windows_timed == 8 and set(trial.seconds) == {"float32", "int8"}
    assert all(row.keys() == {"int8"} for call in calls for row in call.candidates)
    trial.embed(embedder, windows)  # a run that ends here: the candidate never runs on it
    assert trial.windows_timed == 8
