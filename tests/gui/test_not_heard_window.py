"""The window during a first indexing run: a search answers by name while the model loads, and
the sounds the model has not heard yet say so, in the table and beside the progress bar."""

from __future__ import annotations

import threading
from pathlib import Path

from conftest import family_sound, write_sound
from PySide6.QtCore import Qt

from clapdesk.gui.results_model import MATCH, NAME, NOT_HEARD

from .test_main_window import MAX_UI_GAP_S, GapMeter


def test_a_search_while_the_model_loads_lists_sounds_not_heard_yet(
        qtbot, make_window, tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    folder = tmp_path / "samples"
    for i in range(3):
        write_sound(folder / "Drums" / f"Kick {i} Punchy.wav", family_sound("kick", i))
        write_sound(folder / "Pads" / f"Warm Pad {i}.wav", family_sound("pad", i))
    window = make_window(start=False)
    library = window.library
    release = threading.Event()
    real_embedder = library.embedder

    def held_model():  # noqa: ANN202 - the model's load, held until the test has looked
        assert release.wait(120), "the test never let the model load"
        return real_embedder()

    monkeypatch.setattr(library, "embedder", held_model)
    import torch  # noqa: F401 - torch's import is start-up's cost, not this test's

    window.start()
    qtbot.waitUntil(lambda: window.model_ctl.state != "checking", timeout=30000)
    meter = GapMeter()
    meter.start()
    try:
        window.indexing.index([str(folder)])
        qtbot.waitUntil(lambda: "6 not heard yet" in window.progress.label.text(), timeout=60000)
        assert library.model_loading and not library.model_loaded
        window.search.set_text("punchy kick")
        qtbot.waitUntil(lambda: window.model.rowCount() == 3, timeout=30000)
        largest = meter.stop()
        assert not library.model_loaded  # answered without waiting for the model
        assert "while the model loads" in window.title.text()
        rows = range(window.proxy.rowCount())
        assert {window.proxy.index(r, NAME).data() for r in rows} == {
            f"Kick {i} Punchy.wav" for i in range(3)}
        assert all(window.proxy.index(r, MATCH).data() == NOT_HEARD for r in rows)
        tip = window.proxy.index(0, MATCH).data(Qt.ItemDataRole.ToolTipRole)
        assert "Not listened to yet" in tip
        assert largest < MAX_UI_GAP_S, f"the UI thread was blocked for {largest * 1000:.0f} ms"
    finally:
        release.set()
    with qtbot.waitSignal(window.indexing.finished, timeout=120000):
        pass
    # Indexed: the same search ranks by sound, and nothing reads "not heard yet" any more.
    qtbot.waitUntil(lambda: window.model.rowCount() > 0 and window.model.not_heard() == 0
                    and "while the model loads" not in window.title.text(), timeout=60000)
    shown = [window.proxy.index(r, MATCH).data() for r in range(window.proxy.rowCount())]
    assert NOT_HEARD not in shown
