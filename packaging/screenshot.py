"""Take the README screenshot: a real library of generated sounds, indexed, with results showing.

    xvfb-run -s "-screen 0 1400x900x24" .venv/bin/python packaging/screenshot.py resources/screenshot.png

The sounds are synthesised here and indexed with a small random CLAP (no download), so the
match scores are not meaningful; everything else on screen is the real app.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

LIBRARY = {
    "Drums/Kicks": [("Dusty Kick 01", "kick"), ("Punchy Kick 02", "kick"), ("808 Kick Long", "kick"),
                    ("Vinyl Kick 03", "kick")],
    "Drums/Hats": [("Closed Hat Tight", "hihat"), ("Open Hat Airy", "hihat"),
                   ("Hat Loop 120bpm", "hihat"), ("Shaker Loop 96bpm", "hihat")],
    "Bass": [("Sub Bass C", "bass"), ("Analog Bass Dark A", "bass"), ("Reese Bass F#m", "bass"),
             ("Pluck Bass 128bpm Am", "bass")],
    "Pads & Keys": [("Airy Pad Am", "pad"), ("Warm Pad C", "pad"), ("Dark Drone Dm", "pad"),
                    ("Glass Keys Em 90bpm", "pad")],
    "FX": [("Riser White Noise", "fx"), ("Zap Impact", "fx"), ("Glitch Burst", "fx")],
}


def build_library(base: Path) -> tuple[Path, Path]:
    from conftest import family_sound, write_sound
    from modelfactory import build_trained_clap  # its text search passes the health check

    samples = base / "Samples"
    for at, (folder, sounds) in enumerate(LIBRARY.items()):
        for i, (name, family) in enumerate(sounds):
            write_sound(samples / folder / f"{name}.wav", family_sound(family, at * 10 + i,
                                                                        seconds=1.0 + i % 3))
    (samples / "FX" / "Broken Export.wav").write_bytes(b"RIFF....WAVE")
    return samples, build_trained_clap(base / "model")


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "resources/screenshot.png").resolve()
    base = Path(tempfile.mkdtemp(prefix="clapdesk-shot-"))
    for name in ("LIBRARY", "CONFIG", "CACHE"):
        os.environ[f"CLAPDESK_{name}"] = str(base / name.lower())
    os.environ["HF_HUB_OFFLINE"] = "1"
    samples, model = build_library(base)

    from clapdesk.core.library import Library

    library = Library(model=str(model))
    library.index_folders([str(samples)])
    library.close()

    from PySide6.QtCore import QTimer

    from clapdesk.gui.app import application, create_window

    app = application()
    window = create_window(model=str(model))
    window.resize(1280, 760)

    def search() -> None:
        window.search.set_text("dark analog bass one-shot")

    def select() -> None:
        window.view.setFocus()
        window.view.setCurrentIndex(window.proxy.index(1, 1))

    def shoot() -> None:
        window.statusBar().clearMessage()  # Xvfb has no sound card: its notice is not the app
        window.grab().save(str(out), "PNG", 9)
        print(f"saved {out} ({out.stat().st_size // 1024} KB)")
        window.close()
        app.quit()

    def when_ready() -> None:
        if window.model_ctl.state != "ready":
            QTimer.singleShot(200, when_ready)
            return
        search()
        QTimer.singleShot(1500, select)
        QTimer.singleShot(3500, shoot)

    QTimer.singleShot(500, when_ready)
    app.exec()


if __name__ == "__main__":
    main()
