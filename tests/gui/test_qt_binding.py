"""The Qt binding the app runs on must not leak or drop references on its hottest calls.

PySide6 6.12.0 on Python 3.11 drops one reference to None (or True/False) each time Python calls
a Qt function returning void or bool: the window's 30 Hz position updates and its signals
reached the interpreter's fatal "deallocating None" after a few minutes of playback. Run in a
child so a binding with that fault fails this test instead of aborting the test run."""

from __future__ import annotations

import ast
import os
import subprocess
import sys

CALLS = 6000  # None starts with a few thousand references; 6,000 drops are past any of them

CHILD = f"""
import sys
from PySide6.QtCore import QCoreApplication, QObject, Signal

class Emitter(QObject):
    changed = Signal(float)

app = QCoreApplication([])
emitter = Emitter()
emitter.changed.connect(lambda value: None)
before = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
for _ in range({CALLS}):
    QCoreApplication.processEvents()
    emitter.changed.emit(1.0)
    emitter.blockSignals(False)
after = sys.getrefcount(None), sys.getrefcount(True), sys.getrefcount(False)
print(before, after)
"""


def test_hot_qt_calls_keep_none_true_and_false_alive():
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen")
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, (
        f"the Qt binding aborted Python after repeated calls (exit {done.returncode}): "
        f"{done.stderr.strip()[-400:]}")
    before, after = ast.literal_eval("[" + done.stdout.strip().replace(") (", "), (") + "]")
    for name, was, now in zip(("None", "True", "False"), before, after):
        # A sound binding leaves the counts where they were, give or take a few references
        # held by the interpreter; the faulty one loses one per call.
        assert now > was - CALLS // 10, f"{name} lost {was - now} references in {CALLS} calls"
