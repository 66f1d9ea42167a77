"""A producer's first start, as separate clapdesk processes against a stand-in hub on 127.0.0.1:
nothing cached, main holding only pytorch_model.bin; a download killed with SIGKILL and started
again; the command line's progress lines; a model with missing weights refused, not remembered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import family_sound, write_sound
from hub_fixtures import (  # noqa: F401 - fixtures
    REPO,
    child_env,
    fresh_hub_cache_fixture,
    padded_weights,
    served_repo,
    standin_fixture,
)
from standin_hub import StandinHub

CLI = [sys.executable, "-m", "clapdesk"]


def run_cli(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, env=env, capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_first_start_with_only_a_pickle_on_main_indexes_and_answers_a_search(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path, tmp_path: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model, weights="pickle"))
    samples = tmp_path / "samples"
    for i, family in enumerate(["kick", "pad", "bass", "hihat"]):
        write_sound(samples / f"{family}_{i}.wav", family_sound(family, i))
    env = child_env(standin, fresh_hub_cache, tmp_path)

    indexed = run_cli(["--model", REPO, "--json", "index", str(samples)], env)
    assert indexed.returncode == 0, indexed.stderr
    assert json.loads(indexed.stdout)["indexed"] == 4
    # Progress as plain lines (stderr is a pipe here): no bars, no carriage returns.
    assert "clapdesk: downloading pytorch_model.bin:" in indexed.stderr
    assert "\r" not in indexed.stderr and "it/s" not in indexed.stderr
    assert standin.served["pytorch_model.bin"] == standin.file(REPO, "pytorch_model.bin").size

    searched = run_cli(["--json", "search", "kick", "-k", "4"], env)
    assert searched.returncode == 0, searched.stderr
    results = json.loads(searched.stdout)["results"]
    assert len(results) == 4
    # The library remembered the hub model, and the second start fetched nothing.
    assert standin.served["pytorch_model.bin"] == standin.file(REPO, "pytorch_model.bin").size
    offline = dict(env, HF_HUB_OFFLINE="1")
    assert run_cli(["--json", "search", "pad", "-k", "2"], offline).returncode == 0


def test_a_download_killed_with_sigkill_resumes_on_the_next_start(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path, tmp_path: Path) -> None:
    files = served_repo(tiny_model)
    files["model.safetensors"] = padded_weights(tiny_model, tmp_path / "big.safetensors", 8)
    standin.add_commit(REPO, files)
    size = standin.file(REPO, "model.safetensors").size
    standin.faults.bytes_per_s = 2e6  # four seconds for the file: time to kill it half-way
    env = child_env(standin, fresh_hub_cache, tmp_path)
    child = subprocess.Popen(CLI + ["--model", REPO, "doctor"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while standin.served["model.safetensors"] < size // 2 and time.monotonic() < deadline:
            assert child.poll() is None, "the download ended before it could be killed"
            time.sleep(0.02)
        os.kill(child.pid, signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    killed_at = standin.served["model.safetensors"]
    assert killed_at < size

    standin.faults.bytes_per_s = None
    second = run_cli(["--model", REPO, "--json", "doctor"], env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["model_state"] == "available"
    total = standin.served["model.safetensors"]
    assert total <= 1.3 * size, (total, size)
    print(f"\nkilled at {killed_at} of {size} bytes; {total} served in all ({total / size:.2f}x)")


def test_progress_is_a_line_every_few_seconds_when_stderr_is_not_a_terminal() -> None:
    import io

    from clapdesk.core.embed.download import DownloadStatus, StderrProgress

    stream = io.StringIO()
    show = StderrProgress(stream, every_s=5.0)
    total = 776_000_000
    for done in range(0, total, total // 100):  # a hundred updates in well under a second
        show(DownloadStatus("model.safetensors", done, total, 45e6, (total - done) / 45e6))
    show(DownloadStatus("model.safetensors", total, total, 45e6, 0.0))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2  # the first update, and the end
    assert lines[0] == ("clapdesk: downloading model.safetensors: 0 of 776 MB (0%), 45.0 MB/s, "
                        "about 17 s left")
    assert lines[1].startswith("clapdesk: downloading model.safetensors: 776 of 776 MB (100%)")
    assert "\r" not in stream.getvalue() and "\x1b" not in stream.getvalue()


def test_speed_and_time_left_come_from_the_last_few_seconds() -> None:
    from clapdesk.core.embed.download import RateMeter

    now = [0.0]
    meter = RateMeter(window_s=5.0, clock=lambda: now[0])
    for second in range(11):  # 1 MB/s for ten seconds, then 10 MB/s
        now[0] = float(second)
        status = meter.status("f", second * 1_000_000, 100_000_000)
    assert status.rate == pytest.approx(1e6)
    for second in range(11, 21):
        now[0] = float(second)
        status = meter.status("f", 10_000_000 + (second - 10) * 10_000_000, 200_000_000)
    assert status.rate == pytest.approx(10e6)
    assert status.seconds_left == pytest.approx((200e6 - 110e6) / 10e6)


def test_a_model_with_missing_weights_is_refused_plainly_and_never_remembered(
        tiny_model: Path, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from safetensors.torch import load_file, save_file

    from clapdesk.cli import main
    from clapdesk.core.library import Library

    broken = tmp_path / "broken-model"
    broken.mkdir()
    for item in tiny_model.iterdir():
        if item.is_file():
            (broken / item.name).write_bytes(item.read_bytes())
    tensors = load_file(str(broken / "model.safetensors"))
    del tensors["text_projection.linear2.weight"]
    save_file(tensors, str(broken / "model.safetensors"), metadata={"format": "pt"})

    library_dir = tmp_path / "library"
    samples = tmp_path / "samples"
    write_sound(samples / "kick.wav", family_sound("kick", 0))
    code = main(["--library", str(library_dir), "--model", str(broken), "index", str(samples)])
    err = capfd.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == [
        f"clapdesk: the model in '{broken.resolve()}' is incomplete: 1 of its weights are missing "
        "(text_projection.linear2.weight); it would give meaningless results. Download or "
        "convert the model again"]
    assert "LOAD REPORT" not in err and "\x1b" not in err
    library = Library(library_dir)
    try:
        assert library.catalog.get_meta("model") is None  # the broken model is not remembered
        assert library.catalog.count_files() == 0
    finally:
        library.close()
