"""Time left in an indexing run, from what each part of the pipeline costs and how long the files are.

Counting files per second over the last minute is wrong whenever the files change length: a
library's folders often hold hundreds of one-shots first and long loops or stems later, and a
ten-second loop costs the model six times a one-second hit (every file up to MAX_WINDOWS windows
of ten seconds, each window one pass of the audio tower). So the time left is the sum of two
costs, each measured where it happens:

    time left = seconds per window x windows still to embed + seconds per file x files left

- seconds per window: the model's own time, measured around each model call (a call embeds a
  fixed number of windows), so a stretch of short files tells the cost of long ones too;
- seconds per file: everything else the run spends, per file (waiting for a decoder, the
  catalog commit, auto-tags), i.e. the time not spent in the model over the files done;
- windows still to embed: from each file's length (its header, read when it was catalogued),
  or where no header said it, from its size at the bytes per window seen in files of the same
  format decoded so far (before any, at a common bitrate for the format).

The decoders are a phase of their own: they start while the model loads, so the first files
reach the model already decoded and go through fast, which would promise far too little time if
decoding is the slower part (a small model, a busy machine, long compressed files). So the
estimate is also never less than the files still to decode at the decoders' own recent pace
(DECODE_MARKS completions): whichever phase is slower decides.

Both rates are means weighted towards the last half minute (half-life HALF_LIFE_SECONDS), so a
machine that gets busy, or a cooler CPU that slows, moves the estimate within a minute. With a
two-minute half-life the slow first seconds after the model's load (kernels built, decoders
settling at idle priority) kept a real 30-second stretch 2.5x too long throughout (tiny model,
700 files, load 11-13); with 30 s the same kind of run read 6-34 % off, and the synthetic
schedules in tests/test_time_left.py stay within 4 % and 9 %.
Nothing is said while the model loads or before WARM_UP_WINDOWS windows have been embedded
(the first model call also builds its kernels and costs several times a normal one).
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections import defaultdict, deque
from dataclasses import dataclass

import numpy as np

from clapdesk.core.ingest.audio import MAX_WINDOWS, WINDOW_SECONDS

log = logging.getLogger(__name__)

HALF_LIFE_SECONDS = 30.0
# Bytes per ten-second window of a file whose header gave no length, until a file of the same
# format has been decoded (then its own ratio is used): compressed formats at a common bitrate
# (MP3/AAC at 256 kbit/s, Ogg Vorbis at 192, Opus at 128), FLAC at about 60 % of PCM, and
# anything else as 16-bit stereo PCM at 44.1 kHz.
BYTES_PER_WINDOW_GUESS = {".mp3": 320_000, ".m4a": 320_000, ".aac": 320_000, ".ogg": 240_000,
                          ".oga": 240_000, ".opus": 160_000, ".flac": 1_060_000}
PCM_BYTES_PER_WINDOW = 1_764_000
DECODE_MARKS = 64  # decoder completions the decoders' pace is measured over
STALL_GAPS = 8.0  # a gap between completions this many times the median one is a wait
WARM_UP_WINDOWS = 8  # windows embedded before a time left is shown (the first call is slow)
FIRST_CALLS_SKIPPED = 1  # model calls left out of the rate: kernels are built during them


def windows_for(duration: float | None) -> int | None:
    """How many windows the indexer embeds for a file of this length (None when unknown)."""
    if duration is None or not math.isfinite(duration) or duration < 0:
        return None
    return max(1, min(MAX_WINDOWS, math.ceil(duration / WINDOW_SECONDS - 1e-9)))


@dataclass
class _Decayed:
    """A sum whose old terms count less: half their weight per HALF_LIFE_SECONDS."""

    value: float = 0.0
    at: float = 0.0

    def add(self, amount: float, now: float) -> None:
        self.value = self.value * 0.5 ** (max(0.0, now - self.at) / HALF_LIFE_SECONDS) + amount
        self.at = now


class _UnknownLengths:
    """The sizes of the planned files no header gave a length, by format, summed as windows in
    one vectorised pass per format. A Python loop over them took 59 ms for 100,000 files (0.2 ms
    now, benchmarks/bench_time_left.py), on the indexer's thread after every file (before the first catalogue pass every planned file is
    unknown; MP3s stay so until decoded)."""

    def __init__(self) -> None:
        self._slots: dict[object, tuple[str, int]] = {}  # key -> format, place in its sizes
        self._sizes: dict[str, list[float]] = defaultdict(list)
        self._gone: dict[str, list[int]] = defaultdict(list)  # places of files since known or done
        self._arrays: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # format -> sizes, still unknown

    def add(self, key: object, size: int, ext: str) -> None:
        self._slots[key] = (ext, len(self._sizes[ext]))
        self._sizes[ext].append(float(size))
        self._arrays.pop(ext, None)  # built again when next summed

    def remove(self, key: object) -> None:
        slot = self._slots.pop(key, None)
        if slot is None:
            return
        ext, place = slot
        self._gone[ext].append(place)
        if ext in self._arrays:
            self._arrays[ext][1][place] = False

    def windows(self, bytes_per_window: dict[str, float]) -> float:
        """The windows these files are guessed to hold, at each format's bytes per window."""
        guessed = 0.0
        for ext, sizes in self._sizes.items():
            if ext not in self._arrays:
                unknown = np.ones(len(sizes), dtype=bool)
                unknown[self._gone[ext]] = False
                self._arrays[ext] = (np.asarray(sizes), unknown)
            array, unknown = self._arrays[ext]
            if unknown.any():
                per_window = max(bytes_per_window[ext], 1.0)
                guessed += float(np.clip(array[unknown] / per_window, 1.0, MAX_WINDOWS).sum())
        return guessed

    def formats(self) -> list[str]:
        return list(self._sizes)


