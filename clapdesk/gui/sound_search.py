"""Searching with a sound in the window: dropped files, Find similar (in …), and recordings.

The window hands this controller its search bar, runner and results: a sound arrives (a file
dropped on the field, the selected row's Find similar, or the record strip's take), is made
into a core SoundQuery once on the model pool (decoded at its true rate and embedded, or its
stored vector when the library has it), and searched; the words typed beside the chip, the
amount slider and the aspect choice search the same SoundQuery again without decoding. A file
from outside the library is never added to it.

`results_shown(ms)` reports the time from the drop (or the end of the recording) to the rows
on screen; the benchmark and the status bar use it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

from clapdesk.core.embed.health import TextSearchOff
from clapdesk.core.ingest.audio import DecodeError
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import Filters
from clapdesk.core.search.sound_query import (
    SoundQuery,
    from_file,
    from_samples,
    read_words,
    search_sound,
)
from clapdesk.gui import jobs
from clapdesk.gui.model_control import READY, UNAVAILABLE
from clapdesk.gui.record_panel import RecordPanel


@dataclass
class SoundSource:
    """What the sound chip stands for: a file, or a recording held in memory."""

    name: str
    path: str | None = None
    samples: np.ndarray | None = None
    rate: int = 0


@dataclass
class SoundOutcome(jobs.SearchOutcome):
    sound: SoundQuery | None = None


def run_sound_search(library: Library, generation: int, newest: Callable[[], int],
                     source: SoundSource, sound: SoundQuery | None, k: int, filters: Filters,
                     words: str, amount: float, aspect: str | None) -> SoundOutcome:
    """On the model pool: make the sound query if it is not made yet, then search it."""
    if generation != newest():
        return SoundOutcome(generation, None)
    jobs.open_index(library)
    if sound is None:
        if source.path is not None:
            sound = from_file(library, source.path)
        else:
            assert source.samples is not None
            sound = from_samples(library, source.samples, source.rate, source.name)
            sound.name = source.name
    title = describe(source.name, words, amount, aspect)
    try:
        response = search_sound(library, sound, k, filters, words, amount, aspect)
    except TextSearchOff:  # an untrained text tower cannot steer: the sound alone, said so
        response = search_sound(library, sound, k, filters, words, 0.0, aspect)
        title = (describe(source.name, words, 0.0, aspect)
                 + " (words ignored: this model's text tower is untrained)")
    return SoundOutcome(generation, response, title, similar_to=source.name, sound=sound)


def describe(name: str, words: str, amount: float, aspect: str | None) -> str:
    """The results' title: "Sounds like kick_07, steered 50 %: darker, not reverb, in timbre"."""
    steering = read_words(words)
    parts = [f"Sounds like {name}"]
    moves = [*steering.toward, *(f"not {w}" for w in steering.away)]
    if moves and amount > 0:
        parts.append(f"steered {round(amount * 100)} %: {', '.join(moves)}")
    filters = [c.label for c in steering.constraints.constraints()]
    if filters:
        parts.append(" · ".join(filters))
    if aspect:
        parts.append(f"in {aspect}")
    return ", ".join(parts)


class SoundSearch(QObject):
    results_shown = Signal(float)  # milliseconds from the drop or the recording's end

    def __init__(self, window: Any) -> None:
        super().__init__(window)
        self.window = window
        self.source: SoundSource | None = None
        self.sound: SoundQuery | None = None
        self.started = 0.0
        self.last_ms: float | None = None
        self.pending: str | None = None  # words of a sound search waiting for the model
        search = window.search
        self.panel = RecordPanel(window.settings, window.player, search)
        search.layout().insertWidget(1, self.panel)  # right under the field
        self.panel.recorded.connect(self.search_recording)
        self.panel.message.connect(lambda text: window.statusBar().showMessage(text, 8000))
        search.sound_dropped.connect(self.search_file)
        search.sound_search_requested.connect(self.steer)
        search.similar_cleared.connect(self._forget)
        search.record_requested.connect(self.panel.toggle)
        window.model_ctl.state_changed.connect(self._model_state)

    # -- what starts a sound search -------------------------------------------------------------
    def search_file(self, path: str, aspect: str | None = None) -> None:
        name = os.path.splitext(os.path.basename(path))[0]
        if os.path.isdir(path):
            self.window.search.show_notice(f"'{name}' is a folder: drop a sound file to search "
                                           "with it (Library › Add library folder adds folders)")
            return
        if not os.path.isfile(path):
            self.window.search.show_notice(f"'{path}' cannot be found")
            return
        self._start(SoundSource(name, path=path), aspect)

    def search_recording(self, samples: np.ndarray, rate: int) -> None:
        name = f"your recording ({len(samples) / rate:.1f} s)"
        self._start(SoundSource(name, samples=samples, rate=rate), None,
                    started=self.panel.stopped_at)

    def _start(self, source: SoundSource, aspect: str | None, started: float | None = None
               ) -> None:
        self.started = started or time.perf_counter()
        self.source, self.sound = source, None
        search = self.window.search
        search.clear_notice()
        if search.similar_to != source.name:
            search.show_similar(source.name)  # a new sound: the old words go
        search.set_aspect(aspect)
        self._submit("")

    def steer(self, words: str) -> None:
        """The words, the amount or the aspect changed beside the chip: search again."""
        if self.source is None:
            return
        self.started = time.perf_counter()
        self._submit(words)

    def _forget(self) -> None:
        self.source, self.sound, self.pending = None, None, None
        self.panel.discard()

    def _model_state(self, state: str, _message: str) -> None:
        if state == READY and self.pending is not None and self.source is not None:
            words, self.pending = self.pending, None
            self._submit(words)

    def _submit(self, words: str) -> None:
        window = self.window
        assert self.source is not None
        if window.model_ctl.state != READY:
            if window.model_ctl.state == UNAVAILABLE:
                window.title.setText(f"Sounds like {self.source.name} needs the model, which is "
                                     "unavailable: see the status bar")
                return
            self.pending = words  # searched the moment the model is ready
            window.title.setText(f"Sounds like {self.source.name} will be searched as soon as "
                                 "the model is ready")
            return
        window.generation += 1
        kind, value = window.place
        filters = Filters(folder=value) if kind == jobs.FOLDER else Filters()
        search = window.search
        window.runner.submit(
            run_sound_search, window.library, window.generation, lambda: window.generation,
            self.source, self.sound, window.settings.get("results"), filters, words,
            search.steer_amount, search.chosen_aspect, pool="model", name="sound search",
            on_result=self._shown, on_error=self._failed)

    def _shown(self, outcome: SoundOutcome) -> None:
        window = self.window
        if outcome.response is None or outcome.generation != window.generation:
            return
        if self.source is not None and outcome.similar_to == self.source.name:
            self.sound = outcome.sound  # the next words search it again without decoding
        window._show_search(outcome)
        self.last_ms = (time.perf_counter() - self.started) * 1000.0
        self.results_shown.emit(self.last_ms)

    def _failed(self, exc: BaseException) -> None:
        if isinstance(exc, DecodeError) and self.source is not None:
            name = self.source.name
            self.source = None
            self.window.search.clear_similar()
            self.window.search.show_notice(f"'{name}' cannot be read as a sound ({exc}); "
                                           "nothing was searched")
            return
        self.window._search_failed(exc)

    # -- the window's commands ------------------------------------------------------------------
    def similar_to_current(self, aspect: str | None = None) -> None:
        hit = self.window.current_hit()
        if hit is None:
            return
        self.search_file(hit.file.path, aspect)


def install_sound_search(window: Any) -> SoundSearch:
    return SoundSearch(window)
