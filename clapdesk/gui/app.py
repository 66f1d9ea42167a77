"""Starting the desktop app: `clapdesk`, `clapdesk gui` or the `clapdesk-gui` launcher.

The window is shown first and everything slow (reading the library, torch, the model) starts
from the event loop afterwards, so the app is on screen in about a second.
"""

from __future__ import annotations

import logging
import os
import sys

from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QMessageBox

from clapdesk.core.library import Library
from clapdesk.core.store.catalog import CatalogError
from clapdesk.gui.main_window import MainWindow
from clapdesk.gui.settings import Settings
from clapdesk.gui.theme import app_icon, apply_dark_theme

log = logging.getLogger(__name__)


def application() -> QApplication:
    app = QApplication.instance()
    if not isinstance(app, QApplication):
        # Fractional display scales (125 %, 150 %) render at their true size, not rounded.
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
        app = QApplication(sys.argv[:1])
    app.setApplicationName("clapdesk")
    app.setApplicationDisplayName("clapdesk")
    app.setDesktopFileName("clapdesk")  # packaging/clapdesk.desktop
    app.setWindowIcon(app_icon())
    apply_dark_theme(app)
    return app


def open_library(library: str | None, model: str | None, device: str | None,
                 settings: Settings, precision: str | None = None) -> Library:
    """The library with the model, device and precision from the command line, else from the
    settings.

    Downloads are never started from here: the window asks first, with the size.
    """
    device = device or settings.get("device")
    return Library(library, model=model or settings.get("model") or None,
                   device=None if device == "auto" else device, allow_download=False,
                   precision=precision or settings.get("precision"))


def create_window(library: str | None = None, model: str | None = None,
                  device: str | None = None, precision: str | None = None) -> MainWindow:
    settings = Settings()
    window = MainWindow(open_library(library, model, device, settings, precision), settings)
    window.show()
    QTimer.singleShot(0, window.start)
    return window


def no_display() -> bool:
    """On Linux without X11 or Wayland, Qt would abort with a cryptic plugin error."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return False
    return not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_app(library: str | None = None, model: str | None = None, device: str | None = None,
            precision: str | None = None) -> int:
    if no_display():
        print("clapdesk: no display to open the app on (DISPLAY and WAYLAND_DISPLAY are unset). "
              "The command line works without one: clapdesk --help", file=sys.stderr)
        return 2
    app = application()
    try:
        window = create_window(library, model, device, precision)
    except CatalogError as exc:
        QMessageBox.critical(None, "clapdesk cannot open the library", str(exc))
        return 1
    code = app.exec()
    window.shutdown()
    if getattr(window, "left_running", False):
        # A job that cannot be interrupted (the model loading) is still running: Qt would wait
        # for it at exit. Everything worth keeping is saved by now, so leave without it.
        log.info("quitting with a background job still running")
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return run_app()


if __name__ == "__main__":
    raise SystemExit(main())
