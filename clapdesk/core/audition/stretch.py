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
# Output rendered past the end of a piece and thrown away: the last block and a half of a render
# (the flush at its end) differ from the whole render; what comes before is identical.
PREFIX_CONTEXT_SECONDS = 0.4
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
    """Output frames [start, end) of `stretch(data, ...)`: the pieces of a render played while
    the rest is still to come.

    Each piece is cut from a render of the input from its very start up to a little past the
    piece's end: the stretcher is then in exactly the state the whole render reaches there, so
    pieces and the whole render are the same signal, phase for phase, and joining them is
    seamless. (A piece rendered from the middle of the input starts from fresh phases: joined
    to its neighbour it can cancel a sustained note for a moment.)"""
    total = rendered_frames(data, plan)
    end = min(end, total)
    last = min(len(data), int((end + PREFIX_CONTEXT_SECONDS * rate) * plan.speed))
    out = stretch(data[:last], rate, plan)[start:end]
    if len(out) < end - start:
        out = np.concatenate([out, np.zeros((end - start - len(out), data.shape[1]),
                                            np.float32)])
    return np.ascontiguousarray(out)


def prefix_frames(rate: int, plan: RenderPlan, end: int) -> int:
    """How much input `stretch_section(..., end)` reads."""
    return int((end + PREFIX_CONTEXT_SECONDS * rate) * plan.speed)


def crossfade_into(buffer: np.ndarray, piece: np.ndarray, at: int, fade: int) -> None:
    """Write `piece` into `buffer` from frame `at`, its first `fade` frames crossfaded with
    what is there. Pieces of one render are the same signal where they overlap, so the fade is
    linear (an equal-power fade would lift a coherent signal by up to 3 dB); it only smooths
    the stretcher's sample-level differences at transients."""
    piece = piece[:len(buffer) - at]
    fade = max(0, min(fade, len(piece)))
    if fade:
        t = np.linspace(0.0, 1.0, fade, dtype=np.float32)[:, None]
        buffer[at:at + fade] = buffer[at:at + fade] * (1 - t) + piece[:fade] * t
    buffer[at + fade:at + len(piece)] = piece[fade:]
