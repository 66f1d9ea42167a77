"""Fine-tuning's parts on their own, with no library: the vocabulary chosen, the texts made
from tags, a tags file, the held-out figures and the splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clapdesk.core.finetune.data import FineTuneError, parse_sources
from clapdesk.core.finetune.prompts import (
    SampleTags,
    build_pairs,
    choose_vocabulary,
    pack_of,
    read_tags_csv,
)
from clapdesk.core.finetune.protocol import evaluate, split_folds, tag_sentence


def test_words_that_describe_sounds_are_taught_and_the_rest_listed() -> None:
    def sample(i: int, pack: str, tags: list[str], own: tuple[str, ...] = ()) -> SampleTags:
        return SampleTags(i, f"/lib/{pack}/{i}.wav", pack, tags, own_tags=frozenset(own))

    samples = [sample(i, pack, ["kick", "808", "v2", "glass" if pack == "A" else "dry"]
                      if pack != "C" else ["kick", "dry"]) for i, pack in enumerate("AABBCC")]
    samples += [sample(10 + i, "C", ["pad", "zx81", "mine"], own=("zx81", "mine"))
                for i in range(2)]
    samples += [sample(20 + i, pack, ["pad"]) for i, pack in enumerate("AB")]
    vocabulary = choose_vocabulary(samples)
    assert vocabulary.tags == ["808", "dry", "mine", "pad", "zx81"]
    assert vocabulary.excluded["v2"] == "a number or code"
    assert vocabulary.excluded["glass"] == "only in the pack 'A'"
    assert "kick" in vocabulary.dropped_common  # on 6 of 10 files
    assert set(choose_vocabulary(samples, keep=("glass", "v2")).tags) >= {"glass", "v2"}
    assert "glass" in choose_vocabulary(samples, by_pack=False).tags


def test_texts_name_their_tags_and_vary() -> None:
    samples = [SampleTags(i, f"/lib/808 Kit/kick/kick_{i}.wav", "808 Kit", ["kick", "deep"],
                          bpm=120.0 if i % 2 else None, key="A minor" if i % 2 else None,
                          kind="one-shot") for i in range(4)]
    samples += [SampleTags(10 + i, f"/lib/Pads/pad_{i}.wav", "Pads", ["pad"]) for i in range(4)]
    vocabulary = choose_vocabulary(samples, by_pack=False)
    assert vocabulary.tags == ["deep", "kick", "pad"]
    pairs = build_pairs(samples, vocabulary, seed=1)
    kick_texts = {p.text for p in pairs if p.file_id < 10}
    assert len(kick_texts) >= 5  # varied phrasing across the kick samples
    assert not any("808 kit" in t for t in kick_texts)  # never the pack's name
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
    perfect = evaluate(audio, queries + 0.1 * relevant, relevant).means()
    assert perfect["R@1"] == perfect["R@5"] == perfect["R@10"] == 1.0
    wrong = np.eye(4, dtype=np.float32)[[3, 0]]
    figures = evaluate(audio, wrong, relevant, ["kick", "pad"])
    assert figures.means()["R@1"] == 0.0 and figures.means()["R@10"] == 1.0  # all in the top 4
    assert list(figures.values["P@10"]) == [0.25, 0.5]
    assert figures.per_tag()["pad"] == {"P@10": 0.5, "hits": 2.0, "top": 4, "relevant": 2.0}
    before = evaluate(audio, wrong[::-1], relevant, ["kick", "pad"]).per_tag()
    line = tag_sentence("pad", before["pad"], figures.per_tag()["pad"], rotated=False)
    assert line == ("of the 4 best matches for 'pad' in packs it never saw, 2 are tagged 'pad', "
                    "was 2 (there are 2)")


def test_splits_are_reproducible_and_rotate_with_few_packs() -> None:
    loose = [SampleTags(i, f"/x/{i}.wav", "", ["a"]) for i in range(200)]
    folds, how = split_folds(loose, "pack", 0.2, 0.3, seed=3)
    assert (folds, how) == split_folds(loose, "pack", 0.2, 0.3, seed=3)
    assert how == "pack" and len(folds) == 1  # loose files: each its own group
    fold = folds[0]
    assert len(fold.test) == 40 and len(fold.validation) == 60 and len(fold.train) == 100
    assert not set(fold.train) & set(fold.test) and not set(fold.validation) & set(fold.test)
    few = [SampleTags(i, f"/x/{i}.wav", "", ["a"]) for i in range(40)]
    folds, how = split_folds(few, "random", 0.2, 0.3, seed=3)
    assert how == "random" and len(folds) == 5  # a small library takes turns
    assert sorted(i for f in folds for i in f.test) == list(range(40))
    packs = [SampleTags(i, f"/x/{i}.wav", f"P{i % 4}", ["a"]) for i in range(40)]
    folds, how = split_folds(packs, "pack", 0.2, 0.3, seed=3)
    assert how == "pack" and len(folds) == 4


def test_tag_sources_parse_with_a_csv_and_refuse_unknown_ones() -> None:
    assert parse_sources("folder,csv:/x/tags.csv") == (("folder", "csv"), "/x/tags.csv")
    assert parse_sources("filename, user") == (("filename", "user"), None)
    with pytest.raises(FineTuneError, match="unknown tag source 'colour'"):
        parse_sources("folder,colour")
    with pytest.raises(FineTuneError, match="no tag source"):
        parse_sources(" , ")
