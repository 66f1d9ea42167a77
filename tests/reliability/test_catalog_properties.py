"""Property-based round-trips through the real SQLite catalog: any file name the OS allows
(including bytes that are not UTF-8), any vector, any tags come back exactly as stored."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from clapdesk.core.store.catalog import Catalog, encode_path, prefix_range

ROOT = "/library/Samples"

# A POSIX file name: any bytes but '/' and NUL, not "." or "..".
names = st.binary(min_size=1, max_size=60).map(
    lambda b: b.replace(b"/", b"_").replace(b"\0", b"_")).filter(lambda b: b not in (b".", b".."))
folders = st.lists(names, min_size=0, max_size=3).map(tuple)
vectors = arrays(np.float32, st.integers(1, 64),
                 elements=st.floats(width=32, allow_nan=True, allow_infinity=True))
tags = st.lists(st.tuples(st.text(min_size=1, max_size=30), st.floats(0, 1, width=32)),
                max_size=8, unique_by=lambda t: t[0])

SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def fresh_catalog() -> Catalog:
    return Catalog(":memory:")


@SETTINGS
@given(st.lists(st.tuples(folders, names), min_size=1, max_size=12, unique=True))
def test_paths_round_trip_byte_for_byte(entries: list[tuple[tuple[bytes, ...], bytes]]) -> None:
    catalog = fresh_catalog()
    try:
        root_id = catalog.add_root(ROOT)
        stored = {}
        for parts, name in entries:
            raw = b"/".join([os.fsencode(ROOT), *parts, name])
            path = os.fsdecode(raw)
            with catalog.transaction():
                file_id = catalog.upsert_file(path, root_id, len(raw), 7, None)
            stored[raw] = file_id
        assert {encode_path(r.path): r.id for r in catalog.files()} == stored
        for raw, file_id in stored.items():
            record = catalog.file_by_path(os.fsdecode(raw))
            assert record is not None and record.id == file_id
            assert encode_path(record.path) == raw
    finally:
        catalog.close()


@SETTINGS
@given(folders, names, names)
def test_a_folder_prefix_range_holds_exactly_its_files(parts: tuple[bytes, ...], inside: bytes,
                                                       suffix: bytes) -> None:
    folder = b"/".join([os.fsencode(ROOT), *parts])
    low, high = prefix_range(os.fsdecode(folder))
    assert low <= folder + b"/" + inside < high
    assert low <= folder + b"/" + inside + b"/deeper.wav" < high
    # A sibling folder whose name merely starts with this one's ("Drums" / "Drums2") is outside.
    assert not low <= folder + suffix + b"/x.wav" < high
    assert not low <= folder < high


@SETTINGS
@given(st.lists(vectors, min_size=1, max_size=6), st.text(min_size=1, max_size=40))
def test_vectors_and_features_round_trip_exactly(rows: list[np.ndarray], model_key: str) -> None:
    dim = rows[0].shape[0]
    rows = [np.resize(r, dim) for r in rows]  # one model, one size
    catalog = fresh_catalog()
    try:
        root_id = catalog.add_root(ROOT)
        with catalog.transaction():
            ids = [catalog.upsert_file(f"{ROOT}/f{i}.wav", root_id, 1, 1, None)
                   for i in range(len(rows))]
            for file_id, row in zip(ids, rows):
                catalog.put_vector(file_id, model_key, row)
                catalog.put_feature(file_id, model_key.split("+")[0], row[::-1])
        got_ids, matrix = catalog.vectors(model_key)
        order = {int(i): n for n, i in enumerate(got_ids)}
        for file_id, row in zip(ids, rows):
            assert matrix[order[file_id]].tobytes() == row.tobytes()  # NaN payloads included
        feat_ids, feats = catalog.features(model_key.split("+")[0], ids)
        for file_id, feat in zip(feat_ids, feats):
            assert feat.tobytes() == rows[ids.index(int(file_id))][::-1].tobytes()
        assert catalog.max_vector_row(model_key) >= len(rows)
        assert catalog.files_missing_vectors(model_key) == []
    finally:
        catalog.close()


@SETTINGS
@given(tags, tags, st.sampled_from(["auto", "folder", "filename", "csv"]))
def test_tags_round_trip_user_first(user: list[tuple[str, float]], other: list[tuple[str, float]],
                                    source: str) -> None:
    catalog = fresh_catalog()
    try:
        root_id = catalog.add_root(ROOT)
        with catalog.transaction():
            file_id = catalog.upsert_file(f"{ROOT}/x.wav", root_id, 1, 1, None)
            catalog.set_tags(file_id, user, "user")
            catalog.set_tags(file_id, other, source)
        got = catalog.tags_of([file_id])[file_id]
        assert sorted(got) == sorted([(t, "user", s) for t, s in user] +
                                     [(t, source, s) for t, s in other])
        sources = [s for _, s, _ in got]
        assert sources == sorted(sources, key=lambda s: s != "user"), "user tags come first"
        # Replacing one source's tags leaves the other's alone.
        with catalog.transaction():
            catalog.set_tags(file_id, [], source)
        assert sorted(catalog.tags_of([file_id])[file_id]) == sorted(
            (t, "user", s) for t, s in user)
    finally:
        catalog.close()


@SETTINGS
@given(st.floats(20, 300, width=32), st.floats(-120, 0, width=32), st.integers(1, 8))
def test_numpy_numbers_are_stored_as_numbers(bpm: float, peak: float, channels: int) -> None:
    """Analysis hands over numpy scalars; a np.float32 must not land in SQLite as a BLOB."""
    catalog = fresh_catalog()
    try:
        root_id = catalog.add_root(ROOT)
        with catalog.transaction():
            file_id = catalog.upsert_file(
                f"{ROOT}/loop.wav", root_id, 1, 1, None, bpm=np.float32(bpm),
                peak_db=np.float64(peak), channels=np.int64(channels), duration=np.float32(2.5))
        kinds = catalog.db.execute("SELECT typeof(bpm), typeof(peak_db), typeof(channels), "
                                   "typeof(duration) FROM files WHERE id = ?", (file_id,)).fetchone()
        assert kinds == ("real", "real", "integer", "real")
        record = catalog.get_file(file_id)
        assert record is not None and record.bpm == pytest.approx(bpm, rel=1e-6)
        assert record.channels == channels
    finally:
        catalog.close()
