"""The frames a playing sound writes into each output block (core/audition/voice.py)."""

from __future__ import annotations

import numpy as np

from clapdesk.core.audition.voice import Voice


def _ramp(frames: int, channels: int = 1) -> np.ndarray:
    return np.tile(np.arange(1, frames + 1, dtype=np.float32)[:, None], (1, channels))


def test_a_start_on_the_beat_is_padded_with_silence_to_the_frame() -> None:
    voice = Voice("a.wav", _ramp(10), rate=1000, requested_at=0.0, start_at=1.010)
    voice.first_block(now=1.000, dac_delay=0.004)  # 6 ms early: 6 frames of silence
    assert voice.pad == voice.pad_frames_total == 6
    assert voice.sounded_at == 1.010
    out = np.full((4, 2), 9.0, np.float32)
    voice.fill(out, loop=False)
    assert not out.any()
    voice.fill(out, loop=False)
    assert out[:, 0].tolist() == [0, 0, 1, 2] and out[:, 1].tolist() == [0, 0, 1, 2]


def test_the_end_is_silence_then_finished_and_a_loop_wraps_instead() -> None:
    once = Voice("a.wav", _ramp(5), rate=1000, requested_at=0.0)
    out = np.zeros((4, 1), np.float32)
    once.fill(out, loop=False)
    once.fill(out, loop=False)
    assert out[:, 0].tolist() == [5, 0, 0, 0] and once.finished
    looped = Voice("a.wav", _ramp(5), rate=1000, requested_at=0.0, pos=3)
    looped.fill(out, loop=True)
    assert out[:, 0].tolist() == [4, 5, 1, 2] and not looped.finished


def test_a_render_still_arriving_waits_in_silence_without_finishing() -> None:
    voice = Voice("a.wav", _ramp(8, channels=4), rate=1000, requested_at=0.0, ready=3)
    out = np.zeros((5, 2), np.float32)
    voice.fill(out, loop=False)
    assert out[:, 0].tolist() == [1, 2, 3, 0, 0]  # four channels averaged onto two
    assert not voice.finished and voice.pos == 3
    voice.ready = 8
    voice.fill(out, loop=False)
    assert out[:, 1].tolist() == [4, 5, 6, 7, 8] and not voice.finished
