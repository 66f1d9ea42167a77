"""What the window's start imports. Each heavy library here cost the first window real time:
scipy.signal came in through the sound-search controller and pushed the window past its 2 s
limit on a busy machine (3.1 s of imports instead of 1.0 s). They load when first used."""

from __future__ import annotations

import json
import os
import subprocess
import sys

LATER = ("scipy", "torch", "transformers", "sklearn", "openTSNE", "python_stretch", "link",
         "sounddevice", "ray", "pyarrow")


def test_the_window_modules_leave_heavy_libraries_for_later():
    probe = ("import json, sys; import clapdesk.gui.app; "
             f"print(json.dumps(sorted(m for m in {LATER!r} if m in sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          env=dict(os.environ, QT_QPA_PLATFORM="offscreen"), timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []
