"""Tempo lock in the real window changes what reaches the sound card.

The window runs in a fresh interpreter whose ALSA default device is a `file` PCM (asound.py),
so the test reads back exactly what a producer would hear: a 2-bar loop at 90 BPM, played with
Tempo lock off and then on at 115 BPM (Key lock on, A minor), is heard first as it is and then
4.174 s long with its beats 0.522 s apart and its D shifted down to A. The waveform shows the stretched
length, the settings keep the tempo and locks, and a drag of the row drops the rendered WAV.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
import asound  # noqa: E402
from conftest import index_folder  # noqa: E402
from loops import cents, measured_tempo, pitch_hz, root_hz, write_loop  # noqa: E402


def without_waits(part: np.ndarray, block: int = 64) -> np.ndarray:
    """`part` without its runs of digital silence longer than `block` frames."""
    silent = np.all(part == 0, axis=1)
    keep = np.ones(len(part), bool)
    start = None
    for i, quiet in enumerate(np.append(silent, False)):
        if quiet and start is None:
            start = i
        elif not quiet and start is not None:
            if i - start > block:
                keep[start:i] = False
            start = None
    return part[keep]


needs_portaudio = pytest.mark.skipif(
    not os.environ.get("CI") and not asound.portaudio_loads(),
    reason="PortAudio is not installed (apt-get install libportaudio2)")

SCRIPT = asound.WINDOW_PREAMBLE + r"""

def captured():
    return os.path.getsize(CAPTURE) // 4 if os.path.exists(CAPTURE) else 0

def audition(path):
    started = []
    window.player.started.connect(started.append)
    window.audition.clicked(path, was_current=False)
    spin(60, lambda: bool(started))
    spin(60, lambda: not window.player.is_playing)
    spin(1)
    window.player.started.disconnect()
    return started

spin(30, lambda: window.model.rowCount() == 1)
hit = window.model.hit(0)
project = window.transport.project
report = {"facts": [hit.file.kind, hit.file.bpm, hit.file.key]}
report["plain"] = audition(hit.file.path)
report["plain_frames"] = captured()
project.tempo.setValue(115.0)
project.set_key("A minor")
project.key_lock.setChecked(True)
project.tempo_lock.setChecked(True)
report["locked"] = audition(hit.file.path)  # rendered while it plays
report["locked_frames"] = captured()
report["cached"] = audition(hit.file.path)  # from the cache
report["cached_frames"] = captured()
spin(5, lambda: abs(window.waveform.duration - 8 * 60 / 115) < 0.01)
report["waveform_seconds"] = window.waveform.duration
index = window.model.index(0, 0)
report["dragged"] = [u.toLocalFile() for u in window.model.mimeData([index]).urls()]
project.tempo_lock.setChecked(False)
project.key_lock.setChecked(False)
report["unlocked_drag"] = [u.toLocalFile() for u in window.model.mimeData([index]).urls()]
project.tempo_lock.setChecked(True)
settings = Settings()
report["saved"] = [settings.store.value("transport/tempo"), settings.store.value("transport/key"),
                   settings.store.value("transport/tempo_lock")]
report["link_on"] = window.transport.project.link.isChecked()
finish(report)
"""


@needs_portaudio
def test_tempo_lock_stretches_what_the_sound_card_receives(tiny_model: Path,
                                                          tmp_path: Path) -> None:
    folder = tmp_path / "samples"
    folder.mkdir()
    source = folder / "dusty groove 90bpm Dm.wav"
    write_loop(source, 90, 2, "D minor")
    index_folder(folder, tiny_model)

    config, capture = asound.write_capture_config(tmp_path / "alsa")
    report = asound.run_script(f"CAPTURE = {str(capture)!r}\n" + SCRIPT,
                               asound.alsa_env(config), timeout=240)

    assert report["facts"] == ["loop", 90.0, "D minor"]
    assert report["plain"] == report["locked"] == report["cached"] == [str(source)]
    audio = asound.read_capture(capture)
    plain = audio[:report["plain_frames"]]
    progressive = audio[report["plain_frames"]:report["locked_frames"]]
    cached = audio[report["locked_frames"]:report["cached_frames"]]
    rate = sf.info(source).samplerate

    def heard(part: np.ndarray) -> np.ndarray:
        loud = np.flatnonzero(np.abs(part[:, 0]) > 1e-3)
        return part[loud[0]:loud[-1] + 1]

    # Unlocked: the file as it is, 2 bars at 90 BPM = 5.333 s.
    assert len(heard(plain)) / rate == pytest.approx(8 * 60 / 90, abs=0.02)
    assert measured_tempo(heard(plain), rate)[0] == pytest.approx(90, rel=0.005)
    # Locked, from the cache: 2 bars at 115 BPM = 4.174 s, beats 0.522 s apart, D3 moved to A2.
    stretched = heard(cached)
    assert len(stretched) / rate == pytest.approx(8 * 60 / 115, abs=0.02)
    assert measured_tempo(stretched, rate)[0] == pytest.approx(115, rel=0.005)
    assert abs(cents(pitch_hz(stretched, rate), root_hz("A minor") / 2)) < 10
    # Locked, rendered while playing: the same sound. The null device behind the capture takes
    # audio as fast as it comes, so where a real card would still be playing the head, the
    # capture holds silence until the next piece arrives: those waits are cut out here.
    joined = without_waits(heard(progressive))
    assert len(joined) == pytest.approx(len(stretched), abs=2)
    frames = min(len(joined), len(stretched)) // 441 * 441
    # Level in 10 ms windows: no dip where the pieces join (a seam out of phase would cancel
    # the sustained note), no doubling. (Clicks may differ by a sample between two renders.)
    level = [np.sqrt(np.mean(a[:frames, 0].reshape(-1, 441) ** 2, axis=1))
             for a in (joined, stretched)]
    ratio_db = np.abs(20 * np.log10(level[0] / level[1]))
    starts = np.arange(len(ratio_db)) * 441 / rate
    beat = 60 / 115
    on_a_beat = np.abs((starts + 0.005 + beat / 2) % beat - beat / 2) < 0.02
    worst = np.flatnonzero(ratio_db > 1.0)
    assert not np.any(ratio_db[~on_a_beat] > 1.0), f"level differs at {starts[worst]} s"
    assert report["waveform_seconds"] == pytest.approx(8 * 60 / 115, abs=0.01)

    dragged = Path(report["dragged"][0])
    assert dragged.name == "dusty groove 90bpm Dm 115bpm Am.wav"
    assert dragged.parent == Path(os.environ["CLAPDESK_EXPORTS"])  # the export folder, kept
    assert sf.info(dragged).frames == round(len(sf.read(source)[0]) * 90 / 115)
    assert report["unlocked_drag"] == [str(source)]  # lock off: the file itself
    assert [float(report["saved"][0]), report["saved"][1]] == [115.0, "A minor"]
    assert str(report["saved"][2]).lower() == "true"
    assert report["link_on"] is False  # Link is never on unless the producer turns it on
