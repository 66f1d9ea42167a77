"""Ableton Link with two peers, inside a network namespace this test makes.

The helper runs under `unshare --net` with only loopback up (multicast on, 224.0.0.0/4 routed to
lo), and refuses to enable Link unless that is all it can see, so no Link packet can leave the
machine. In it, the app's side (transport controls, player, stretch audition and ProjectAudition,
playing into an ALSA `file` capture) and a second Link peer playing the DAW share a session: the
DAW changes the tempo and the app's tempo field follows; the DAW starts its transport and a preview
asked for mid-bar starts on the session's next bar (checked against the DAW peer's own beat grid
and in the silence the capture holds before the sound); the DAW stops and the preview stops.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import asound  # noqa: E402
from loops import write_loop  # noqa: E402

NETNS_SETUP = ("ip link set lo up && ip link set lo multicast on && "
               "ip route add 224.0.0.0/4 dev lo && exec \"$0\" \"$@\"")


def _netns_works() -> str | None:
    """None when this machine lets a test make a loopback-only network namespace."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare (util-linux) and ip (iproute2)"
    probe = subprocess.run(["unshare", "--net", "--map-root-user", "sh", "-c", NETNS_SETUP,
                            "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"this machine does not allow network namespaces ({probe.stderr.strip()})"
    return None


HELPER = r"""
import json, os, sys, time

# The guard: Link is enabled only where loopback is the one interface there is.
interfaces = [line.split(":")[0].strip() for line in open("/proc/self/net/dev").read().splitlines()[2:]]
if interfaces != ["lo"]:
    sys.exit(f"refusing to enable Link outside a loopback-only namespace: {interfaces}")

from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication
from clapdesk.core.audition.link import LinkSession
from clapdesk.core.store.catalog import FileRecord
from clapdesk.gui.audition import AuditionController, TransportBar
from clapdesk.gui.player import Player
from clapdesk.gui.project_audition import ProjectAudition
from clapdesk.gui.settings import Settings
from clapdesk.gui.stretch_audition import StretchAudition
from clapdesk.gui.workers import TaskRunner

app = QApplication([])
runner = TaskRunner()
player = Player(runner=runner)
transport = TransportBar()
controller = AuditionController(player, transport, delay_ms=0)
record = FileRecord(1, LOOP, None, 0, 0, None, 2.0, 44100, 2, "WAV", "PCM_24", None, None,
                    bpm=120.0, bpm_source="filename", key=None, kind="loop")
stretch = StretchAudition(player, lambda path: record if path == LOOP else None, runner)
project = ProjectAudition(stretch, transport.project, controller, Settings())

def spin(seconds, until=lambda: False):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 10)
        time.sleep(0.002)
    return until()

report = {"link_off_at_start": project.link is None and not transport.project.link.isChecked()}
daw = LinkSession(tempo=120.0)
daw.enable(True)
transport.project.link.setChecked(True)   # the producer turns Link on
report["peers"] = spin(30, lambda: project.link.peers == 1 and daw.peers == 1)
spin(2, lambda: transport.project.peers.text() == "1 peer")
report["peers_label"] = transport.project.peers.text()

daw.set_tempo(97.5)                        # the DAW changes its tempo
report["followed"] = spin(10, lambda: abs(transport.project.tempo.value() - 97.5) < 0.005)
report["app_tempo"] = transport.project.tempo.value()

daw.set_playing(True)                      # the DAW starts
spin(10, lambda: project.link.playing)
spin(0.3)
asked_beat = daw.beat_at(daw.now())
started = []
player.started.connect(started.append)
controller.clicked(LOOP, was_current=False)
spin(10, lambda: player.first_sound_at is not None)
sounded = player.first_sound_at
offset = time.perf_counter() - daw.now() / 1e6  # perf_counter seconds - Link seconds
report.update(started=started, asked_beat=asked_beat,
              start_beat=daw.beat_at(int((sounded - offset) * 1e6)),
              pad_seconds=player.start_padding,
              tempo_now=daw.tempo)
player.set_loop(True)                      # keep it playing until the DAW stops
spin(0.2)
daw.set_playing(False)                     # the DAW stops
report["stopped"] = spin(5, lambda: not player.is_playing)
project.close()
player.close()
daw.close()
print(json.dumps(report))
"""


def test_the_app_follows_a_link_peer_and_starts_on_its_next_bar(tmp_path: Path) -> None:
    reason = _netns_works()
    if reason is not None:
        pytest.skip(reason)
    if not asound.portaudio_loads():
        pytest.skip("PortAudio is not installed (apt-get install libportaudio2)")
    loop = tmp_path / "beat 120bpm.wav"
    write_loop(loop, 120, 1, "A minor")
    config, capture = asound.write_capture_config(tmp_path / "alsa")
    env = asound.alsa_env(config)
    script = tmp_path / "helper.py"
    script.write_text(f"LOOP = {str(loop)!r}\n" + HELPER)
    done = subprocess.run(["unshare", "--net", "--map-root-user", "sh", "-c", NETNS_SETUP,
                           sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])

    assert report["link_off_at_start"]
    assert report["peers"], "the two peers never found each other"
    assert report["peers_label"] == "1 peer"
    assert report["followed"] and report["app_tempo"] == pytest.approx(97.5)
    assert report["started"] == [str(loop)]
    # The sound starts on a bar line of the DAW's grid (4 beats), the first one after the ask,
    # to within 1 ms (at 97.5 BPM a beat is 615 ms: 1 ms is 0.0016 beat).
    start = report["start_beat"]
    assert abs(start - round(start / 4) * 4) < 0.0016 * 1.01
    assert 0 < start - report["asked_beat"] <= 4 + 0.1
    # And the capture holds that wait as silence, to the frame, before the loop's first click:
    # the player's padding plus the silence PortAudio primes the ALSA buffer with before its
    # first callback (one buffer; a real card's clock is what the padding is computed against).
    audio = asound.read_capture(capture)[:, 0]
    first = int((abs(audio) > 1e-3).argmax()) / 44100
    assert 0 <= first - report["pad_seconds"] <= 0.05, (first, report)
    assert report["stopped"], "the preview kept playing after the DAW stopped"
