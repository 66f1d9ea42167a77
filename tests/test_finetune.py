"""Quick fine-tuning on a generated library: better held-out figures, versions, revert, bad input."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound

from clapdesk import cli
from clapdesk.core.finetune.data import (
    FineTuneCancelled,
    FineTuneError,
    FineTuneOptions,
    evaluate,
    parse_sources,
    prepare,
    split,
)
from clapdesk.core.finetune.prompts import (
    SampleTags,
    build_pairs,
    choose_vocabulary,
    is_splice_path,
    pack_of,
    read_tags_csv,
)
from clapdesk.core.finetune.training import run_finetune, versions
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import Filters, search_text

FAMILIES = ("kick", "hihat", "pad", "bass", "noise")
PACKS = ("Dusty Vault", "Neon Drums", "Cold Steel")
PER_FAMILY = 4  # a held-out pack of 20 files, so Recall@10 is not trivially 1


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """One indexed library for the module (indexing is the slow part); tests work on copies."""
    base = tmp_path_factory.mktemp("finetune")
    samples = base / "samples"
    for p, pack in enumerate(PACKS):
        for family in FAMILIES:
            for i in range(PER_FAMILY):
                write_sound(samples / pack / family / f"{family}_{i + 1:02d}.wav",
                            family_sound(family, 100 * p + i, seconds=0.5))
    for family in FAMILIES[:3]:  # a Splice downloads folder: excluded unless asked for
        write_sound(samples / "Splice" / "sounds" / f"{family}_splice.wav",
                    family_sound(family, 999, seconds=0.5))
    library = Library(base / "library", model=str(tiny_model))
    report = library.index_folders([str(samples)])
    library.close()
    assert report.indexed == len(PACKS) * len(FAMILIES) * PER_FAMILY + 3
    return base


@pytest.fixture
def library(indexed: Path, tmp_path: Path, tiny_model: Path):
    root = tmp_path / "library"
    shutil.copytree(indexed / "library", root)
    lib = Library(root, model=str(tiny_model))
    yield lib
    lib.close()


def model_keys(library: Library) -> set[str]:
    rows = library.catalog.db.execute("SELECT DISTINCT model_key FROM vectors")
    return {r[0] for r in rows}


def all_vectors(library: Library, key: str) -> dict[int, bytes]:
    ids, matrix = library.catalog.vectors(key)
    return {int(i): row.tobytes() for i, row in zip(ids, matrix)}


def family_of(path: str) -> str:
    return os.path.basename(os.path.dirname(path))


# -- the whole run ----------------------------------------------------------------------------------

def test_quick_finetune_lifts_heldout_recall_and_tag_search(library: Library, indexed: Path) -> None:
    base_key = library.model_key
    result = run_finetune(library, FineTuneOptions())
    assert result.holdout_by == "pack" and result.heldout_packs
    assert result.before["R@10"] < 0.8
    assert result.after["R@10"] >= result.before["R@10"] + 0.25
    assert result.after["R@10"] >= 0.85
    assert result.after["R@5"] > result.before["R@5"]
    assert library.model_key == result.model_key == f"{base_key}+{result.version}"
    assert result.splice_excluded == 3
    # Every file got a vector under the new key, without re-indexing.
    assert len(all_vectors(library, result.model_key)) == len(all_vectors(library, base_key))

    # A tag word now finds that tag's files in the held-out pack first.
    for pack in result.heldout_packs:
        folder = str(indexed / "samples" / pack)
        for family in ("kick", "pad"):
            hits = search_text(library, family, k=PER_FAMILY, filters=Filters(folder=folder)).hits
            assert [family_of(h.file.path) for h in hits] == [family] * PER_FAMILY


def test_new_version_reloads_after_restart_and_a_broken_one_falls_back(
        library: Library, tiny_model: Path) -> None:
    result = run_finetune(library, FineTuneOptions(steps=60))
    query = library.embedder().embed_text(["kick"])
    root = library.paths.root
    library.close()

    again = Library(root, model=str(tiny_model))
    try:
        assert again.model_key == result.model_key
        assert np.array_equal(again.embedder().embed_text(["kick"]), query)
        assert again.load_warning is None
    finally:
        again.close()

    # Damage the saved heads: the next start falls back to the base model and says so.
    (root / "models" / result.version / versions.AUDIO_HEAD_FILE).write_bytes(b"not weights")
    broken = Library(root, model=str(tiny_model))
    try:
        broken.embedder()
        assert broken.load_warning and result.version in broken.load_warning
        assert broken.model_key == broken.identity.encoder_key
        assert broken.active_version is None
    finally:
        broken.close()


def test_cli_finetune_then_models_list_revert_activate(
        library: Library, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base_key = library.model_key
    base_vectors = all_vectors(library, base_key)
    base_text = library.embedder().embed_text(["a deep kick"])
    base_hits = [h.file.id for h in search_text(library, "kick", k=10).hits]
    root = str(library.paths.root)
    library.close()
    common = ["--library", root, "--model", str(tiny_model), "--json"]

    assert cli.main(["finetune", "--steps", "40", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"model", "train", "heldout", "before", "after", "seconds"}
    assert set(out["after"]) == {"R@1", "R@5", "R@10", "P@10"}
    assert out["train"] + out["heldout"] == len(PACKS) * len(FAMILIES) * PER_FAMILY

    assert cli.main(["models", *common]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["active"] == out["version"] and listed["model"] == out["model"]
    assert [v["name"] for v in listed["versions"]] == [out["version"]]

    # A file indexed while the version is active gets only that version's vector...
    late = write_sound(Path(root).parent / "late" / "kick_late.wav", family_sound("kick", 77))
    active = Library(root, model=str(tiny_model))
    active.index_folders([str(late.parent)])
    assert active.catalog.file_by_path(late).id not in all_vectors(active, base_key)
    active.close()

    assert cli.main(["models", "revert", *common]) == 0
    assert json.loads(capsys.readouterr().out)["active"] is None
    reverted = Library(root, model=str(tiny_model))
    try:
        assert reverted.model_key == base_key
        after_revert = all_vectors(reverted, base_key)
        late_id = reverted.catalog.file_by_path(late).id
        # ...and revert gives it a base vector, the very one indexing with the base would make.
        embedder = reverted.embedder()
        assert np.allclose(np.frombuffer(after_revert.pop(late_id), np.float32),
                           embedder.project_audio(reverted.catalog.features(base_key, [late_id])[1])[0],
                           atol=1e-6)
        assert after_revert == base_vectors  # exactly the base vectors
        assert np.array_equal(reverted.embedder().embed_text(["a deep kick"]), base_text)
        assert [h.file.id for h in search_text(reverted, "kick", k=10).hits] == base_hits
    finally:
        reverted.close()

    assert cli.main(["models", "activate", out["version"], *common]) == 0
    assert json.loads(capsys.readouterr().out)["model"] == out["model"]
    assert cli.main(["models", "activate", "no-such-version", *common]) == 1
    assert "no-such-version" in capsys.readouterr().err


def test_cancelling_leaves_no_version_and_no_vectors(library: Library) -> None:
    cancel = threading.Event()
    seen: list[str] = []

    def progress(p) -> None:
        seen.append(p.phase)
        if p.phase == "training" and p.done >= 20:
            cancel.set()

    keys = model_keys(library)
    with pytest.raises(FineTuneCancelled):
        run_finetune(library, FineTuneOptions(), progress, cancel)
    assert "training" in seen
    models = library.paths.models
    assert not models.exists() or list(models.iterdir()) == []
    assert model_keys(library) == keys
    assert library.active_version is None


# -- bad input ------------------------------------------------------------------------------------

def _index(tmp_path: Path, tiny_model: Path, names: list[str]) -> Library:
    samples = tmp_path / "samples"
    for i, name in enumerate(names):
        write_sound(samples / name, family_sound(FAMILIES[i % len(FAMILIES)], i, seconds=0.5))
    library = Library(tmp_path / "small-library", model=str(tiny_model))
    library.index_folders([str(samples)])
    return library


def _assert_unchanged(library: Library, keys: set[str]) -> None:
    assert model_keys(library) == keys
    assert not library.paths.models.exists() or list(library.paths.models.iterdir()) == []
    assert library.active_version is None


def test_bad_input_says_what_is_needed_and_changes_nothing(
        tmp_path: Path, tiny_model: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Twelve files named by number only: no tags at all.
    library = _index(tmp_path, tiny_model, [f"{i:02d}.wav" for i in range(12)])
    keys = model_keys(library)
    with pytest.raises(FineTuneError, match="no usable tags"):
        run_finetune(library, FineTuneOptions())
    _assert_unchanged(library, keys)

    # A CSV giving half of them one tag: a single tag cannot be learned.
    table = tmp_path / "tags.csv"
    table.write_text("path,tags\n" + "".join(f"samples/{i:02d}.wav,kick\n" for i in range(6)))
    with pytest.raises(FineTuneError, match="at least two different tags"):
        run_finetune(library, FineTuneOptions(sources=("csv",), csv_path=str(table)))
    _assert_unchanged(library, keys)
    root = str(library.paths.root)
    library.close()

    # The CLI reports the same with exit code 1 and one plain line.
    assert cli.main(["finetune", "--library", root, "--model", str(tiny_model)]) == 1
    assert "no usable tags" in capsys.readouterr().err
    assert cli.main(["finetune", "--mode", "deep", "--library", root,
                     "--model", str(tiny_model)]) == 1
    assert "not available in this version" in capsys.readouterr().err


def test_fewer_than_ten_files_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    library = _index(tmp_path, tiny_model, [f"kick/kick_{i}.wav" for i in range(3)]
                     + [f"pad/pad_{i}.wav" for i in range(3)])
    keys = model_keys(library)
    try:
        with pytest.raises(FineTuneError, match="at least 10 indexed files"):
            run_finetune(library, FineTuneOptions())
        _assert_unchanged(library, keys)
    finally:
        library.close()


# -- the pieces -----------------------------------------------------------------------------------

def test_splice_folders_are_left_out_unless_asked(library: Library) -> None:
    default = prepare(library, FineTuneOptions())
    assert default.splice_excluded == 3
    assert not any(is_splice_path(s.path) for s in default.samples)
    assert default.notes and "Splice" in default.notes[0]
    insisted = prepare(library, FineTuneOptions(include_splice=True))
    assert sum(s.splice for s in insisted.samples) == 3
    assert is_splice_path("/music/Splice/sounds/packs/kick.wav")
    assert not is_splice_path("/music/drums/splice_kick.wav")  # only folders count
    assert not is_splice_path("/music/drums/kick.wav")


def test_pack_holdout_never_splits_a_pack(library: Library) -> None:
    data = prepare(library, FineTuneOptions())
    train_packs = {data.samples[i].pack for i in data.train}
    held_packs = {data.samples[i].pack for i in data.heldout}
    assert held_packs and not train_packs & held_packs
    assert set(data.eval_tags) == set(FAMILIES)
    assert "vault" in data.vocabulary.tags  # pack names are taught, but cannot be measured
    random_split = prepare(library, FineTuneOptions(holdout_by="random"))
    assert random_split.holdout_by == "random"
    assert len(random_split.heldout) == round(0.2 * len(random_split.samples))


def test_texts_name_their_tags_and_vary() -> None:
    samples = [SampleTags(i, f"/lib/808 Kit/kick/kick_{i}.wav", "808 Kit", ["kick", "deep"],
                          bpm=120.0 if i % 2 else None, key="A minor" if i % 2 else None,
                          kind="one-shot") for i in range(4)]
    samples += [SampleTags(10 + i, f"/lib/Pads/pad_{i}.wav", "Pads", ["pad"]) for i in range(4)]
    vocabulary = choose_vocabulary(samples)
    assert vocabulary.tags == ["deep", "kick", "pad"]
    pairs = build_pairs(samples, vocabulary, seed=1)
    kick_texts = {p.text for p in pairs if p.file_id < 10}
    assert len(kick_texts) >= 5  # varied phrasing across the kick samples
    assert any("808 kit" in t for t in kick_texts)
    assert any("one-shot" in t for t in kick_texts)
    assert any("120 BPM" in t or "A minor" in t for t in kick_texts)
    for pair in pairs:
        assert pair.tags and all(tag in pair.text for tag in pair.tags)


def test_tags_csv_and_packs(tmp_path: Path) -> None:
    table = tmp_path / "tags.csv"
    table.write_text('path,tags\nkick.wav,"kick; deep"\n/abs/pad.wav,pad,warm\n\n')
    tags = read_tags_csv(str(table))
    assert tags[str(tmp_path / "kick.wav")] == ["kick", "deep"]
    assert tags["/abs/pad.wav"] == ["pad", "warm"]
    assert pack_of("/lib/808 Kit/kick/a.wav", "/lib") == "808 Kit"
    assert pack_of("/lib/a.wav", "/lib") == ""


def test_recall_and_precision_figures() -> None:
    audio = np.eye(4, dtype=np.float32)
    queries = np.eye(4, dtype=np.float32)[:2]
    relevant = np.array([[1, 0, 0, 0], [0, 1, 1, 0]], bool)
    perfect, _ = evaluate(audio, queries + 0.1 * relevant, relevant)
    assert perfect["R@1"] == perfect["R@5"] == perfect["R@10"] == 1.0
    wrong = np.eye(4, dtype=np.float32)[[3, 0]]
    figures, p10 = evaluate(audio, wrong, relevant)
    assert figures["R@1"] == 0.0 and figures["R@10"] == 1.0  # all found in the top 4
    assert list(p10) == [0.25, 0.5]


def test_random_split_is_reproducible() -> None:
    samples = [SampleTags(i, f"/x/{i}.wav", "", ["a"]) for i in range(20)]
    assert split(samples, "pack", 0.2, seed=3) == split(samples, "pack", 0.2, seed=3)
    train, held, how = split(samples, "pack", 0.2, seed=3)
    assert how == "pack" and len(held) == 4 and not set(train) & set(held)


def test_tag_sources_parse_with_a_csv_and_refuse_unknown_ones() -> None:
    assert parse_sources("folder,csv:/x/tags.csv") == (("folder", "csv"), "/x/tags.csv")
    assert parse_sources("filename, user") == (("filename", "user"), None)
    with pytest.raises(FineTuneError, match="unknown tag source 'colour'"):
        parse_sources("folder,colour")
    with pytest.raises(FineTuneError, match="no tag source"):
        parse_sources(" , ")
