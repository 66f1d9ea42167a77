"""Quick fine-tuning on a generated library: better held-out figures, versions, revert, bad input."""

from __future__ import annotations

import json
import os
import random
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound
from finetune_models import random_audio_head

from clapdesk import cli
from clapdesk.core.finetune.data import (
    FineTuneCancelled,
    FineTuneError,
    FineTuneOptions,
    prepare,
)
from clapdesk.core.finetune.prompts import is_splice_path
from clapdesk.core.finetune.training import run_finetune, versions
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import Filters, search_text
from clapdesk.core.store.user_tags import set_user_tags

FAMILIES = ("kick", "hihat", "pad", "bass", "noise")
# Pack names with the words real packs carry: authors' and labels' names, kit names.
PACKS = ("Millo Multi Layered", "BJA Trap Kit", "Dusty Vault", "Neon Drums", "Cold Steel",
         "Warm Tapes")
PER_FAMILY = 4  # 20 files a pack, 120 in all


def write_packs(samples: Path, packs: tuple[str, ...] = PACKS, per: int = PER_FAMILY) -> None:
    for p, pack in enumerate(packs):
        for family in FAMILIES:
            for i in range(per):
                write_sound(samples / pack / family / f"{family}_{i + 1:02d}.wav",
                            family_sound(family, 100 * p + i, seconds=0.5))


def index_packs(base: Path, model: Path, splice: bool = False) -> Path:
    samples = base / "samples"
    write_packs(samples)
    for family in FAMILIES[:3] if splice else ():  # a Splice folder: excluded unless asked for
        write_sound(samples / "Splice" / "sounds" / f"{family}_splice.wav",
                    family_sound(family, 999, seconds=0.5))
    library = Library(base / "library", model=str(model))
    report = library.index_folders([str(samples)])
    library.close()
    assert report.indexed == len(PACKS) * len(FAMILIES) * PER_FAMILY + (3 if splice else 0)
    return base


