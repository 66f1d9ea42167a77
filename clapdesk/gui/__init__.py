"""The desktop app: the only package that imports Qt (PySide6).

Everything it shows comes from `clapdesk.core`; everything slow runs through `workers.py`, so
the window never waits on the disk or the model.
"""
