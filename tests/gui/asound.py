"""ALSA configurations for playback tests, and a runner for scripts that must start PortAudio.

PortAudio reads the ALSA configuration once, when sounddevice is imported, so every test that
plays through a configuration written here runs its script in a fresh Python process with
`ALSA_CONFIG_PATH` set (see `run_script`).

    config, capture = write_capture_config(folder)   # default PCM = a file of raw s16 stereo
    config = write_input_config(folder, wav)         # default PCM records what `wav` holds
    config = write_missing_device_config(folder)     # default PCM = a sound card that is not there
    result = run_script(code, alsa_env(config))       # the JSON object the script printed last
    frames = read_capture(capture)                    # float32 (frames, 2)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

SYSTEM_ALSA_CONF = Path("/usr/share/alsa/alsa.conf")
CAPTURE_CHANNELS = 2


def write_capture_config(folder: Path) -> tuple[Path, Path]:
    """`default` = `plug` into a `file` PCM over `null`: whatever is played lands in a file.

    The plug fixes the file's format (s16, two channels) whatever the player opens with, and
    keeps the player's rate. The null slave consumes audio as fast as it comes, so a 0.5 s
    sound is captured in a few milliseconds.
    """
    folder.mkdir(parents=True, exist_ok=True)
    capture = folder / "capture.raw"
    config = folder / "asoundrc"
    config.write_text(
        "pcm.!default {\n"
        "    type plug\n"
        f"    slave {{ pcm \"clapdesk_capture\"; format S16_LE; channels {CAPTURE_CHANNELS} }}\n"
        "}\n"
        "pcm.clapdesk_capture {\n"
        "    type file\n"
        "    slave.pcm \"null\"\n"
        f"    file \"{capture}\"\n"
        "    format \"raw\"\n"
        "}\n"
    )
    return config, capture


def write_input_config(folder: Path, wav: Path) -> tuple[Path, int]:
    """`default` = a `file` PCM over `null` whose capture side reads `wav`: recording from it
    gives the WAV's samples, mono float32 at its rate (returned), then silence.

    The file goes in as raw float32 and the PCM is opened directly, without `plug`: with a plug
    in between, alsa-lib 1.2's file plugin loses frames in the mmap path PortAudio uses (it
    reads what it offers, and the plug commits less). Recorders must open it mono, float32, at
    the returned rate, which is what clapdesk's recorder asks of any device.
    """
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    data, rate = sf.read(wav, dtype="float32", always_2d=True)
    raw = folder / "input.raw"
    data.mean(axis=1).astype("<f4").tofile(raw)
    config = folder / "asoundrc-input"
    config.write_text(
        "pcm.!default {\n"
        "    type file\n"
        "    slave.pcm \"null\"\n"
        "    file \"/dev/null\"\n"
        f"    infile \"{raw}\"\n"
        "    format \"raw\"\n"
        "}\n"
    )
    return config, int(rate)


def write_missing_device_config(folder: Path) -> Path:
    """`default` = a hardware card that does not exist, as on a machine with no sound card."""
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "asoundrc-missing"
    config.write_text("pcm.!default {\n    type hw\n    card 29\n}\n"
                      "ctl.!default {\n    type hw\n    card 29\n}\n")
    return config


def alsa_env(config: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["ALSA_CONFIG_PATH"] = f"{SYSTEM_ALSA_CONF}:{config}"
    env.setdefault("QT_QPA_PLATFORM", "offscreen")
    return env


def read_capture(capture: Path) -> np.ndarray:
    raw = np.fromfile(capture, dtype="<i2") if capture.exists() else np.zeros(0, "<i2")
    usable = len(raw) - len(raw) % CAPTURE_CHANNELS
    return (raw[:usable].reshape(-1, CAPTURE_CHANNELS) / 32768.0).astype(np.float32)


def portaudio_loads() -> bool:
    """True when the PortAudio library is installed (libportaudio2 on Debian)."""
    probe = subprocess.run([sys.executable, "-c", "import sounddevice"], capture_output=True)
    return probe.returncode == 0


def run_script(code: str, env: dict[str, str], timeout: float = 60.0) -> dict[str, Any]:
    """Run `code` in a new interpreter; it must print one JSON object as its last line."""
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                          text=True, timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"script failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"script printed nothing:\n{done.stderr}")
    return json.loads(lines[-1])


# The start of every child script that runs the real window into an ALSA capture: the window
# on the library of $CLAPDESK_LIBRARY, started, `spin` to run its events for a while and
# `finish` to print the report and leave. Each test's own part follows (its imports first).
WINDOW_PREAMBLE = r"""
import json, os, time
from PySide6.QtCore import QEventLoop
from PySide6.QtWidgets import QApplication
from clapdesk.core.library import Library
from clapdesk.gui.main_window import MainWindow
from clapdesk.gui.settings import Settings

app = QApplication([])
window = MainWindow(Library(allow_download=False), Settings())
window.indexing.watching = False
window.show()
window.start()

def spin(seconds, until=lambda: False):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not until():
        app.processEvents(QEventLoop.ProcessEventsFlag.AllEvents, 20)
        time.sleep(0.005)

def finish(report):
    # Leave as the app does (gui/app.py): with a job still running (the model loading), an
    # interpreter tearing Qt down beside it can crash after the report is out.
    window.shutdown()
    print(json.dumps(report), flush=True)
    if window.left_running:
        os._exit(0)
"""
