"""Ableton Link: the DAW's tempo, beat grid and transport, without Qt.

Through LinkPython-extern (`import link`), chosen over aalink: it has wheels for Linux, macOS
(Intel and Apple silicon) and Windows, where aalink has none for Intel Macs, and its API is Link's
own (session states, beat/time conversion at a quantum, start/stop sync) and synchronous, which
suits a GUI that polls; aalink's is asyncio, which would need an event loop beside Qt's.

    session = LinkSession(quantum=4)      # created off: nothing is sent until enable(True)
    session.enable(True); session.enabled
    session.tempo, session.peers, session.playing
    session.set_tempo(bpm)                # the app's tempo field proposes a tempo to the session
    session.next_start(unit="bar")        # (link micros, perf_counter seconds) of the next bar
    session.beat_at(micros)               # the session's beat at a Link time
    session.close()

Link joins a multicast group on every network interface once enabled, so it stays off until the
producer turns it on; the tests turn it on only inside a network namespace of their own.
"""

from __future__ import annotations

import math
import time
from typing import Any

QUANTUM_BEATS = 4.0  # a bar of 4/4: what "start on the next bar" means


class LinkUnavailable(RuntimeError):
    """The Link library could not be loaded (not installed, or no wheel for this platform)."""


def _link_module() -> Any:
    try:
        import link
    except ImportError as exc:
        raise LinkUnavailable(f"Ableton Link is not available ({exc}); install "
                              "LinkPython-extern") from exc
    return link


class LinkSession:
    def __init__(self, tempo: float = 120.0, quantum: float = QUANTUM_BEATS) -> None:
        self._link = _link_module().Link(float(tempo))
        self._link.enabled = False
        self._link.startStopSyncEnabled = True  # the DAW's play/stop reaches us, ours reaches it
        self.quantum = float(quantum)

    def enable(self, on: bool) -> None:
        self._link.enabled = bool(on)

    @property
    def enabled(self) -> bool:
        return bool(self._link.enabled)

    @property
    def peers(self) -> int:
        return int(self._link.numPeers())

    def _state(self) -> Any:
        return self._link.captureAppSessionState()

    def now(self) -> int:
        """Link's clock, in microseconds."""
        return int(self._link.clock().micros())

    @property
    def tempo(self) -> float:
        return float(self._state().tempo())

    @property
    def playing(self) -> bool:
        return bool(self._state().isPlaying())

    def set_tempo(self, bpm: float) -> None:
        state = self._state()
        state.setTempo(float(bpm), self.now())
        self._link.commitAppSessionState(state)

    def set_playing(self, playing: bool) -> None:
        """Start or stop the session's transport (the DAW's, with start/stop sync)."""
        state = self._state()
        now = self.now()
        if playing:
            state.setIsPlayingAndRequestBeatAtTime(True, now, 0.0, self.quantum)
        else:
            state.setIsPlaying(False, now)
        self._link.commitAppSessionState(state)

    def beat_at(self, micros: int) -> float:
        return float(self._state().beatAtTime(int(micros), self.quantum))

    def phase_at(self, micros: int) -> float:
        return float(self._state().phaseAtTime(int(micros), self.quantum))

    def next_start(self, unit: str = "bar", lead: float = 0.05) -> tuple[int, float]:
        """The next beat or bar at least `lead` seconds away (time to start the sound), as
        (Link micros, perf_counter seconds)."""
        state = self._state()
        now = self.now()
        step = self.quantum if unit == "bar" else 1.0
        earliest = now + int(lead * 1e6)
        beat = state.beatAtTime(earliest, self.quantum)
        target_beat = math.ceil(beat / step - 1e-9) * step
        micros = int(state.timeAtBeat(target_beat, self.quantum))
        # Link's clock and perf_counter are both monotonic: one offset, read now, links them.
        offset = time.perf_counter() - self.now() / 1e6
        return micros, micros / 1e6 + offset

    def close(self) -> None:
        self._link.enabled = False
