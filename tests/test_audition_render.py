"""Audition at the project's tempo and key: plans, renders measured on generated loops, the
render cache, drag-out files and `clapdesk render`.

Every render here is measured on its output: the beat grid (a straight line through the click
times) gives the tempo and the start offset, the length gives the bar count, an FFT gives the
pitch of the sustained root. Targets from issue 18: tempo within 0.5 %, pitch within 10 cents,
start offset under 1 ms.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
from loops import cents, make_loop, measured_tempo, pitch_hz, root_hz, write_loop

from clapdesk.core.audition.plan import (
    RenderPlan,
    TapTempo,
    key_shift,
    note_shift,
    parse_key,
    plan_for,
    rendered_name,
    tempo_speed,
)
from clapdesk.core.audition.render import (
    RenderCache,
    Renderer,
    export_rendered,
    render_file,
    render_key,
)
from clapdesk.core.audition.stretch import rendered_frames, stretch, stretch_section

RATE = 44100


# --------------------------------------------------------------------------- plans
def test_tempo_is_fitted_by_the_nearest_of_its_reading_double_and_half() -> None:
    assert tempo_speed(120, 100) == pytest.approx(100 / 120)
    assert tempo_speed(70, 140) == pytest.approx(1.0)  # a half-time loop fits as it is
    assert tempo_speed(174, 90) == pytest.approx(180 / 174)  # read as 87: stretched 3 %, not 48 %
    assert tempo_speed(60, 175) == pytest.approx(175 / 120)
    for file_bpm in (70, 85, 99.5, 128, 140, 174):
        for project in (70, 90, 120, 150, 180):
            speed = tempo_speed(file_bpm, project)
            assert 1 / np.sqrt(2) - 1e-9 <= speed <= np.sqrt(2) + 1e-9  # never more than needed


def test_key_shift_takes_the_shortest_path_and_relative_keys_are_the_same() -> None:
    assert key_shift("A minor", "C major") == 0
    assert key_shift("C major", "A minor") == 0
    assert key_shift("D minor", "A minor") == -5  # not +7
    assert key_shift("A minor", "B minor") == 2
    assert key_shift("E major", "C# minor") == 0
    for a in ("C major", "F# minor", "A# major", "G minor"):
        for b in ("C# major", "E minor", "B major", "D# minor"):
            assert -6 <= key_shift(a, b) <= 6


def test_one_shots_keep_their_timing_and_go_to_the_nearest_fitting_note() -> None:
    assert note_shift("F major", "A minor") == 0  # F is in A minor: left where it is
    assert note_shift("C# major", "C major") == -1  # to C, the tonic, rather than up to D
    assert note_shift("F# major", "C major") == 1  # to G, the fifth, rather than down to F
    plan = plan_for("one-shot", None, "C# major", 120, "C major", True, True)
    assert plan.speed == 1.0 and plan.semitones == -1
    assert plan_for("one-shot", None, "C# major", 120, "C major", True, False).is_identity
    assert plan_for("one-shot", None, None, 120, "C major", True, True).is_identity


def test_locks_off_or_missing_facts_play_the_original() -> None:
    assert plan_for("loop", 90, "D minor", 120, "A minor", False, False).is_identity
    assert plan_for("loop", None, None, 120, "A minor", True, True).is_identity
    tempo_only = plan_for("loop", 90, "D minor", 120, "A minor", True, False)
    assert tempo_only.speed == pytest.approx(4 / 3) and tempo_only.semitones == 0


def test_keys_are_read_as_producers_type_them_and_refused_clearly() -> None:
    assert parse_key("A minor") == parse_key("am") == parse_key("a min") == "A minor"
    assert parse_key("Bb") == "A# major" and parse_key("F#m") == "F# minor"
    assert parse_key("") is None
    with pytest.raises(ValueError, match="not a key"):
        parse_key("H minor")


def test_rendered_names_say_tempo_and_key() -> None:
    plan = plan_for("loop", 90, "D minor", 120, "A minor", True, True)
    assert rendered_name("kick_loop", plan) == "kick_loop 120bpm Am.wav"
    assert rendered_name("a/b", RenderPlan(1.0, 2, None, "C major")) == "a_b C.wav"


def test_tap_tempo_follows_the_last_taps_and_starts_afresh_after_a_pause() -> None:
    taps = TapTempo()
    assert taps.tap(10.0) is None
    tempo = None
    for i in range(1, 6):
        tempo = taps.tap(10.0 + i * 0.5 + (0.01 if i % 2 else -0.01))  # a little unsteady
    assert tempo == pytest.approx(120, abs=1.5)
    assert taps.tap(20.0) is None  # after a pause: a new count
    assert taps.tap(20.6) == pytest.approx(100)


# --------------------------------------------------------------------------- renders
CASES = [  # file tempo, file key, project tempo, project key
    (90, "D minor", 120, "A minor"),
    (120, "G minor", 100, "E minor"),
    (100, "C minor", 128, "F# minor"),
    (140, "E major", 70, "F major"),  # half time: no stretch, only the shift
]


@pytest.mark.parametrize(("file_bpm", "file_key", "bpm", "key"), CASES)
def test_a_rendered_loop_has_the_project_tempo_key_and_start(file_bpm: float, file_key: str,
                                                            bpm: float, key: str) -> None:
    bars = 4
    loop = make_loop(file_bpm, bars, file_key, RATE)
    plan = plan_for("loop", file_bpm, file_key, bpm, key, True, True)
    out = stretch(loop, RATE, plan)
    heard_bpm = file_bpm * plan.speed  # the project tempo, or its double / half
    assert heard_bpm in (pytest.approx(bpm), pytest.approx(2 * bpm), pytest.approx(bpm / 2))
    # The length is a whole number of bars at the heard tempo.
    bar_count = len(out) / RATE / (4 * 60 / heard_bpm)
    assert bar_count == pytest.approx(bars, rel=0.005)
    measured_bpm, offset = measured_tempo(out, RATE)
    assert measured_bpm == pytest.approx(heard_bpm, rel=0.005)
    assert abs(offset) < 0.001, f"the first beat is {offset * 1000:.3f} ms off"
    expected_hz = root_hz(file_key) * 2 ** (plan.semitones / 12)
    assert abs(cents(pitch_hz(out, RATE), expected_hz)) < 10


def test_a_one_shot_keeps_its_length_and_moves_to_the_note() -> None:
    t = np.arange(int(0.8 * RATE)) / RATE
    hit = (0.4 * np.sin(2 * np.pi * root_hz("C# major") * t) * np.exp(-t * 3))[:, None]
    plan = plan_for("one-shot", None, "C# major", 97, "C major", True, True)
    out = stretch(hit.astype(np.float32), RATE, plan)
    assert len(out) == len(hit)
    assert abs(cents(pitch_hz(out[: RATE // 2], RATE), root_hz("C major"))) < 10


def test_pieces_rendered_apart_line_up_with_the_whole_render() -> None:
    loop = make_loop(95, 4, "A minor", RATE)
    plan = plan_for("loop", 95, "A minor", 120, "A minor", True, True)
    full = stretch(loop, RATE, plan)
    total = rendered_frames(loop, plan)
    assert total == len(full)
    pieces = [(0, RATE // 2), (RATE // 2, 3 * RATE // 2), (3 * RATE // 2, total)]
    joined = np.concatenate([stretch_section(loop, RATE, plan, a, b) for a, b in pieces])
    assert len(joined) == total
    tempo, offset = measured_tempo(joined, RATE)
    assert tempo == pytest.approx(120, rel=0.001) and abs(offset) < 0.001
    # The pieces are the whole render's own frames, so the sustained note goes on through the
    # joins in phase (a piece rendered from the middle would restart its phases).
    tone = make_loop(95, 4, "A minor", RATE) - make_loop(95, 4, None, RATE)  # the note alone
    full_tone = stretch(tone, RATE, plan)
    joined_tone = np.concatenate([stretch_section(tone, RATE, plan, a, b) for a, b in pieces])
    error = np.sqrt(np.mean((joined_tone - full_tone) ** 2)) / np.sqrt(np.mean(full_tone ** 2))
    assert error < 1e-3


# --------------------------------------------------------------------------- cache and files
def test_the_cache_keeps_renders_in_memory_and_on_disk_per_file_state(tmp_path) -> None:
    source = tmp_path / "groove 90bpm.wav"
    write_loop(source, 90, 1, "A minor")
    plan = RenderPlan(4 / 3, 0, 120.0)
    key = render_key(str(source), plan)
    assert key != render_key(str(source), RenderPlan(1.25, 0, 112.5))
    cache = RenderCache(tmp_path / "cache")
    data, rate = render_file(str(source), plan, cache)
    assert cache.file_for(key).is_file()
    fresh = RenderCache(tmp_path / "cache")  # a new start: read back from disk, not rendered
    again = fresh.get(key)
    assert again is not None and np.array_equal(again[0], data) and again[1] == rate
    os.utime(source, ns=(1, 1))  # the file changed: another key, nothing stale is played
    assert fresh.get(render_key(str(source), plan)) is None


def test_drag_out_files_are_named_kept_and_never_overwrite_another_sound(tmp_path) -> None:
    plan = plan_for("loop", 90, "D minor", 120, "A minor", True, True)
    audio = make_loop(120, 1, "A minor", RATE)
    exports = tmp_path / "exports"
    first = export_rendered("/lib/kick_loop.wav", plan, audio, RATE, exports)
    assert first.name == "kick_loop 120bpm Am.wav"
    assert export_rendered("/lib/kick_loop.wav", plan, audio, RATE, exports) == first
    other = export_rendered("/other/kick_loop.wav", plan, audio * 0.5, RATE, exports)
    assert other.name == "kick_loop 120bpm Am (2).wav"
    written, rate = sf.read(first, dtype="float32", always_2d=True)
    assert rate == RATE and sf.info(first).subtype == "FLOAT"
    assert np.array_equal(written, audio)  # overs above full scale kept, nothing clipped
    assert {p.name for p in exports.iterdir()} == {first.name, other.name}  # no partials left


def test_the_helper_processes_render_what_this_process_would(tmp_path) -> None:
    loop = make_loop(90, 2, "D minor", RATE)
    plan = plan_for("loop", 90, "D minor", 120, "A minor", True, True)
    renderer = Renderer(RenderCache(tmp_path / "cache"))
    try:
        head = renderer.section(loop, RATE, plan, 0, RATE // 2).result(timeout=120)
        full = renderer.full("k", loop, RATE, plan).result(timeout=120)
    finally:
        renderer.close()
    here = stretch(loop, RATE, plan)
    assert np.array_equal(full, here)
    assert len(head) == RATE // 2
    assert measured_tempo(np.concatenate([head, here[RATE // 2:]]), RATE)[0] == pytest.approx(
        120, rel=0.001)


# --------------------------------------------------------------------------- the CLI
def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "clapdesk", *args], capture_output=True,
                          text=True, env=env, timeout=300)


def test_clapdesk_render_writes_the_loop_at_the_tempo_and_key(tmp_path) -> None:
    source = tmp_path / "dusty groove 90bpm Dm.wav"
    write_loop(source, 90, 4, "D minor")
    out = tmp_path / "out" / "groove.wav"
    env = dict(os.environ, CLAPDESK_LIBRARY=str(tmp_path / "lib"),
               CLAPDESK_CACHE=str(tmp_path / "cache"))
    done = _cli("render", str(source), "--bpm", "120", "--key", "A minor", "-o", str(out),
                "--json", env=env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert (report["bpm"], report["key"], report["semitones"]) == (120, "A minor", -5)
    data, rate = sf.read(out, dtype="float32", always_2d=True)
    assert report["frames"] == len(data)
    tempo, offset = measured_tempo(data, rate)
    assert tempo == pytest.approx(120, rel=0.005) and abs(offset) < 0.001
    assert abs(cents(pitch_hz(data, rate), root_hz("A minor") / 2)) < 10  # D3 down 5 = A2
    assert not (tmp_path / "lib").exists()  # rendering a file creates no library

    bad = _cli("render", str(source), "--bpm", "120", "--key", "H minor", "-o", str(out),
               env=env)
    assert bad.returncode == 2 and "'H minor' is not a key" in bad.stderr
    missing = _cli("render", str(tmp_path / "nope.wav"), "--bpm", "120", "-o", str(out),
                   env=env)
    assert missing.returncode == 1 and "no such file" in missing.stderr


ORPHAN_SCRIPT = r"""
import os, sys
from clapdesk.core.audition.render import Renderer

renderer = Renderer()
renderer.warm()
for name in ("head", "full"):
    renderer._pool(name).submit(os.getpid).result(timeout=60)
print(" ".join(str(p.pid) for pool in renderer._pools.values() for p in pool._processes.values()),
      flush=True)
os._exit(0)  # as the app leaves with a job still running, or as a crash or a kill would
"""


def test_the_helper_processes_end_with_the_app_however_it_ends(tmp_path) -> None:  # noqa: ANN001
    import time

    # Output to a file, not a pipe: helpers left behind would hold a pipe open, and waiting
    # for its end would hang instead of failing.
    out, err = tmp_path / "out.txt", tmp_path / "err.txt"
    with open(out, "w") as sink, open(err, "w") as errors:
        done = subprocess.run([sys.executable, "-c", ORPHAN_SCRIPT], stdout=sink, stderr=errors,
                              timeout=120)
    assert done.returncode == 0, err.read_text()
    helpers = [int(pid) for pid in out.read_text().split()]
    assert len(helpers) == 2

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in helpers) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [pid for pid in helpers if alive(pid)]
    for pid in left:  # leave nothing behind for the rest of the suite
        os.kill(pid, 9)
    assert not left, "render helpers outlived the app that started them"
