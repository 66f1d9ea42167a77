"""Time-stretch and pitch-shift with Signalsmith Stretch (through python-stretch).

Chosen over Rubber Band (through pedalboard) by benchmarks/bench_stretch.py: Rubber Band is
exact in pitch, but even a half-second render costs it ~0.35 CPU s of set-up, so no first
stretched sound could come within 150 ms; Signalsmith renders the first second in a few tens of
ms and a whole 8-bar loop in about half Rubber Band's CPU time, with the beat grid as exact and
pitch within 5 cents at the block size chosen below. Its
Python binding holds the GIL while it works, so the app runs it in a separate process
(render.py); the CLI calls it directly. The binding offers no formant control (Rubber Band's
`preserve_formants` is the one thing given up); shifts stay within 6 semitones, where formant
changes are mild.

python-stretch already compensates the stretcher's latency (an impulse at sample n comes out at
n / speed), so output starts sample-accurately; `stretch` trims or pads the last few samples so
that the length is exactly round(frames / speed).
"""

from __future__ import annotations

import numpy as np

from clapdesk.core.audition.plan import RenderPlan

ENGINE = "signalsmith-stretch"
ENGINE_VERSION = 1  # bump when the rendering changes, so cached renders are redone
# Input read past the end of a head render: the stretcher's window (about 120 ms at 44.1 kHz)
# needs what comes after a moment to render it as the full render does.
HEAD_CONTEXT_SECONDS = 0.3
SPLICE_FADE_SECONDS = 0.02
# The library's default block (120 ms) misses low notes by up to 17 cents when shifting; a
# 280 ms block keeps shifted roots from 90 Hz up within 5 cents (bench_stretch.py) for 1.7x the
# CPU time, and the beat grid stays within 0.1 ms.
BLOCK_SECONDS = 0.28
INTERVALS_PER_BLOCK = 8


def stretch(data: np.ndarray, rate: int, plan: RenderPlan) -> np.ndarray:
    """`data` (frames, channels) float32 played at `plan.speed` and shifted by
    `plan.semitones`; (round(frames / speed), channels) float32."""
    if plan.is_identity or len(data) == 0:
        return data
    import python_stretch  # a compiled module: loaded where a render runs, not at import

    channels = data.shape[1]
    stretcher = python_stretch.Signalsmith.Stretch()
    block = int(BLOCK_SECONDS * rate)
    stretcher.configure(channels, block, block // INTERVALS_PER_BLOCK)
    stretcher.setTimeFactor(float(plan.speed))
    stretcher.setTransposeSemitones(float(plan.semitones))
    out = stretcher.process(np.ascontiguousarray(data.T, dtype=np.float32)).T
    frames = max(1, round(len(data) / plan.speed))
    if len(out) >= frames:
        out = out[:frames]
    else:
        out = np.concatenate([out, np.zeros((frames - len(out), channels), np.float32)])
    return np.ascontiguousarray(out, dtype=np.float32)


def stretch_head(data: np.ndarray, rate: int, plan: RenderPlan, seconds: float) -> np.ndarray:
    """The first `seconds` of `stretch(data, ...)`, rendered from only the input they need."""
    return stretch_section(data, rate, plan, 0, int(seconds * rate))


def rendered_frames(data: np.ndarray, plan: RenderPlan) -> int:
    return len(data) if plan.is_identity else max(1, round(len(data) / plan.speed))


def stretch_section(data: np.ndarray, rate: int, plan: RenderPlan, start: int,
                    end: int) -> np.ndarray:
    """Output frames [start, end) of `stretch(data, ...)`, rendered from the input around them
    (a stretcher's first and last window differ, so context on both sides is rendered and cut
    off). The pieces of a render being played while the rest is still to come."""
    total = rendered_frames(data, plan)
    end = min(end, total)
    context = int(HEAD_CONTEXT_SECONDS * rate)
    first = max(0, int(start * plan.speed) - context)
    last = min(len(data), int(end * plan.speed) + context)
    if first == 0 and last == len(data):
        return np.ascontiguousarray(stretch(data, rate, plan)[start:end])
    out = stretch(data[first:last], rate, plan)
    offset = start - round(first / plan.speed)  # out[0] is output frame first / speed
    piece = out[offset:offset + (end - start)]
    if len(piece) < end - start:
        piece = np.concatenate([piece, np.zeros((end - start - len(piece), data.shape[1]),
                                                np.float32)])
    return np.ascontiguousarray(piece)


def splice(head: np.ndarray, full: np.ndarray, at: int, rate: int) -> np.ndarray:
    """`full`, but `head` up to frame `at` and a short equal-power crossfade after it: what a
    voice playing `head` switches to without a click."""
    fade = min(int(SPLICE_FADE_SECONDS * rate), max(0, len(head) - at), max(0, len(full) - at))
    at = max(0, min(at, len(head), len(full)))
    out = full.copy()
    out[:at] = head[:at]
    if fade > 0:
        t = np.linspace(0.0, np.pi / 2, fade, dtype=np.float32)[:, None]
        out[at:at + fade] = head[at:at + fade] * np.cos(t) + full[at:at + fade] * np.sin(t)
    return out
