"""The dark theme, the icons and where they are found.

Resources are looked up, in order, beside a PyInstaller bundle, inside the installed package
(`clapdesk/resources`) and in the source tree (`resources/`), so the same code runs from a
checkout, a wheel and a frozen app.
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

ACCENT = "#f0a030"


@lru_cache(maxsize=1)
def resources_dir() -> Path | None:
    here = Path(__file__).resolve()
    candidates = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        candidates.append(Path(bundle) / "resources")
    candidates += [here.parent.parent / "resources",  # clapdesk/resources
                   Path(sys.prefix) / "share" / "clapdesk",  # a wheel's data files
                   here.parent.parent.parent / "resources"]  # a source checkout
    for candidate in candidates:
        if (candidate / "icons").is_dir():
            return candidate
    return None


def resource(name: str) -> Path | None:
    base = resources_dir()
    path = base / name if base else None
    return path if path is not None and path.exists() else None


@lru_cache(maxsize=64)
def icon(name: str) -> QIcon:
    """An icon from resources/icons (SVG scales cleanly at any display scale); empty if missing."""
    path = resource(f"icons/{name}.svg")
    return QIcon(str(path)) if path else QIcon()


def app_icon() -> QIcon:
    path = resource("clapdesk.svg")
    return QIcon(str(path)) if path else QIcon()


def apply_dark_theme(app: QApplication) -> None:
    """Fusion with a dark palette (for anything the style sheet misses) plus the QSS."""
    app.setStyle("Fusion")
    palette = QPalette()
    colours = {
        QPalette.ColorRole.Window: "#1c1f26", QPalette.ColorRole.WindowText: "#d5d9e0",
        QPalette.ColorRole.Base: "#171a20", QPalette.ColorRole.AlternateBase: "#1b1e25",
        QPalette.ColorRole.Text: "#d5d9e0", QPalette.ColorRole.Button: "#2a2e37",
        QPalette.ColorRole.ButtonText: "#d5d9e0", QPalette.ColorRole.Highlight: "#3b3222",
        QPalette.ColorRole.HighlightedText: "#ffffff", QPalette.ColorRole.ToolTipBase: "#2a2e37",
        QPalette.ColorRole.ToolTipText: "#e8ebf0", QPalette.ColorRole.PlaceholderText: "#6b7180",
        QPalette.ColorRole.Link: ACCENT,
    }
    for role, colour in colours.items():
        palette.setColor(role, QColor(colour))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor("#6b7180"))
    palette.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor("#6b7180"))
    app.setPalette(palette)
    qss = resource("dark.qss")
    if qss is not None:
        # The style sheet names its images as url(icons/...): found wherever resources are.
        icons = (qss.parent / "icons").as_posix()
        app.setStyleSheet(qss.read_text(encoding="utf-8").replace("url(icons/", f"url({icons}/"))
