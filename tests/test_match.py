"""Readable matches: calibrated per query over the library, the same on any page."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import family_sound, write_sound

from clapdesk.core.library import Library
from clapdesk.core.search.match import readable_match
from clapdesk.core.search.ranking import search_similar, search_text


def test_the_mapping_from_standard_deviations_to_percent() -> None:
    assert readable_match(0.10, 0.10, 0.02) == 0.0  # the library's typical file
    assert readable_match(-0.01, 0.05, 0.02) == 0.0  # below it: never negative
    assert readable_match(0.14, 0.10, 0.02) == pytest.approx(63.2, abs=0.1)  # two deviations
    assert readable_match(0.18, 0.10, 0.02) == pytest.approx(86.5, abs=0.1)
    assert 99.0 < readable_match(0.30, 0.10, 0.02) < 100.0  # ten deviations
    assert readable_match(0.2, 0.1, 0.0) == 0.0  # nothing to calibrate against
    assert readable_match(float("nan"), 0.1, 0.02) == 0.0


def test_a_file_shows_the_same_match_on_any_page_and_for_sound_alikes(
        tiny_model: Path, tmp_path: Path) -> None:
    for i, family in enumerate(["kick", "hihat", "pad", "bass"] * 4):
        write_sound(tmp_path / "samples" / f"{family}_{i:02d}.wav", family_sound(family, i))
    library = Library(model=str(tiny_model))
    try:
        library.index_folders([str(tmp_path / "samples")])
        short = search_text(library, "kick", k=2).hits
        long = search_text(library, "kick", k=16).hits
        by_path = {h.file.path: h.match for h in long}
        assert all(h.match == by_path[h.file.path] for h in short)
        matches = [h.match for h in long]
        assert matches == sorted(matches, reverse=True)
        assert all(m > 40 for m in matches[:4]) and all(m == 0 for m in matches[8:])
        assert all(h.cosine is not None and -1 <= h.cosine <= 1 for h in long)
        alike = search_similar(library, str(tmp_path / "samples" / "pad_02.wav"), k=15).hits
        assert alike[0].file.name.startswith("pad_") and alike[0].match > alike[-1].match
        # A query of constraints alone compares nothing: no match to show.
        assert all(h.match is None for h in search_text(library, "one-shot", k=5).hits)
    finally:
        library.close()
