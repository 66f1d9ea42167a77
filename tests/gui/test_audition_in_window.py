"""Arrowing through results in the real window plays the new row through PortAudio.

The window runs in a fresh interpreter whose ALSA default device is a `file` PCM (see asound.py:
PortAudio reads the ALSA configuration once, at import), so the test reads back exactly what a
producer would have heard.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import family_sound, write_sound

sys.path.insert(0, str(Path(__file__).parent))
import asound  # noqa: E402

from clapdesk.core.library import Library  # noqa: E402

needs_portaudio = pytest.mark.skipif(
    not os.environ.get("CI") and not asound.portaudio_loads(),
    reason="PortAudio is not installed (apt-get install libportaudio2)")

WINDOW_SCRIPT = asound.WINDOW_PREAMBLE + r"""
from PySide6.QtCore import QEventLoop, Qt, QTimer
from PySide6.QtTest import QTest

spin(30, lambda: window.model.rowCount() == EXPECTED_ROWS)
window.view.setFocus()
window.view.setCurrentIndex(window.proxy.index(0, 0))
QTest.keyClick(window.view, Qt.Key.Key_Down)   # two quick presses: only where the
QTest.keyClick(window.view, Qt.Key.Key_Down)   # selection rests is played
selected_row = window.view.currentIndex().row()
hit = window.current_hit()
started = []
window.player.started.connect(started.append)
spin(10, lambda: bool(started))
spin(10, lambda: not window.player.is_playing)
report = {"rows": window.model.rowCount(), "selected_row": selected_row,
          "played": started, "selected_path": hit.file.path,
          "available": window.player.available}
finish(report)
"""


@needs_portaudio
def test_down_arrow_plays_the_new_row_into_the_capture_device(tiny_model: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    families = ("kick", "pad", "bass", "hihat")
    for i, family in enumerate(families):
        write_sound(folder / f"{i}_{family}.wav", family_sound(family, i, seconds=1.0 + 0.25 * i))
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])
    library.close()

    config, capture = asound.write_capture_config(tmp_path / "alsa")
    env = asound.alsa_env(config)
    code = f"EXPECTED_ROWS = {len(families)}\n" + WINDOW_SCRIPT
    report = asound.run_script(code, env, timeout=120)

    assert report["available"], "the capture device must be usable"
    assert report["rows"] == len(families)
    assert report["selected_row"] == 2, "two presses of Down from the first row"
    assert report["played"] == [report["selected_path"]], json.dumps(report)

    played = sf.info(report["selected_path"])
    captured = asound.read_capture(capture)[:, 0]
    loud = np.flatnonzero(np.abs(captured) > 1e-3)
    assert loud.size, "the capture is silent"
    heard = loud[-1] - loud[0] + 1
    # The sound decays to near silence at its end, so what is audible is a little shorter than
    # the file; PortAudio adds at most a couple of buffers of silence around it.
    assert 0.8 * played.frames <= heard <= played.frames + 1
    assert len(captured) <= played.frames + 4 * 4096
