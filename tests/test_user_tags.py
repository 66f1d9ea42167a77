"""Tags the producer edits: their own tags, hidden automatic tags, re-indexing, search boost."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.core.library import Library
from clapdesk.core.search.ranking import USER_TAG_BOOST, search_text
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.user_tags import (
    add_user_tag,
    hide_tag,
    other_tags,
    parse_tag_text,
    query_tag_candidates,
    set_user_tags,
    tags_for_display,
    user_tags,
)

FAMILIES = ("kick", "hihat", "pad", "bass")


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[tuple[Catalog, list[int]]]:
    cat = Catalog(tmp_path / "catalog.sqlite")
    root = cat.add_root(tmp_path)
    with cat.transaction():
        ids = [cat.upsert_file(str(tmp_path / f"s{i}.wav"), root, 10, 1, None) for i in range(3)]
        for file_id in ids:
            cat.set_tags(file_id, [("fx", 0.4), ("dark", 0.3)], "auto")
            cat.set_tags(file_id, [("kick", 1.0)], "filename")
    yield cat, ids
    cat.close()


def make_sounds(folder: Path, count: int = 8) -> list[Path]:
    return [write_sound(folder / f"{FAMILIES[i % 4]}_{i:02d}.wav", family_sound(FAMILIES[i % 4], i))
            for i in range(count)]


def test_user_tags_are_normalised_and_replace_only_the_users(catalog) -> None:  # noqa: ANN001
    cat, ids = catalog
    stored = set_user_tags(cat, ids[:2], ["  Dusty   Kick ", "dusty kick", "", "LO-FI", " "])
    assert stored == ["dusty kick", "lo-fi"]
    assert parse_tag_text("a,  B  c ,,a") == ["a", "b c"]
    assert user_tags(cat, ids) == {ids[0]: ["dusty kick", "lo-fi"],
                                   ids[1]: ["dusty kick", "lo-fi"], ids[2]: []}
    set_user_tags(cat, [ids[0]], ["warm"])
    assert user_tags(cat, [ids[0]])[ids[0]] == ["warm"]
    assert user_tags(cat, [ids[1]])[ids[1]] == ["dusty kick", "lo-fi"]
    # The indexer replacing its own source leaves the user's tags alone.
    with cat.transaction():
        cat.set_tags(ids[0], [("pad", 0.9)], "auto")
    assert tags_for_display(cat, [ids[0]])[ids[0]] == ["warm", "kick", "pad"]


def test_add_and_hide(catalog) -> None:  # noqa: ANN001
    cat, ids = catalog
    set_user_tags(cat, ids, ["warm"])
    assert add_user_tag(cat, ids, " Vinyl ") == "vinyl"
    add_user_tag(cat, ids, "warm")  # already there: no duplicate
    assert user_tags(cat, ids)[ids[1]] == ["warm", "vinyl"]
    # Search hits and browsed rows (catalog.tags_of) list them in the same order.
    assert [t for t, s, _ in cat.tags_of([ids[1]])[ids[1]] if s == "user"] == ["warm", "vinyl"]
    assert hide_tag(cat, ids[0], "fx") == 1
    assert hide_tag(cat, ids[0], "warm") == 0  # user tags are never hidden, only removed
    shown = tags_for_display(cat, ids)
    assert shown[ids[0]] == ["warm", "vinyl", "kick", "dark"]
    assert shown[ids[1]] == ["warm", "vinyl", "kick", "fx", "dark"]
    assert ("fx", True) in other_tags(cat, [ids[0]])[ids[0]]
    hide_tag(cat, ids[0], "fx", hidden=False)
    assert "fx" in tags_for_display(cat, [ids[0]])[ids[0]]
    # A user tag equal to a hidden automatic one still shows, once.
    hide_tag(cat, ids[2], "kick")
    add_user_tag(cat, [ids[2]], "kick")
    assert tags_for_display(cat, [ids[2]])[ids[2]] == ["warm", "vinyl", "kick", "fx", "dark"]


def test_query_words_name_tags() -> None:
    words = query_tag_candidates("Dusty  drums, 808 BD")
    assert {"dusty", "dusty drums", "kick", "808"} <= words


def test_user_tags_and_hidden_tags_survive_reindexing_a_changed_file(
        tiny_model: Path, tmp_path: Path) -> None:
    sounds = make_sounds(tmp_path / "samples", 4)
    library = Library(model=str(tiny_model), allow_download=False)
    try:
        library.index_folders([str(tmp_path / "samples")])
        kick = library.catalog.file_by_path(sounds[0])
        assert kick is not None
        autos = [t for t, hidden in other_tags(library.catalog, [kick.id])[kick.id]
                 if not hidden and t != "kick"]
        set_user_tags(library.catalog, [kick.id], ["Punchy", "dusty kick"])
        hide_tag(library.catalog, kick.id, "kick")  # the file-name tag
        if autos:
            hide_tag(library.catalog, kick.id, autos[0])
        before = tags_for_display(library.catalog, [kick.id])[kick.id]
        assert before[:2] == ["punchy", "dusty kick"] and "kick" not in before

        # The file changes on disk: a different sound, a later modification time.
        write_sound(sounds[0], family_sound("kick", 99))
        stat = sounds[0].stat()
        os.utime(sounds[0], ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
        report = library.rescan()
        assert report.indexed == 1

        after = tags_for_display(library.catalog, [kick.id])[kick.id]
        assert after[:2] == ["punchy", "dusty kick"]
        assert "kick" not in after
        came_back = dict(other_tags(library.catalog, [kick.id])[kick.id])
        assert came_back["kick"] is True  # re-written by the indexer, still hidden
        if autos and autos[0] in came_back:
            assert came_back[autos[0]] is True and autos[0] not in after
    finally:
        library.close()


def test_a_user_tag_lifts_its_file_in_text_search(tiny_model: Path, tmp_path: Path) -> None:
    make_sounds(tmp_path / "samples", 8)
    library = Library(model=str(tiny_model), allow_download=False)
    try:
        library.index_folders([str(tmp_path / "samples")])
        query = "shimmer texture"
        baseline = search_text(library, query, k=8).hits
        assert len(baseline) == 8
        base = {h.file.id: h.score for h in baseline}
        # The lowest-ranked file that the boost lifts past the file just above it: the test
        # model's families lie far apart, so within a family (close scores) it can.
        passable = [j for j in range(1, len(baseline))
                    if baseline[j].score + USER_TAG_BOOST > baseline[j - 1].score]
        assert passable, "some file lies within the boost of the one above it"
        rank = passable[-1]
        target = baseline[rank].file
        lifted = base[target.id] + USER_TAG_BOOST
        above = sum(1 for s in base.values() if s > lifted)
        assert above < rank, "the boost should pass at least one file"

        set_user_tags(library.catalog, [target.id], ["shimmer"])
        hits = search_text(library, query, k=8).hits
        scores = [h.score for h in hits]
        assert scores == sorted(scores, reverse=True)
        assert [h.file.id for h in hits].index(target.id) == above
        assert hits[above].score == pytest.approx(lifted, abs=1e-5)
        assert hits[above].tags[0] == "shimmer"
        # A short list too: the tagged file joins although the nearest `k` did not hold it.
        short = search_text(library, query, k=above + 1).hits
        assert short[-1].file.id == target.id
        # Other files keep their plain cosine.
        assert all(h.score == pytest.approx(base[h.file.id], abs=1e-5)
                   for h in hits if h.file.id != target.id)
    finally:
        library.close()


def test_tag_on_the_command_line(capsys: pytest.CaptureFixture[str], tiny_model: Path,
                                 tmp_path: Path) -> None:
    from clapdesk.cli import main

    sounds = make_sounds(tmp_path / "samples", 2)

    def run(*argv: str) -> dict:
        code = main(["--json", "--model", str(tiny_model), *argv])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        return json.loads(captured.out)

    run("index", str(tmp_path / "samples"))
    out = run("tag", *map(str, sounds), "--set", " Dusty, lo-fi  Kick,,dusty")
    assert [f["user_tags"] for f in out["files"]] == [["dusty", "lo-fi kick"]] * 2
    assert out["files"][0]["tags"][:3] == ["dusty", "lo-fi kick", "kick"]
    out = run("tag", str(sounds[0]), "--add", "Vinyl")
    assert out["files"][0]["user_tags"] == ["dusty", "lo-fi kick", "vinyl"]
    out = run("tag", str(sounds[0]), "--hide", "kick")
    assert "kick" not in out["files"][0]["tags"]
    assert out["files"][0]["tags"][:3] == ["dusty", "lo-fi kick", "vinyl"]
    # A file the library does not know is a plain error, exit code 1.
    assert main(["tag", str(tmp_path / "elsewhere.wav"), "--add", "x"]) == 1
    assert "not in the library" in capsys.readouterr().err
