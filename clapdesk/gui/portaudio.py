"""PortAudio for the player: loaded once, on first use, and the one resampling a device needs."""

from __future__ import annotations

import threading
from types import ModuleType

import numpy as np

from clapdesk.core.ingest.audio import resample

_sd_lock = threading.Lock()
_sd_module: ModuleType | None = None
_sd_failure: str | None = None


def load() -> ModuleType | None:
    """Import sounddevice once (it initialises PortAudio); None when PortAudio is missing."""
    global _sd_module, _sd_failure
    with _sd_lock:
        if _sd_module is None and _sd_failure is None:
            try:
                import sounddevice

                _sd_module = sounddevice
            except OSError as exc:  # the PortAudio library itself is not installed
                _sd_failure = f"the PortAudio library could not be loaded ({exc})"
        return _sd_module


def failure() -> str | None:
    """Why PortAudio could not be loaded, once `load()` has tried."""
    return _sd_failure


def resample_block(data: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """A decoded file at the rate the device took instead of the file's own."""
    channels = [resample(np.ascontiguousarray(data[:, c]), from_rate, to_rate)
                for c in range(data.shape[1])]
    return np.ascontiguousarray(np.stack(channels, axis=1), dtype=np.float32)