@pytest.fixture(scope="module")
def knowing(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """Indexed with a model fitted to the families: base vectors already separate them."""
    return index_packs(tmp_path_factory.mktemp("knowing"), tiny_model)


@pytest.fixture(scope="module")
def random_heads(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """The fitted model with a random audio head: its vectors know nothing of the families."""
    return random_audio_head(tiny_model, tmp_path_factory.mktemp("random-heads"))


@pytest.fixture(scope="module")
def unknowing(tmp_path_factory: pytest.TempPathFactory, random_heads: Path) -> Path:
    """Indexed with random heads: the base search cannot tell the families apart."""
    return index_packs(tmp_path_factory.mktemp("unknowing"), random_heads, splice=True)


def open_copy(indexed: Path, tmp_path: Path, model: Path) -> Library:
    root = tmp_path / "library"
    shutil.copytree(indexed / "library", root)
    return Library(root, model=str(model))


@pytest.fixture
def library(unknowing: Path, tmp_path: Path, random_heads: Path):
    lib = open_copy(unknowing, tmp_path, random_heads)
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


def balanced_nonsense(samples: Path, table: Path, seed: int = 0) -> Path:
    """Tags the audio cannot tell apart: in every pack each family's four files get the four
    words once each, in a random order, so no word goes with any sound."""
    rng = random.Random(seed)
    rows = ["path,tags"]
    for folder in sorted({f.parent for f in samples.rglob("*.wav")}):
        words = ["alpha", "beta", "gamma", "delta"]
        rng.shuffle(words)
        rows += [f"{f},{w}" for f, w in zip(sorted(folder.glob("*.wav")), words)]
    table.write_text("\n".join(rows) + "\n")
    return table


def family_table(samples: Path, table: Path, swap_in: tuple[str, ...] = ()) -> Path:
    """Each file tagged with its family; in the packs `swap_in` every family is renamed to the
    next one (kick files called hihat ...): wrong labels, with the same words and counts."""
    rows = ["path,tags"]
    for f in sorted(samples.rglob("*.wav")):
        family = family_of(str(f))
        if f.parent.parent.name in swap_in:
            family = FAMILIES[(FAMILIES.index(family) + 1) % len(FAMILIES)]
        rows.append(f"{f},{family}")
    table.write_text("\n".join(rows) + "\n")
    return table


# -- what a run must show -----------------------------------------------------------------------

def test_where_the_base_knows_nothing_test_precision_rises_well_above_the_start(
        library: Library, unknowing: Path) -> None:
    base_key = library.model_key
    result = run_finetune(library, FineTuneOptions())
    assert result.saved and result.activated, result.reason
    assert result.holdout_by == "pack" and not result.rotated and result.test_packs
    assert result.before["P@10"] <= 0.3
    assert result.after["P@10"] >= result.before["P@10"] + 0.15
    assert result.after["R@10"] >= result.before["R@10"] + 0.25
    assert library.model_key == result.model_key == f"{base_key}+{result.version}"
    assert result.splice_excluded == 3
    assert result.counts["test"] == PER_FAMILY * len(FAMILIES) * len(result.test_packs)
    # Words a producer reads, with the counts behind them.
    assert any(line.startswith("of the 10 best matches for '") and "in packs it never saw" in line
               for line in result.summary)
    # Every file got a vector under the new key, without re-indexing.
    assert len(all_vectors(library, result.model_key)) == len(all_vectors(library, base_key))
    # A tag word now finds that tag's files in a test pack first, as the figures said.
    best = max(result.per_tag, key=lambda t: result.per_tag[t]["after"]["hits"])
    folder = str(unknowing / "samples" / result.test_packs[0])
    hits = search_text(library, best, k=PER_FAMILY, filters=Filters(folder=folder)).hits
    assert sum(family_of(h.file.path) == best for h in hits) >= PER_FAMILY // 2


def test_where_the_base_already_knows_the_test_figures_are_kept(
        knowing: Path, tmp_path: Path, tiny_model: Path) -> None:
    library = open_copy(knowing, tmp_path, tiny_model)
    try:
        result = run_finetune(library, FineTuneOptions())
        # The fitted model does know the families: its top 10 are nearly as full of the tag
        # as they can be (a test pack has 4 files of each family, so 4 of 10 is all).
        found = [v["before"]["hits"] / min(v["before"]["top"], v["before"]["relevant"])
                 for v in result.per_tag.values()]
        assert np.mean(found) >= 0.8, result.per_tag
        for metric in ("R@10", "P@10"):
            assert result.after[metric] >= result.before[metric] - 1e-9
        if result.saved:
            assert library.active_version == result.version
        else:  # nothing to gain: the model searched stays, and the reason says so
            assert result.reason and library.active_version is None
            assert result.after == result.before
    finally:
        library.close()


def test_tags_the_audio_cannot_tell_apart_save_nothing_and_say_why(
        library: Library, unknowing: Path, random_heads: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    table = balanced_nonsense(unknowing / "samples", library.paths.root.parent / "nonsense.csv")
    keys = model_keys(library)
    root = str(library.paths.root)
    library.close()
    code = cli.main(["finetune", "--tags", f"csv:{table}", "--library", root,
                     "--model", str(random_heads), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert out["saved"] is False and out["version"] is None and not out["activated"]
    assert "holds in packs it did not learn from" in out["reason"]
    assert out["chosen"]["validation_gain"] < 0.03 or out["chosen"]["validation_gain_low"] <= 0
    again = Library(root, model=str(random_heads))
    try:
        _assert_unchanged(again, keys)
    finally:
        again.close()
    # In words too, for a person at a terminal.
    assert cli.main(["finetune", "--tags", f"csv:{table}", "--library", root,
                     "--model", str(random_heads)]) == 0
    assert capsys.readouterr().out.startswith("No new version: no setting tried found")


def test_wrong_labels_on_the_test_packs_change_nothing_chosen(
        library: Library, unknowing: Path) -> None:
    samples = unknowing / "samples"
    table = family_table(samples, library.paths.root.parent / "tags.csv")
    options = FineTuneOptions(sources=("csv",), csv_path=str(table), activate=False)
    data = prepare(library, options)
    test_packs = tuple(data.test_packs())
    assert test_packs and not data.rotated
    honest = run_finetune(library, options)
    family_table(samples, table, swap_in=test_packs)  # every test file now carries a wrong tag
    tampered = run_finetune(library, options)
    assert tampered.test_packs == honest.test_packs
    assert tampered.chosen == honest.chosen and tampered.tried == honest.tried
    assert tampered.saved == honest.saved and tampered.reason == honest.reason
    # ... while the test figures, which chose nothing, do see the wrong labels.
    assert tampered.after["P@10"] < honest.after["P@10"]


def test_three_packs_take_turns_and_say_so(tmp_path: Path, random_heads: Path) -> None:
    write_packs(tmp_path / "samples", PACKS[:3])
    library = Library(tmp_path / "library", model=str(random_heads))
    try:
        library.index_folders([str(tmp_path / "samples")])
        data = prepare(library, FineTuneOptions())
        assert data.rotated and len(data.folds) == 3
        assert sorted(p for f in data.folds for p in data.packs_of(f.test)) == sorted(PACKS[:3])
        for fold in data.folds:
            parts = [set(data.packs_of(rows)) for rows in (fold.train, fold.validation, fold.test)]
            assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2]
                                       or parts[1] & parts[2])
        assert any("took turns" in n for n in data.notes)
        result = run_finetune(library, FineTuneOptions(activate=False))
        assert result.rotated and result.counts["test"] == 3 * len(FAMILIES) * PER_FAMILY
        assert any("took turns" in n for n in result.notes)
    finally:
        library.close()


def test_new_version_reloads_after_restart_and_a_broken_one_falls_back(
        library: Library, random_heads: Path) -> None:
    result = run_finetune(library, FineTuneOptions(steps=60))
    assert result.saved, result.reason
    query = library.embedder().embed_text(["kick"])
    root = library.paths.root
    library.close()

    again = Library(root, model=str(random_heads))
    try:
        assert again.model_key == result.model_key
        assert np.array_equal(again.embedder().embed_text(["kick"]), query)
        assert again.load_warning is None
        listed = versions.list_versions(again.paths.models)
        assert listed[0].info["after"] == result.after and listed[0].info["chosen"]["step"]
    finally:
        again.close()

    # Damage the saved heads: the next start falls back to the base model and says so.
    (root / "models" / result.version / versions.AUDIO_HEAD_FILE).write_bytes(b"not weights")
    broken = Library(root, model=str(random_heads))
    try:
        broken.embedder()
        assert broken.load_warning and result.version in broken.load_warning
        assert broken.model_key == broken.identity.encoder_key
        assert broken.active_version is None
    finally:
        broken.close()


def test_cli_finetune_then_models_list_revert_activate(
        library: Library, random_heads: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny_model = random_heads
    base_key = library.model_key
    base_vectors = all_vectors(library, base_key)
    base_text = library.embedder().embed_text(["a deep kick"])
    base_hits = [h.file.id for h in search_text(library, "kick", k=10).hits]
    root = str(library.paths.root)
    library.close()
    common = ["--library", root, "--model", str(tiny_model), "--json"]

    assert cli.main(["finetune", "--steps", "60", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["saved"] is True
    assert set(out) >= {"model", "train", "validation", "test", "before", "after", "seconds",
                        "chosen", "tried", "per_tag", "summary", "excluded_tags"}
    assert set(out["after"]) == {"R@1", "R@5", "R@10", "P@10"}
    assert out["train"] + out["validation"] + out["test"] == len(PACKS) * len(FAMILIES) * PER_FAMILY
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

    # A CSV giving half of them one word, and all of them another: a single tag cannot be learned.
    table = tmp_path / "tags.csv"
    table.write_text("path,tags\n" + "".join(
        f"samples/{i:02d}.wav,{'kick;glass' if i < 6 else 'glass'}\n" for i in range(12)))
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


def test_pack_holdout_never_splits_a_pack_and_pack_names_are_not_taught(
        library: Library) -> None:
    data = prepare(library, FineTuneOptions())
    parts = [{data.samples[i].pack for i in rows}
             for rows in (data.train, data.validation, data.test)]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert set(data.eval_tags) == set(FAMILIES)
    assert set(data.vocabulary.tags) == set(FAMILIES)
    for word in ("millo", "bja", "vault", "neon", "trap"):
        assert data.vocabulary.excluded[word] == "a pack or author name"
    assert not any(w in p.text.split() for p in data.pairs for w in ("millo", "bja"))
    # The user can add a word back.
    back = prepare(library, FineTuneOptions(restore_tags=("millo",)))
    assert "millo" not in back.vocabulary.excluded
    assert "millo" in {t for s in back.samples for t in s.tags}
    random_split = prepare(library, FineTuneOptions(holdout_by="random"))
    assert random_split.holdout_by == "random" and not random_split.rotated
    packs = lambda rows: {random_split.samples[i].pack for i in rows}  # noqa: E731
    assert packs(random_split.train) & packs(random_split.test)  # files, not packs


def test_per_tag_figures_only_for_tags_seen_in_training_and_test(library: Library) -> None:
    # A user tag on files of one training pack only: taught (the user's tags always count)
    # but never judged, since no test pack has it.
    data = prepare(library, FineTuneOptions())
    only_in = data.packs_of(data.train)[0]
    ids = [s.file_id for s in data.samples if s.pack == only_in][:3]
    set_user_tags(library.catalog, ids, ["shimmer"])
    data = prepare(library, FineTuneOptions())
    assert data.packs_of(data.train)[0] == only_in  # the split looks at packs alone
    assert "shimmer" in data.vocabulary.tags
    assert "shimmer" not in data.eval_tags
    result = run_finetune(library, FineTuneOptions(activate=False))
    assert result.per_tag and "shimmer" not in result.per_tag
    train_tags = {t for i in data.train for t in data.samples[i].tags}
    assert set(result.per_tag) <= train_tags
