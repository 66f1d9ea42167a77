"""GUI fixtures: a real window over a real library, torn down so that nothing keeps running.

A test fails if it leaves a worker running: the window's pools must finish (waitForDone) when
it shuts down, and Qt's global pool must be idle too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6.QtCore import QThreadPool  # noqa: E402

from clapdesk.core.library import Library  # noqa: E402

POOL_TIMEOUT_MS = 30000



@pytest.fixture
def make_window(qtbot, tiny_model: Path) -> Iterator[Callable[..., object]]:  # noqa: ANN001
    """Build a shown MainWindow over an isolated library; `model=` overrides the tiny CLAP."""
    from clapdesk.gui.main_window import MainWindow
    from clapdesk.gui.settings import Settings

    windows: list[MainWindow] = []

    def build(model: str | None = None, start: bool = True) -> MainWindow:
        # As the app opens it: with the precision the settings name ("auto" by default).
        settings = Settings()
        library = Library(model=model or str(tiny_model), allow_download=False,
                          precision=settings.get("precision"))
        window = MainWindow(library, settings)
        window.indexing.watching = False  # tests that watch folders turn it back on
        qtbot.addWidget(window)
        window.show()
        qtbot.waitExposed(window)
        if start:
            window.start()
        windows.append(window)
        return window

    yield build
    for window in windows:
        window.shutdown()
        general_done = window.runner.general.waitForDone(POOL_TIMEOUT_MS)
        model_done = window.runner.model.waitForDone(POOL_TIMEOUT_MS)
        assert general_done and model_done, "a test left a worker running"
    assert QThreadPool.globalInstance().waitForDone(POOL_TIMEOUT_MS)
