"""The observation hooks (hooks/sitecustomize.py) go into the clapdesk process a test starts and
nowhere else, and a hook that no longer finds its target stops the run instead of observing
nothing."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import types
from pathlib import Path

import pytest
from child import HOOKS, child_env, clapdesk_cmd
from conftest import family_sound, write_sound


def _hooks_module() -> types.ModuleType:
    """The hook file loaded as a plain module (no hook settings here: it installs nothing)."""
    spec = importlib.util.spec_from_file_location("clapdesk_test_hooks", HOOKS / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_hook_whose_target_was_renamed_raises_when_installed() -> None:
    hooks = _hooks_module()
    with pytest.raises(hooks.HookTargetMissing, match="renamed_away does not exist any more"):
        hooks.patch(types.SimpleNamespace(), "renamed_away", lambda original: original, "a hook")


def test_a_missing_target_stops_the_child_with_its_name(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "print('ran unobserved')"], capture_output=True,
                          text=True, timeout=120,
                          env=child_env(CLAPDESK_TEST_PAUSE_AT=f"no-such-point:{tmp_path / 'm'}"))
    assert done.returncode == 97
    assert "no pause point named 'no-such-point'" in done.stderr
    assert "ran unobserved" not in done.stdout


def test_hooks_run_in_the_clapdesk_process_and_not_in_its_decoders(tmp_path: Path,
                                                                  tiny_model: Path) -> None:
    samples = tmp_path / "samples"
    for i in range(4):
        write_sound(samples / f"kick_{i}.wav", family_sound("kick", i))
    fired, log = tmp_path / "fired.txt", tmp_path / "embedded.jsonl"
    proc = subprocess.run(
        clapdesk_cmd(tmp_path / "library", tiny_model, "index", str(samples)), capture_output=True,
        text=True, timeout=600,
        env=child_env(CLAPDESK_TEST_HOOKS_FIRED=str(fired), CLAPDESK_TEST_EMBED_LOG=str(log)))
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in fired.read_text().splitlines()]
    assert {pid for _, pid in lines} == {str(proc_pid(log))}, "a hook ran outside clapdesk itself"
    assert ["installed"] == [name for name, _ in lines if name == "installed"]
    assert "embed-log" in {name for name, _ in lines}  # the hook did observe the model's batches


def proc_pid(log: Path) -> int:
    """The clapdesk process's pid, as its embed-log lines give it."""
    import json

    pids = {json.loads(line)["pid"] for line in log.read_text().splitlines()}
    assert len(pids) == 1
    return pids.pop()
