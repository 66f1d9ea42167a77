"""Player: real playback through PortAudio into an ALSA file PCM, predecoding, and no device.

Tests that need a particular ALSA configuration run in a fresh interpreter (see asound.py):
PortAudio reads the configuration once, at import.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
import asound  # noqa: E402

from clapdesk.gui.player import AudioCache, Player  # noqa: E402

RATE = 44100
# Skipped on a developer machine without PortAudio; in CI (which installs it) it must run.
needs_portaudio = pytest.mark.skipif(
    not os.environ.get("CI") and not asound.portaudio_loads(),
    reason="PortAudio is not installed (apt-get install libportaudio2)")


def write_tone(path: Path, seconds: float = 0.5, freq: float = 440.0, rate: int = RATE) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32), rate)
    return path


# Runs in the child: plays each file of `plan` in turn and reports what the player did.
PLAY_SCRIPT = r"""
import json, sys, time
from PySide6.QtCore import QCoreApplication, QEventLoop, QTimer
from clapdesk.gui.player import Player

plan = json.loads(sys.argv[1] if len(sys.argv) > 1 else PLAN)
app = QCoreApplication([])
player = Player()
events = []
player.started.connect(lambda path: events.append(["started", path]))
player.stopped.connect(lambda: events.append(["stopped"]))
player.error.connect(lambda message: events.append(["error", message]))
positions = []
player.position.connect(positions.append)

def wait_for(signals, seconds):
    loop = QEventLoop()
    for signal in signals:
        signal.connect(loop.quit)
    QTimer.singleShot(int(seconds * 1000), loop.quit)
    loop.exec()
    for signal in signals:
        signal.disconnect(loop.quit)

def wait_for_stop(seconds):
    wait_for([player.stopped, player.error], seconds)

report = {"latencies": [], "cached_before_play": []}
for step in plan:
    if step.get("predecode"):
        player.predecode(step["predecode"])
        deadline = time.monotonic() + 5
        while any(player.decoded(p) is None for p in step["predecode"]) and time.monotonic() < deadline:
            time.sleep(0.005)
    report["cached_before_play"].append(player.decoded(step["play"]) is not None)
    player.set_volume(step.get("volume", 1.0))
    player.set_loop(bool(step.get("loop_for")))
    for skipped in step.get("skip_through", []):
        player.play(skipped)  # arrowing on before these finish decoding
    player.play(step["play"])
    if step.get("twice"):
        player.play(step["play"])
    if step.get("loop_for"):
        if not any(e[0] == "started" for e in events):
            wait_for([player.started, player.error], 5.0)  # a loaded machine decodes slowly
        wait_for_stop(step["loop_for"])  # looping never stops by itself
        player.stop()
    else:
        wait_for_stop(step.get("wait", 5.0))
    report["latencies"].append(player.last_start_latency)
