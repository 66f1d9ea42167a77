"""The model loads on its own thread while the first files are catalogued and decoded.

Loading the full model takes several seconds to a minute (reading 200 M weights, building the
towers, the text health check). Before, an indexing run did nothing else meanwhile; now the
decoders start on the first files as soon as the model's sampling rate is known, which needs
only its preprocessor_config.json, and the indexer takes the model when it is ready.

The pipeline's moments are kept in a Timeline (monotonic seconds, which decoder processes share
with the indexer on Linux and macOS), so a test and the benchmark can check that the load and
the decoding really overlapped, and the time-left estimate can tell the phases apart.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# The rate every CLAP checkpoint clapdesk knows uses; said when a folder's preprocessor file
# does not say it (the loaded model's own rate still wins, see Indexer._check_rate).
DEFAULT_MODEL_RATE = 48000


@dataclass
class Timeline:
    """What happened when in one indexing run: (monotonic seconds, event, detail)."""

    events: list[tuple[float, str, str]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def mark(self, event: str, detail: str = "", at: float | None = None) -> None:
        with self._lock:
            self.events.append((time.monotonic() if at is None else at, event, detail))

    def first(self, event: str) -> float | None:
        with self._lock:
            return next((t for t, e, _ in self.events if e == event), None)

    def times(self, event: str) -> list[float]:
        with self._lock:
            return [t for t, e, _ in self.events if e == event]


def model_rate(folder: str | os.PathLike[str] | None) -> int:
    """The model's sampling rate from its folder's preprocessor_config.json, without torch."""
    if folder:
        try:
            with open(os.path.join(folder, "preprocessor_config.json"), encoding="utf-8") as handle:
                rate = json.load(handle).get("sampling_rate")
            if isinstance(rate, int) and 8000 <= rate <= 192000:
                return rate
        except (OSError, ValueError, AttributeError) as exc:
            log.debug("model rate not read from %s: %s", folder, exc)
    return DEFAULT_MODEL_RATE


class BackgroundLoad(Generic[T]):
    """`load()` run once on a thread of its own; `result()` waits for it and re-raises."""

    def __init__(self, load: Callable[[], T], timeline: Timeline | None = None,
                 name: str = "model") -> None:
        self.timeline = timeline or Timeline()
        self._load = load
        self._name = name
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"clapdesk-load-{name}",
                                        daemon=True)

    def start(self) -> BackgroundLoad[T]:
        self.timeline.mark(f"{self._name} loading")
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            self._value = self._load()
        except BaseException as exc:  # re-raised in the indexing thread by result()
            self._error = exc
        finally:
            self.timeline.mark(f"{self._name} ready" if self._error is None
                               else f"{self._name} failed")
            self._done.set()

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)

    def result(self) -> T:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._value is not None
        return self._value
