"""One sound being played: what the audio callback reads, block by block.

The player (gui/player.py) owns the output stream and hands each of its callbacks' buffers to the
voice playing; this module writes the frames: the silence that puts a start on its beat, the
sound itself, looping, and waiting in silence for a render that is still being written. It runs
on PortAudio's thread: the player holds the voice's lock only to pick the voice, never while
it writes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Voice:
    """One file being played: read by the audio callback, moved by the player's `seek`."""

    path: str
    data: np.ndarray  # (frames, channels) float32 at the stream's rate
    rate: int
    requested_at: float
    pos: int = 0
    finished: bool = False
    first_callback_at: float | None = None
    # A buffer still being rendered plays up to `ready` and waits there (silence, not the end).
    ready: int | None = None
    # A start on the beat: the perf_counter() second the first frame should reach the DAC.
    start_at: float | None = None
    pad: int = 0  # silent frames still to write before the first frame
    pad_frames_total: int = 0
    sounded_at: float | None = None  # when the first frame reached the DAC (as PortAudio says)

    def first_block(self, now: float, dac_delay: float) -> None:
        """The first callback to carry this voice, at `now`, reaching the DAC `dac_delay` s
        later: a start on the beat pads the silence up to its moment, to the frame."""
        self.first_callback_at = now
        if self.start_at is not None:
            self.pad = max(0, round((self.start_at - now - dac_delay) * self.rate))
            self.pad_frames_total = self.pad
        self.sounded_at = now + dac_delay + self.pad / self.rate

    def fill(self, out: np.ndarray, loop: bool) -> None:
        """Write the next len(out) frames to `out` (frames, channels); silence past the end.
        Mono plays on every channel, and more channels than the output has are averaged."""
        frames = len(out)
        written = 0
        if self.pad:
            written = min(self.pad, frames)
            out[:written].fill(0)
            self.pad -= written
        data, ready = self.data, self.ready
        end = len(data) if ready is None else min(ready, len(data))
        while written < frames:
            count = min(frames - written, end - self.pos)
            if count <= 0:
                if ready is not None and end < len(data):
                    break  # the rest is still rendering: wait for it in silence
                if loop and len(data):
                    self.pos = 0
                    continue
                break
            chunk = data[self.pos:self.pos + count]
            if chunk.shape[1] == out.shape[1] or chunk.shape[1] == 1:
                out[written:written + count] = chunk  # mono broadcasts to both channels
            else:
                out[written:written + count] = chunk.mean(axis=1, keepdims=True)
            self.pos += count
            written += count
        if written < frames:
            out[written:].fill(0)
            if ready is None or end >= len(data):
                self.finished = True  # the next callback ends the stream after this block plays
