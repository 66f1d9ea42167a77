"""Audition at the project's tempo and key: what the locks ask for, rendered and played.

    audition = StretchAudition(player, facts, runner)   # facts(path) -> FileRecord | None
    audition.tempo, audition.key = 120.0, "A minor"
    audition.tempo_lock, audition.key_lock = True, False
    audition.start_time = None          # or a callable -> perf_counter second (Link's next bar)
    audition.play(path)                 # the original when no lock applies, else the render
    audition.plan_for_path(path) -> RenderPlan      # (off the GUI thread: reads the catalog)
    audition.rendered_for(path) -> (data, rate, plan) | None   # what is heard, when rendered
    Signals: rendered(str path, object data, int rate)  # the full render: for the waveform

A render not yet cached starts playing from its first quarter second (a head rendered alone, tens
of milliseconds) while the pieces after it render in one helper process and the whole file in
another. Pieces are frames of the whole render itself (see stretch_section), so they join
without a seam, and when the full render arrives its remaining frames simply follow. Cached renders (memory, then disk) play
at once. The lane waits on the helper processes, never the GUI thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal

from clapdesk.core.audition.plan import RenderPlan, plan_for
from clapdesk.core.audition.render import Renderer, render_key
from clapdesk.core.audition.stretch import SPLICE_FADE_SECONDS, crossfade_into, rendered_frames
from clapdesk.core.store.catalog import FileRecord
from clapdesk.gui.player import Player
from clapdesk.gui.workers import TaskRunner

RENDER_LANE = "stretch"
HEAD_SECONDS = 0.25  # ~55 ms of CPU (bench_stretch.py); the next piece comes well within it
POLL_SECONDS = 0.01  # how often a waiting render checks whether the producer moved on


class _Render:
    """One render being played: its buffer and how much of it is there."""

    def __init__(self, path: str, plan: RenderPlan, rate: int, buffer: np.ndarray) -> None:
        self.path, self.plan, self.rate, self.buffer = path, plan, rate, buffer
        self.ready = 0
        self.complete = False


class StretchAudition(QObject):
    rendered = Signal(str, object, int)
    _event = Signal(int, str, object)  # request, what, payload: from the lane to the GUI thread

    def __init__(self, player: Player, facts: Callable[[str], FileRecord | None],
                 runner: TaskRunner, renderer: Renderer | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.player, self.facts = player, facts
        self.renderer = renderer if renderer is not None else Renderer()
        self._lane = runner.lane(RENDER_LANE)
        self._runner = runner
        self.tempo: float = 120.0
        self.key: str | None = None
        self.tempo_lock = False
        self.key_lock = False
        self.start_time: Callable[[], float | None] | None = None
        self._request = 0
        self._current: _Render | None = None
        self._event.connect(self._on_event, Qt.ConnectionType.QueuedConnection)
        self._warm = False
        self._requested_at: float | None = None

    @property
    def locked(self) -> bool:
        return self.tempo_lock or self.key_lock

    def warm(self) -> None:
        """Start the render helpers before the first stretched click needs them."""
        if not self._warm:
            self._warm = True
            self.renderer.warm()

    def plan_for_path(self, path: str) -> RenderPlan:
        record = self.facts(path)
        if record is None:
            return RenderPlan()
        return plan_for(record.kind, record.bpm, record.key, self.tempo, self.key,
                        self.tempo_lock, self.key_lock)

    def play(self, path: str, start: float = 0.0) -> None:
        self._request += 1
        self._current = None
        self._requested_at = time.perf_counter()
        if not self.locked and self.start_time is None:
            self.player.play(path, start)
            return
        self.warm()
        self.player.hold(path)
        request = self._request
        self._lane.submit(self._prepare, request, path, start)

    def stop(self) -> None:
        self._request += 1
        self._current = None

    def rendered_for(self, path: str) -> tuple[np.ndarray, int, RenderPlan] | None:
        """The full render heard for `path` (for drag-out), when it is complete."""
        current = self._current
        if current is not None and current.path == path and current.complete:
            return current.buffer, current.rate, current.plan
        return None

    # ------------------------------------------------------------------ the lane
    def _stale(self, request: int) -> bool:
        return request != self._request

    def _prepare(self, request: int, path: str, start: float) -> None:
        try:
            plan = self.plan_for_path(path)
            if plan.is_identity:
                if self.start_time is None:
                    self._event.emit(request, "plain", (path, start))
                else:  # on the beat: the decoded file as a buffer
                    data, rate = self.player.load(path)
                    self._event.emit(request, "whole", (path, plan, data, rate, False))
                return
            key = render_key(path, plan)
            cached = self.renderer.cache.get(key)
            if cached is not None:
                self._event.emit(request, "whole", (path, plan, cached[0], cached[1], True))
                return
            data, rate = self.player.load(path)
            if self._stale(request):
                return
            self._render_progressively(request, path, plan, key, data, rate)
        except Exception as exc:  # noqa: BLE001 - told in the status bar, never a traceback
            self._event.emit(request, "error", (path, exc))

    def _render_progressively(self, request: int, path: str, plan: RenderPlan, key: str,
                              data: np.ndarray, rate: int) -> None:
        total = rendered_frames(data, plan)
        fade = int(SPLICE_FADE_SECONDS * rate)
        start, size = 0, int(HEAD_SECONDS * rate)
        full: Future[np.ndarray] | None = None
        while start < total:
            end = min(total, start + size)
            piece = self.renderer.section(data, rate, plan, start, min(total, end + fade))
            if full is None:  # after the head: its few kB go out before the whole file's MB
                full = self.renderer.full(key, data, rate, plan)
            if not self._wait_any(request, [piece, full]):
                return
            if full.done() and (start > 0 or full.exception() is None):
                break  # the whole file is there: no more pieces
            self._event.emit(request, "piece", (path, plan, rate, total, start, end,
                                                piece.result()))
            start, size = end, size * 2
        if full is not None and self._wait_any(request, [full]):
            self._event.emit(request, "full", (path, plan, full.result(), rate))

    def _wait_any(self, request: int, futures: list[Future[Any]]) -> bool:
        """Wait until one is done; False when the producer asked for something else."""
        while not self._stale(request):
            done, _ = wait(futures, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            if done:
                return True
        return False

    # ------------------------------------------------------------------ the GUI thread
    def _start_at(self) -> float | None:
        return self.start_time() if self.start_time is not None else None

    def _on_event(self, request: int, what: str, payload: Any) -> None:
        if self._stale(request):
            return
        if what == "plain":
            path, start = payload
            self.player.play(path, start)
        elif what == "whole":
            path, plan, data, rate, is_render = payload
            self._current = render = _Render(path, plan, rate, data)
            render.ready, render.complete = len(data), True
            self.player.play_buffer(path, data, rate, None, self._start_at(),
                                   self._requested_at)
            if is_render:
                self.rendered.emit(path, data, rate)
        elif what == "piece":
            self._take_piece(*payload)
        elif what == "full":
            self._take_full(*payload)
        elif what == "error":
            path, exc = payload
            self.player.error.emit(f"Cannot stretch {path.rsplit('/', 1)[-1]}: {exc}")

    def _take_piece(self, path: str, plan: RenderPlan, rate: int, total: int, start: int,
                    end: int, piece: np.ndarray) -> None:
        render = self._current
        if start == 0 or render is None:
            buffer = np.zeros((total, piece.shape[1]), np.float32)
            buffer[:len(piece)] = piece
            self._current = render = _Render(path, plan, rate, buffer)
            render.ready = end
            if not self.player.play_buffer(path, buffer, rate, end, self._start_at(),
                                          self._requested_at):
                render.ready = -1  # the output needs another rate: play the full render
            return
        crossfade_into(render.buffer, piece, start, int(SPLICE_FADE_SECONDS * rate))
        render.ready = end
        self.player.set_ready(render.buffer, end)

    def _take_full(self, path: str, plan: RenderPlan, full: np.ndarray, rate: int) -> None:
        render = self._current
        if render is None or render.ready < 0:
            self._current = render = _Render(path, plan, rate, full)
            render.ready, render.complete = len(full), True
            self.player.play_buffer(path, full, rate, None, self._start_at(),
                                   self._requested_at)
        else:
            # The pieces are the full render's own frames (stretch_section), so the rest of it
            # simply follows what has played: no second splice.
            render.buffer[render.ready:] = full[render.ready:]
            self.player.set_ready(render.buffer, None)
            render.buffer, render.ready, render.complete = full, len(full), True
        self.rendered.emit(path, full, rate)

    def close(self) -> None:
        self._request += 1
        self._runner.close_lane(RENDER_LANE)
        self.renderer.close()

