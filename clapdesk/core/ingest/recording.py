"""A query recorded from an input device: capture, level, silence trimming, model windows.

The recorder is a sounddevice InputStream whose callback (PortAudio's own thread) appends
blocks and keeps the peak level of the newest one; the caller polls `level_db`, `seconds` and
`finished`. It counts frames, not wall time, so a capture device that delivers faster than real
time (a file) still gives exactly `max_seconds`. It never holds more than `max_seconds` of audio.

Trimming: a block is sound when its RMS over a 10 ms window is at or above the threshold (dBFS);
the recording keeps from the first such window to the last, plus TRIM_PAD_SECONDS each side so
an attack or a tail is not cut. Only the producer's threshold decides, and they see it on the
meter.

A recording reaches the model through `decode_samples`: the same window layout and the same
soxr resampling as a file on disk (audio.decode_for_index), so a recorded sound and the same
sound in the library give the same vector.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np

from clapdesk.core.ingest import audio

MAX_RECORD_SECONDS = 10.0
DEFAULT_THRESHOLD_DB = -45.0
TRIM_WINDOW_SECONDS = 0.010
TRIM_PAD_SECONDS = 0.020
SILENCE_FLOOR_DB = -120.0


class RecordingError(Exception):
    """The input device cannot record (missing, busy, no input channels), in plain words."""


def level_db(block: np.ndarray) -> float:
    """Peak level of a block in dBFS (SILENCE_FLOOR_DB for silence)."""
    if block.size == 0:
        return SILENCE_FLOOR_DB
    peak = float(np.max(np.abs(block)))
    return max(SILENCE_FLOOR_DB, 20.0 * math.log10(peak)) if peak > 0 else SILENCE_FLOOR_DB


def sound_bounds(mono: np.ndarray, rate: int, threshold_db: float = DEFAULT_THRESHOLD_DB
                 ) -> tuple[int, int] | None:
    """(start, end) sample bounds of what is above the threshold, padded; None: all silence."""
    window = max(1, round(TRIM_WINDOW_SECONDS * rate))
    usable = len(mono) - len(mono) % window
    if usable == 0:
        return None
    frames = mono[:usable].astype(np.float64).reshape(-1, window)
    rms = np.sqrt(np.mean(frames * frames, axis=1))
    loud = np.flatnonzero(rms >= 10.0 ** (threshold_db / 20.0))
    if len(loud) == 0:
        return None
    pad = round(TRIM_PAD_SECONDS * rate)
    start = max(0, int(loud[0]) * window - pad)
    end = min(len(mono), (int(loud[-1]) + 1) * window + pad)
    return start, end


def trim_silence(mono: np.ndarray, rate: int, threshold_db: float = DEFAULT_THRESHOLD_DB
                 ) -> np.ndarray:
    """`mono` without the silence at either end; empty when nothing reaches the threshold."""
    bounds = sound_bounds(mono, rate, threshold_db)
    if bounds is None:
        return np.zeros(0, np.float32)
    return np.ascontiguousarray(mono[bounds[0]: bounds[1]], np.float32)


def decode_samples(mono: np.ndarray, rate: int, model_rate: int, analysis_rate: int = 22050
                   ) -> audio.DecodedAudio:
    """What decode_for_index gives for a file, from samples in memory (a recording)."""
    mono = audio.sanitise(np.ascontiguousarray(mono, np.float32).copy())
    if mono.size == 0:
        raise audio.DecodeError("the recording is silent: nothing reached the threshold")
    native_window = max(1, round(audio.WINDOW_SECONDS * rate))
    windows = []
    for start in audio.window_starts(len(mono), native_window):
        windows.append(audio.resample(mono[start: start + native_window], rate, model_rate))
    head = mono[: round(audio.ANALYSIS_SECONDS * rate)]
    info = audio.AudioInfo(duration=len(mono) / rate, sample_rate=rate, channels=1,
                           frames=len(mono), format="WAV", subtype="FLOAT")
    return audio.DecodedAudio(info, windows, audio.resample(head, rate, analysis_rate),
                              analysis_rate)


@dataclass(frozen=True)
class InputDevice:
    name: str
    index: int
    default_rate: int


def input_devices() -> list[InputDevice]:
    """The devices that can record; empty when PortAudio is missing or there is no audio system."""
    try:
        import sounddevice
    except OSError:
        return []
    try:
        return [InputDevice(d["name"], i, int(d["default_samplerate"]))
                for i, d in enumerate(sounddevice.query_devices()) if d["max_input_channels"] > 0]
    except Exception:  # noqa: BLE001 - no audio system at all
        return []


class Recorder:
    """One recording from one input device, up to `max_seconds`."""

    def __init__(self, device: str | int | None = None, max_seconds: float = MAX_RECORD_SECONDS,
                 rate: int | None = None) -> None:
        self.device = device if device not in ("", None) else None
        self.max_seconds = max(0.1, min(float(max_seconds), MAX_RECORD_SECONDS))
        self.rate = rate
        self._blocks: list[np.ndarray] = []
        self._frames = 0
        self._lock = threading.Lock()
        self._stream = None
        self.level_db = SILENCE_FLOOR_DB  # the newest block's peak
        self.peak_db = SILENCE_FLOOR_DB  # the loudest so far (the meter's peak hold)
        self.error: str | None = None  # set when PortAudio reports a problem mid-recording

    @property
    def seconds(self) -> float:
        return self._frames / self.rate if self.rate else 0.0

    @property
    def finished(self) -> bool:
        """True once `max_seconds` are in (the stream stops itself) or it was stopped."""
        stream = self._stream
        return stream is None or not stream.active

    def start(self) -> None:
        try:
            import sounddevice
        except OSError as exc:
            raise RecordingError(f"recording needs PortAudio, which is missing ({exc})") from None
        try:
            info = sounddevice.query_devices(self.device, "input")
            self.rate = int(self.rate or info["default_samplerate"] or 44100)
            self._limit = round(self.max_seconds * self.rate)
            stream = sounddevice.InputStream(device=self.device, channels=1, samplerate=self.rate,
                                             dtype="float32", callback=self._callback)
            stream.start()
        except Exception as exc:  # noqa: BLE001 - PortAudio's errors, told plainly
            where = f"'{self.device}'" if self.device is not None else "the default input"
            raise RecordingError(f"cannot record from {where}: {exc}") from None
        self._stream = stream

    def _callback(self, block: np.ndarray, frames: int, _time: object, status: object) -> None:
        import sounddevice

        if status and getattr(status, "input_overflow", False):
            self.error = "the input overflowed: some audio was lost"
        with self._lock:
            room = self._limit - self._frames
            take = block[: max(0, min(frames, room)), 0].copy()
            if take.size:
                self._blocks.append(take)
                self._frames += take.size
                self.level_db = level_db(take)
                self.peak_db = max(self.peak_db, self.level_db)
            if self._frames >= self._limit:
                raise sounddevice.CallbackStop

    def stop(self) -> np.ndarray:
        """Stop (if still running) and return everything recorded, mono float32."""
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        with self._lock:
            return np.concatenate(self._blocks) if self._blocks else np.zeros(0, np.float32)


def record(seconds: float, device: str | int | None = None, rate: int | None = None,
           poll: float = 0.02) -> tuple[np.ndarray, int]:
    """Record `seconds` (at most MAX_RECORD_SECONDS) and return (mono, rate): the CLI's path."""
    import time

    recorder = Recorder(device, seconds, rate)
    recorder.start()
    deadline = time.monotonic() + recorder.max_seconds + 5.0  # a device that stalls
    while not recorder.finished and time.monotonic() < deadline:
        time.sleep(poll)
    samples = recorder.stop()
    assert recorder.rate is not None
    if samples.size == 0:
        raise RecordingError("the input device delivered no audio")
    return samples, recorder.rate
