"""Every thread the window starts is owned by the app's TaskRunner (or the core's query lane)
and is joined when the window shuts down: nothing is started at import, nothing outlives quit."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import soundfile as sf


def _clapdesk_threads() -> list[str]:
    return sorted(t.name for t in threading.enumerate()
                  if t.is_alive() and t.name.startswith("clapdesk-"))


def test_quitting_joins_the_audition_waveform_thumbnail_and_query_threads(
        make_window, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    sound = tmp_path / "pad.wav"
    sf.write(sound, 0.3 * np.sin(np.linspace(0, 440 * 2 * np.pi, 44100)).astype(np.float32), 44100)
    window = make_window(start=False)  # no browsing: it would clear a waveform not listed
    with qtbot.waitSignal(window.waveform.peaks_ready, timeout=30000):
        window.waveform.set_file(sound)  # the waveform lane (and the player's decode)
    with qtbot.waitSignal(window.thumbnails.ready, timeout=30000):
        assert window.thumbnails.request(sound, 120, 24) is None  # the thumbnail lane
    window.player.predecode([sound])  # the look-ahead lane
    window.library.embedder().embed_text(["warm pad"])  # a query runs on the query lane
    started = _clapdesk_threads()
    assert any(name.startswith("clapdesk-peaks") for name in started), started
    assert any(name.startswith("clapdesk-query") for name in started), started
    window.shutdown()
    assert _clapdesk_threads() == []
