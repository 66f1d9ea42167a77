"""SIGKILL during `clapdesk finetune`: the library stays searchable, the active model never
points at a half-made version, and a version killed before its vectors were written is healed
when it is activated."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from child import child_env, clapdesk_cmd, integrity
from conftest import family_sound, write_sound
from finetune_models import random_audio_head

from clapdesk.cli import main

FAMILIES = ["kick", "hihat", "pad", "bass"]
TOTAL = 40
# Five packs of every family: enough for a run to measure a gain and save a version.
FINETUNE_ARGS: tuple[str, ...] = ()


def active_versions(catalog: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(catalog)
    try:
        return db.execute("SELECT key, value FROM meta WHERE key LIKE 'active_version:%' "
                          "AND value IS NOT NULL").fetchall()
    finally:
        db.close()


def vector_keys(catalog: Path) -> dict[str, int]:
    db = sqlite3.connect(catalog)
    try:
        return dict(db.execute("SELECT model_key, COUNT(*) FROM vectors GROUP BY model_key"))
    finally:
        db.close()


def kill_finetune(library: Path, model: Path, mark: Path, point: str) -> None:
    proc = subprocess.Popen(
        clapdesk_cmd(library, model, "finetune", "--steps", "400", *FINETUNE_ARGS),
        env=child_env(CLAPDESK_TEST_PAUSE_AT=f"{point}:{mark}"), stdout=subprocess.PIPE,
        stderr=subprocess.PIPE)
    started = time.monotonic()
    while not mark.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - started < 180
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)


def cli(capsys: pytest.CaptureFixture[str], library: Path, *args: str) -> tuple[int, dict, str]:
    """The same `clapdesk` in this process: only the runs that are killed need a child."""
    code = main(["--library", str(library), "--json", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if out.strip() else {}), err


def assert_searchable(capsys: pytest.CaptureFixture[str], library: Path) -> None:
    code, found, err = cli(capsys, library, "search", "punchy kick", "-k", "5")
    assert code == 0, err
    assert len(found["results"]) == 5


@pytest.fixture(scope="module")
def unknowing_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    """A run saves a version only when it gains, and the fitted model leaves nothing to gain:
    this one has a random audio head, so there is a version to kill after it is saved."""
    return random_audio_head(tiny_model, tmp_path_factory.mktemp("random-head"))


@pytest.mark.slow
def test_killed_fine_tune_leaves_a_working_library(tmp_path: Path, unknowing_model: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    tiny_model = unknowing_model
    samples = tmp_path / "samples"
    for i in range(TOTAL):
        family = FAMILIES[i % 4]
        write_sound(samples / f"Pack {i % 5}" / family / f"{family}_{i:02d}.wav",
                    family_sound(family, i, seconds=0.5))
    library = tmp_path / "library"
    catalog = library / "catalog.sqlite3"
    code, report, err = cli(capsys, library, "--model", str(tiny_model), "index", str(samples))
    assert code == 0 and report["indexed"] == TOTAL, err
    base_vectors = vector_keys(catalog)

    # 1. While it trains; 2. with the version folder in place but no vectors;
    # 3. with the vectors committed but the version not yet active.
    training, saved, ready = tmp_path / "training", tmp_path / "saved", tmp_path / "ready"
    kill_finetune(library, tiny_model, training, "training")
    kill_finetune(library, tiny_model, saved, "version-saved")
    kill_finetune(library, tiny_model, ready, "before-activate")
    assert integrity(catalog) == "ok"
    assert active_versions(catalog) == [], "no version became active"
    keys = vector_keys(catalog)
    assert {k: v for k, v in keys.items() if "+" not in k} == base_vectors
    assert all(count == TOTAL for key, count in keys.items() if "+" in key), "whole or nothing"
    assert_searchable(capsys, library)

    code, listed, err = cli(capsys, library, "models")
    assert code == 0, err
    names = [v["name"] for v in listed["versions"]]
    assert len(names) == 2 and listed["active"] is None  # the two killed after saving
    half_made = [n for n in names if not any(k.endswith("+" + n) for k in keys)]
    assert len(half_made) == 1, "the version killed before its vectors has none yet"
    code, _, err = cli(capsys, library, "models", "activate", half_made[0])
    assert code == 0, err
    assert vector_keys(catalog).get(f"{listed['base']}+{half_made[0]}") == TOTAL
    assert active_versions(catalog) == [(f"active_version:{listed['base']}", half_made[0])]
    assert_searchable(capsys, library)
    assert integrity(catalog) == "ok"