report["events"] = events
report["positions"] = positions
report["available"] = player.available
player.close()
print(json.dumps(report))
"""


def run_plan(plan: list[dict], config: Path) -> dict:
    code = f"PLAN = {json.dumps(json.dumps(plan))}\n" + PLAY_SCRIPT
    return asound.run_script(code, asound.alsa_env(config))


@needs_portaudio
def test_a_tone_plays_through_portaudio_into_the_capture_file(tmp_path: Path) -> None:
    config, capture = asound.write_capture_config(tmp_path / "alsa")
    tone = write_tone(tmp_path / "tone.wav", seconds=0.5)

    report = run_plan([{"play": str(tone)}], config)

    assert report["events"] == [["started", str(tone)], ["stopped"]]
    assert report["positions"] and all(0.0 <= p <= 0.5 for p in report["positions"])
    assert report["positions"] == sorted(report["positions"])  # the playhead never runs back
    captured = asound.read_capture(capture)
    expected = int(0.5 * RATE)
    left = captured[:, 0]
    # PortAudio primes the device with a buffer or two of silence, and the stream ends on a
    # whole buffer: the tone sits between at most a couple of buffers of silence each side.
    onset = int(np.argmax(np.abs(left) > 1e-3))
    assert onset <= 2 * 4096
    assert expected <= len(captured) - onset <= expected + 2 * 4096
    tone_part = left[onset:onset + expected]
    assert np.sqrt(np.mean(tone_part ** 2)) > 0.3  # a 0.5-amplitude sine has RMS 0.354
    assert np.abs(captured[onset + expected + 1:]).max(initial=0.0) < 1e-3  # silent after
    spectrum = np.abs(np.fft.rfft(tone_part))
    assert abs(np.argmax(spectrum) * RATE / expected - 440.0) < 5.0  # the tone, not noise
    np.testing.assert_allclose(captured[:expected, 0], captured[:expected, 1], atol=1e-4)


@needs_portaudio
def test_arrowing_through_cold_rows_plays_only_the_last(tmp_path: Path) -> None:
    config, capture = asound.write_capture_config(tmp_path / "alsa")
    passed = [str(write_tone(tmp_path / f"skip{i}.wav", seconds=3.0, freq=200 + 40 * i))
              for i in range(3)]
    last = write_tone(tmp_path / "last.wav", seconds=0.3, freq=880)

    report = run_plan([{"play": str(last), "skip_through": passed}], config)

    assert report["events"] == [["started", str(last)], ["stopped"]]
    captured = asound.read_capture(capture)[:, 0]
    assert len(captured) < int(0.3 * RATE) + 2 * 4096  # none of the 3 s rows got through
    spectrum = np.abs(np.fft.rfft(captured))
    assert abs(np.argmax(spectrum) * RATE / len(captured) - 880.0) < 10.0


@needs_portaudio
def test_loop_repeats_and_volume_scales(tmp_path: Path) -> None:
    config, capture = asound.write_capture_config(tmp_path / "alsa")
    tone = write_tone(tmp_path / "short.wav", seconds=0.05)

    # The null device takes audio as fast as it comes, so 50 ms of wall time is many loops.
    report = run_plan([{"play": str(tone), "volume": 0.5, "loop_for": 0.05}], config)

    assert report["events"][0] == ["started", str(tone)] and report["events"][-1] == ["stopped"]
    captured = asound.read_capture(capture)[:, 0]
    assert len(captured) > 3 * int(0.05 * RATE)  # it came round at least three times
    assert 0.23 < np.abs(captured).max() < 0.27  # half of the file's 0.5 peak


@needs_portaudio
def test_a_predecoded_next_row_starts_without_decoding(tmp_path: Path) -> None:
    config, capture = asound.write_capture_config(tmp_path / "alsa")
    first = write_tone(tmp_path / "row1.wav", seconds=0.2, freq=330)
    # Long FLACs: decoding one on demand takes far longer than a cached start.
    t = np.arange(20 * RATE) / RATE
    rows = []
    for i in range(3):
        path = tmp_path / f"row{i + 2}.flac"
        sf.write(path, np.stack([0.3 * np.sin(2 * np.pi * (220 + 50 * i) * t)] * 2, axis=1), RATE)
        rows.append(str(path))

    plan = [{"play": str(first)}]
    plan += [{"play": row, "predecode": [row], "wait": 0.2} for row in rows]
    report = run_plan(plan, config)

    assert report["cached_before_play"] == [False, True, True, True]
    assert not [e for e in report["events"] if e[0] == "error"]
    cold, *warm = report["latencies"]
    assert None not in warm and cold is not None
    # The median of three, so one scheduler hiccup on a loaded CI machine does not decide it.
    assert float(np.median(warm)) < 0.030, report
    assert len(asound.read_capture(capture)) > int(0.2 * RATE)


@needs_portaudio
def test_no_output_device_is_reported_once_and_nothing_raises(tmp_path: Path) -> None:
    config = asound.write_missing_device_config(tmp_path / "alsa")
    tone = write_tone(tmp_path / "tone.wav")
    other = write_tone(tmp_path / "other.wav", freq=550)

    report = run_plan([{"play": str(tone), "wait": 1.0, "twice": True},
                       {"play": str(other), "predecode": [str(other)], "wait": 0.5}], config)

    errors = [e[1] for e in report["events"] if e[0] == "error"]
    assert len(errors) == 1, report["events"]
    assert "Audio playback is off" in errors[0] and "no audio output device was found" in errors[0]
    assert not [e for e in report["events"] if e[0] == "started"]
    assert report["available"] is False
    assert report["cached_before_play"][1] is True  # decoding (for the waveform) still works


@pytest.fixture
def player(qtbot):  # noqa: ANN001 - pytest-qt fixture
    made = Player()
    yield made
    made.close()


def test_a_bogus_device_gives_one_clear_error(player: Player, qtbot, tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.wav")
    errors: list[str] = []
    player.error.connect(errors.append)
    player.set_device("no such output 4711")

    with qtbot.waitSignal(player.error, timeout=5000):
        player.play(tone)
    player.play(tone)
    player.toggle(tone)
    player.seek(0.1)
    qtbot.wait(200)

    assert len(errors) == 1
    assert "Audio playback is off" in errors[0] and "'no such output 4711'" in errors[0]
    assert not player.available
    assert not player.is_playing


def test_an_unreadable_file_is_an_error_message_not_an_exception(player: Player, qtbot,
                                                                  tmp_path: Path) -> None:
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + os.urandom(64))
    messages: list[str] = []
    player.error.connect(messages.append)
    with qtbot.waitSignals([player.error, player.stopped], timeout=5000, order="strict"):
        player.play(broken)
    assert len(messages) == 1 and "broken.wav" in messages[0]
    assert not player.is_playing


def test_load_shares_the_decode_and_caches_it(player: Player, tmp_path: Path) -> None:
    tone = write_tone(tmp_path / "tone.wav", seconds=0.25)
    assert player.decoded(tone) is None
    data, rate = player.load(tone)
    assert rate == RATE and data.shape == (int(0.25 * RATE), 1)
    assert player.decoded(tone)[0] is data


def test_audio_cache_drops_the_least_recently_used_within_its_budget() -> None:
    block = np.zeros((1000, 1), np.float32)  # 4000 bytes
    cache = AudioCache(max_bytes=10_000)
    cache.put("a", block, 1)
    cache.put("b", block.copy(), 1)
    assert cache.get("a") is not None  # "a" is now the most recent
    cache.put("c", block.copy(), 1)
    assert "b" not in cache and "a" in cache and "c" in cache
    cache.put("huge", np.zeros((5000, 1), np.float32), 1)  # over half the budget: not kept
    assert "huge" not in cache and "a" in cache
