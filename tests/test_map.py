"""The map of the library by sound: families form regions, new files land in theirs, a query
lights up the right one; hit-testing, lasso and arrow walking; the CLI's JSON and PNG."""

from __future__ import annotations

import json
import struct
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import family_sound, write_sound

from clapdesk.cli import main
from clapdesk.core.library import Library
from clapdesk.core.map import library_map
from clapdesk.core.map.geometry import MapGeometry
from clapdesk.core.map.layout import LayoutCancelled, neighbours_kept, place_by_neighbours
from clapdesk.core.map.picture import colour_codes, render, write_png
from clapdesk.core.search.ranking import search_text
from clapdesk.core.store import map_positions

FAMILIES = ("kick", "hihat", "pad", "bass", "noise")


def write_families(folder: Path, per_family: int, first_seed: int = 0) -> None:
    for family in FAMILIES:
        for i in range(per_family):
            seed = first_seed + i
            write_sound(folder / family / f"{family}_{seed:02d}.wav",
                        family_sound(family, seed, seconds=0.6 + 0.1 * (seed % 4)))


def family_of(path: str) -> str:
    return Path(path).parent.name


def centres(rows: map_positions.MapRows) -> dict[str, np.ndarray]:
    families = np.array([family_of(p) for p in rows.paths])
    return {f: rows.positions[families == f].mean(axis=0) for f in FAMILIES}


def outside_own_region(rows: map_positions.MapRows, centre: dict[str, np.ndarray],
                       only: np.ndarray | None = None) -> list[str]:
    """The points nearer another family's centre than their own."""
    names = list(centre)
    matrix = np.stack([centre[n] for n in names])
    wrong = []
    for i, (path, xy) in enumerate(zip(rows.paths, rows.positions)):
        if only is not None and not only[i]:
            continue
        nearest = names[int(np.argmin(((matrix - xy) ** 2).sum(axis=1)))]
        if nearest != family_of(path):
            wrong.append(f"{Path(path).name} is nearer the {nearest} centre")
    return wrong


@pytest.fixture
def family_library(tmp_path: Path, tiny_model: Path) -> Library:
    folder = tmp_path / "samples"
    write_families(folder, per_family=8)
    library = Library(model=str(tiny_model), allow_download=False)
    library.index_folders([str(folder)])
    yield library
    library.close()


def test_each_family_forms_its_own_region(family_library: Library) -> None:
    rows = library_map.current_map(family_library.catalog, family_library.model_key)
    assert len(rows) == 8 * len(FAMILIES)
    assert not rows.placed.any(), "a first map is laid out in full"
    assert outside_own_region(rows, centres(rows)) == []
    # Stored: the same map comes back without laying out again.
    again = map_positions.load_points(family_library.catalog, family_library.model_key)
    assert np.array_equal(again.positions, rows.positions)


def test_new_files_land_inside_their_familys_region(family_library: Library, tmp_path: Path
                                                   ) -> None:
    catalog, key = family_library.catalog, family_library.model_key
    before = library_map.current_map(catalog, key)
    region = centres(before)
    write_families(tmp_path / "samples", per_family=3, first_seed=40)
    family_library.index_folders([str(tmp_path / "samples")])

    placed = library_map.place_new_files(catalog, key)
    assert placed == 3 * len(FAMILIES)
    after = map_positions.load_points(catalog, key)
    assert int(after.placed.sum()) == placed
    old = np.isin(after.file_ids, before.file_ids)
    assert np.array_equal(after.positions[old], before.positions), "the layout was not redone"
    assert outside_own_region(after, region, only=after.placed) == []
    assert library_map.place_new_files(catalog, key) == 0, "placed once"


def test_a_text_search_lights_up_its_familys_region(family_library: Library) -> None:
    rows = library_map.current_map(family_library.catalog, family_library.model_key)
    region = centres(rows)
    families = np.array([family_of(p) for p in rows.paths])
    for word in ("kick", "pad"):
        response = search_text(family_library, word, 8)
        light = library_map.light_by_score(rows.file_ids, {h.file.id: h.score for h in response.hits})
        lit = light > 0
        assert lit.sum() == 8
        assert light[families == word].mean() > 3 * light[families != word].mean(), word
        # Weighted by light, the glow is centred on the family's own region.
        glow = (rows.positions * light[:, None]).sum(axis=0) / light.sum()
        nearest = min(region, key=lambda f: float(((region[f] - glow) ** 2).sum()))
        assert nearest == word


def test_a_cancelled_relayout_keeps_the_stored_map(family_library: Library) -> None:
    catalog, key = family_library.catalog, family_library.model_key
    first = library_map.current_map(catalog, key)
    cancel = threading.Event()
    seen: list[float] = []

    def progress(fraction: float) -> None:
        seen.append(fraction)
        if fraction > 0.2:
            cancel.set()

    with pytest.raises(LayoutCancelled):
        library_map.relayout(catalog, key, progress, cancel, seed=5)
    assert seen and max(seen) < 1.0
    kept = map_positions.load_points(catalog, key)
    assert np.array_equal(kept.positions, first.positions)


# -- geometry, placement and the picture, on made-up points ---------------------------------------