class TimeLeft:
    """The estimator of one run. Every method takes the time (monotonic seconds) it is called at,
    so a recorded or made-up timeline can be replayed exactly (tests/test_time_left.py)."""

    def __init__(self) -> None:
        self._expected: dict[object, tuple[int | None, int, str]] = {}  # key -> windows, size, ext
        self.windows_left_known = 0
        self.files_left = 0
        self.files_planned = 0
        self._unknown = _UnknownLengths()
        self._bytes_per_window: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
        self._model_seconds = _Decayed()
        self._model_windows = _Decayed()
        self._other_seconds = _Decayed()
        self._other_files = _Decayed()
        self._calls = 0
        self._windows_done = 0
        self._last: float | None = None  # the last moment accounted for
        self._model_since_last = 0.0
        self._decode_lock = threading.Lock()  # decoders report from the pool's own thread
        self._decoded_marks: deque[float] = deque(maxlen=DECODE_MARKS)
        self._decoded = 0

    # -- what is planned ----------------------------------------------------------------------
    def expect(self, key: object, duration: float | None, size: int, path: str) -> None:
        """A file to come: its length when a header said it, else its size and format."""
        windows = windows_for(duration)
        ext = os.path.splitext(path)[1].lower()
        self._expected[key] = (windows, size, ext)
        self.files_left += 1
        self.files_planned += 1
        if windows is None:
            self._unknown.add(key, size, ext)
        else:
            self.windows_left_known += windows

    def file_decoded(self, now: float) -> None:
        """A decoder finished a file (called from any thread)."""
        with self._decode_lock:
            self._decoded += 1
            self._decoded_marks.append(now)

    def decode_bound(self) -> float | None:
        """Seconds the decoders need for the files not decoded yet, at their recent pace."""
        with self._decode_lock:
            marks, decoded = list(self._decoded_marks), self._decoded
        if len(marks) < 8 or marks[-1] <= marks[0]:
            return None
        # Files per second over the gaps between completions, leaving out the waits: while the
        # read-ahead is full the decoders stop, and a pace over a minute of that (the automatic
        # precision choice keeping the model busy, AVX2 EPYC) said 3x the real time left.
        gaps = np.diff(marks)
        typical = float(np.median(gaps))
        if typical > 0:
            gaps = gaps[gaps <= STALL_GAPS * typical]
        pace = len(gaps) / float(gaps.sum())
        return max(0, self.files_planned - decoded) / pace

    def start(self, now: float) -> None:
        """The model is ready: from here on time is accounted to the model or to the rest."""
        self._last = now

    # -- what happens -------------------------------------------------------------------------
    def know_length(self, key: object, duration: float | None) -> None:
        """A header told a planned file's length (it was catalogued)."""
        windows = windows_for(duration)
        planned = self._expected.get(key)
        if planned is None or windows is None or planned[0] is not None:
            return
        self._expected[key] = (windows, planned[1], planned[2])
        self._unknown.remove(key)
        self.windows_left_known += windows

    def aside(self, seconds: float) -> None:
        """Seconds the indexer's thread spent on neither the model's windows nor the files
        (the precision trial's candidate towers): left out of both rates."""
        self._model_since_last += max(0.0, seconds)

    def model_changed(self, seconds_per_window: float | None, now: float) -> None:
        """The audio tower changed precision mid-run: its time per window starts afresh, from
        what the precision trial measured of it when known, instead of decaying from the old
        tower's over a minute."""
        self._model_seconds = _Decayed()
        self._model_windows = _Decayed()
        # While the read-ahead was full the decoders finished a file each time the old tower
        # took one: that pace says nothing of theirs now. Kept, it held the time left at the
        # old tower's for DECODE_MARKS more files (2.7x too long, tests/test_time_left.py).
        with self._decode_lock:
            self._decoded_marks.clear()
        if seconds_per_window is not None and seconds_per_window > 0:
            self._model_seconds.add(seconds_per_window * WARM_UP_WINDOWS, now)
            self._model_windows.add(float(WARM_UP_WINDOWS), now)

    def model_call(self, windows: int, seconds: float, now: float) -> None:
        """The model embedded `windows` windows in `seconds` (its own time, nothing else),
        ending at `now`."""
        self._calls += 1
        self._windows_done += windows
        self._model_since_last += seconds
        if self._calls > FIRST_CALLS_SKIPPED:
            self._model_seconds.add(seconds, now)
            self._model_windows.add(windows, now)

    def file_done(self, key: object, windows: int, now: float,
                  duration: float | None = None) -> None:
        """A file is finished (embedded, copied, moved or failed) with this many windows;
        `duration` is its length as decoded, which teaches the format's bytes per window."""
        planned = self._expected.pop(key, None)
        if planned is not None:
            self.files_left -= 1
            expected, size, ext = planned
            if expected is None:
                self._unknown.remove(key)
                # A file cut at MAX_WINDOWS says only that its windows hold at most its bytes:
                # its length, when known, says the real ratio.
                seen = (duration / WINDOW_SECONDS if duration and math.isfinite(duration)
                        else windows if 0 < windows < MAX_WINDOWS else 0)
                if seen > 0:
                    ratio = self._bytes_per_window[ext]
                    ratio[0] += size
                    ratio[1] += seen
            else:
                self.windows_left_known -= expected
        if self._last is None:
            return
        other = max(0.0, now - self._last - self._model_since_last)
        self._other_seconds.add(other, now)
        self._other_files.add(1.0, now)
        self._model_since_last = 0.0
        self._last = now

    # -- the answer ---------------------------------------------------------------------------
    def windows_left(self) -> float:
        """Windows still to embed: known ones plus those guessed from size and format."""
        per_window = {}
        for ext in self._unknown.formats():
            byte_count, windows = self._bytes_per_window.get(ext, (0.0, 0.0))
            per_window[ext] = (byte_count / windows if windows > 0
                               else BYTES_PER_WINDOW_GUESS.get(ext, PCM_BYTES_PER_WINDOW))
        return self.windows_left_known + self._unknown.windows(per_window)

    def seconds_per_window(self) -> float | None:
        if self._model_windows.value <= 0:
            return None
        return self._model_seconds.value / self._model_windows.value

    def seconds_per_file(self) -> float:
        if self._other_files.value <= 0:
            return 0.0
        return self._other_seconds.value / self._other_files.value

    def eta(self, seconds_per_window: float | None = None, decoders: bool = True
            ) -> float | None:
        """Seconds left, or None while there is not enough to go on. `seconds_per_window`
        replaces the model's measured time per window (what another precision would take);
        `decoders=False` leaves out the decoders' bound (while their pace is the model's)."""
        per_window = self.seconds_per_window()
        if self._last is None or per_window is None or self._windows_done < WARM_UP_WINDOWS:
            return None
        per_window = per_window if seconds_per_window is None else seconds_per_window
        model_bound = per_window * self.windows_left() + self.seconds_per_file() * self.files_left
        decode_bound = self.decode_bound() if decoders else None
        return model_bound if decode_bound is None else max(model_bound, decode_bound)


def estimate_errors(history: list[tuple[float, float | None]], end: float, start: float,
                    after: float = 60.0) -> dict[str, float | int | None]:
    """How far the times left said at (t, eta) were from the real time left (end - t), for
    the moments `after` seconds or more into the run: the largest and the median relative error
    while more than 10 % of the run was left (below that, a second off reads as a large share)."""
    run = max(end - start, 1e-9)
    errors = []
    for at, eta in history:
        actual = end - at
        if eta is None or at - start < after or actual < 0.1 * run:
            continue
        errors.append(abs(eta - actual) / actual)
    if not errors:
        return {"points": 0, "max_error": None, "median_error": None}
    errors.sort()
    return {"points": len(errors), "max_error": round(errors[-1], 4),
            "median_error": round(errors[len(errors) // 2], 4)}


def log_estimates(history: list[tuple[float, float | None]], end: float, start: float) -> None:
    """A run's estimates against the real time left, in the log (for a producer's report)."""
    if history:
        log.info("time-left estimates against the real time left, after the first minute: %s",
                 estimate_errors(history, end, start))