def grid(n: int = 50) -> np.ndarray:
    xs, ys = np.meshgrid(np.arange(n, dtype=np.float64), np.arange(n, dtype=np.float64))
    return np.stack([xs.ravel(), ys.ravel()], axis=1)


def test_hit_testing_finds_the_point_under_the_pointer_or_none() -> None:
    geometry = MapGeometry(grid())
    assert geometry.nearest(10.2, 20.1, within=0.5) == 20 * 50 + 10
    assert geometry.nearest(10.5, 20.5, within=0.3) is None
    assert MapGeometry(np.zeros((0, 2))).nearest(0, 0, 1) is None


def test_a_lasso_selects_exactly_the_points_inside_it() -> None:
    points = grid()
    geometry = MapGeometry(points)
    triangle = np.array([(0.5, 0.5), (30.5, 0.5), (0.5, 30.5)])
    chosen = geometry.inside(triangle)
    x, y = points[chosen, 0], points[chosen, 1]
    assert len(chosen) == sum(1 for i in range(1, 31) for j in range(1, 31) if i + j < 31)
    assert (x >= 1).all() and (y >= 1).all() and (x + y < 31).all()
    assert len(geometry.inside(triangle[:2])) == 0, "two points enclose nothing"


def test_arrow_walking_goes_to_the_nearest_point_in_that_direction() -> None:
    points = np.array([(0, 0), (1, 0), (5, 0.2), (0, 2), (-3, 0), (0.2, -0.9)], np.float64)
    geometry = MapGeometry(points)
    assert geometry.step(0, 1, 0) == 1
    assert geometry.step(1, 1, 0) == 2
    assert geometry.step(0, 0, 1) == 3
    assert geometry.step(0, -1, 0) == 4
    assert geometry.step(0, 0, -1) == 5
    assert geometry.step(2, 1, 0) is None, "nothing lies to the right of the rightmost point"


def test_placing_by_neighbours_follows_the_nearest_cluster() -> None:
    rng = np.random.default_rng(0)
    centres_hi = rng.standard_normal((4, 50)) * 5
    centres_2d = np.array([(0, 0), (10, 0), (0, 10), (10, 10)], np.float64)
    labels = rng.integers(0, 4, 400)
    known = centres_hi[labels] + rng.standard_normal((400, 50))
    positions = centres_2d[labels] + rng.standard_normal((400, 2)) * 0.5
    new_labels = np.arange(4).repeat(5)
    new = centres_hi[new_labels] + rng.standard_normal((20, 50))
    placed = place_by_neighbours(known, positions, new)
    distance = np.linalg.norm(placed[:, None, :] - centres_2d[None], axis=2)
    assert (distance.argmin(axis=1) == new_labels).all()


def test_neighbours_kept_is_one_for_a_faithful_map_and_low_for_a_random_one() -> None:
    rng = np.random.default_rng(3)
    flat = rng.standard_normal((300, 2))
    vectors = np.concatenate([flat, np.ones((300, 1)) * 10], axis=1)  # cosine ~ the plane
    assert neighbours_kept(vectors, vectors[:, :2] * 10) > 0.9
    assert neighbours_kept(vectors, rng.standard_normal((300, 2))) < 0.15


def test_the_png_has_the_asked_size_and_the_points_colours(tmp_path: Path) -> None:
    points = np.array([(0, 0), (1, 1), (0.5, 0.2)], np.float64)
    codes, names = colour_codes(["loop", "one-shot", "loop"])
    assert names == ["loop", "one-shot"] and codes.tolist() == [0, 1, 0]
    image = render(points, codes, 64, 48)
    out = tmp_path / "map.png"
    write_png(out, image)
    data = out.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (64, 48)
    start = data.index(b"IDAT") + 4
    length = struct.unpack(">I", data[start - 8: start - 4])[0]
    raw = zlib.decompress(data[start: start + length])
    pixels = np.frombuffer(raw, np.uint8).reshape(48, 1 + 64 * 3)[:, 1:].reshape(48, 64, 3)
    assert np.array_equal(pixels, image)
    colours = {tuple(c) for c in pixels.reshape(-1, 3)}
    assert len(colours) == 3, "the background and two colours"


# -- the command line -----------------------------------------------------------------------------

def test_cli_map_json_lists_file_x_y_per_sound_and_draws_a_png(
        family_library: Library, tmp_path: Path, tiny_model: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    family_library.close()
    assert main(["--model", str(tiny_model), "map", "--json"]) == 0
    points = json.loads(capsys.readouterr().out)["points"]
    assert len(points) == 8 * len(FAMILIES)
    assert all(set(p) == {"file", "x", "y"} for p in points)
    assert {family_of(p["file"]) for p in points} == set(FAMILIES)

    out = tmp_path / "map.png"
    assert main(["--model", str(tiny_model), "map", "--png", str(out), "--size", "320x200",
                 "--colour", "folder"]) == 0
    assert struct.unpack(">II", out.read_bytes()[16:24]) == (320, 200)
    capsys.readouterr()
    assert main(["--model", str(tiny_model), "map", "--png", str(out), "--size", "big"]) == 2
    assert "--size must be WIDTHxHEIGHT" in capsys.readouterr().err
