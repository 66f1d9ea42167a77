"""The automatic precision choice, made on the first files of a first indexing as they go by.

Before, the choice came before the first file: 40 of the producer's files were decoded and
embedded in float32 and in the candidate, and only then did indexing start. On a 2-core AVX2
CPU that kept the first sound-ranked answer back by almost a minute (72 s against 17 s).

Now the indexing run takes the sample files first, in float32, so they are searchable at once.
Every model call on them also runs each candidate on the same log-mel batch, right after
float32, so both are timed on the same windows, under the same load. When the last sample file
is in, the candidate's vectors of those files are compared with float32's (precision_choice
judges: top 10 kept, clearly faster), and the rest of the run goes on in the winner. The sample
stays in the catalog as float32 embedded it: a precision is taken only where its search
results agree with float32's, so the two can live in one library.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clapdesk.core.index.precision_choice import (
    MIN_FILES,
    QUERIES,
    SAMPLE_FILES,
    PrecisionChoice,
    Tower,
    judge,
)

log = logging.getLogger(__name__)

# Model calls per tower left out of the timing: the first one builds the kernels.
UNTIMED_CALLS = 1


def pick_sample(paths: Sequence[str], count: int = SAMPLE_FILES) -> list[str]:
    """The trial's files: up to `count` of a run's files, spread evenly over them in path
    order (the same library gives the same sample). Empty when too few to tell."""
    ordered = sorted(set(paths))
    if len(ordered) < MIN_FILES:
        return []
    step = len(ordered) / min(count, len(ordered))
    return [ordered[int(i * step)] for i in range(min(count, len(ordered)))]


@dataclass
class AutoPrecision:
    """What an indexing run needs to make the automatic choice: the trial to prepare once the
    model is loaded (or the choice, where no trial can run), and what to do with the choice."""

    prepare: Callable[[Any], PrecisionTrial | PrecisionChoice]
    chosen: Callable[[PrecisionChoice], None]


@dataclass
class TrialCall:
    """One model call of the trial: float32's features, and each candidate's of the same
    windows (one dict per window), with float32's own seconds."""

    features: np.ndarray
    candidates: list[dict[str, np.ndarray]]
    float32_seconds: float  # the log-mel inputs and the float32 tower, as an indexing call


@dataclass
class PrecisionTrial:
    """Compares the candidate towers with float32 on the sample, one model call at a time."""

    candidates: dict[str, Tower]
    text: np.ndarray  # the comparison's text queries (precision_choice.QUERIES), as vectors
    sample: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    windows_timed: int = 0  # windows each tower was timed on (all of the trial's calls but the first)
    windows: int = 0  # the compared files' windows
    _calls: int = 0
    _reference: dict[str, np.ndarray] = field(default_factory=dict)
    _trial: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    _lost: set[str] = field(default_factory=set)
    decided: PrecisionChoice | None = None  # once judged (AutoPrecision.chosen then hears it)

    @classmethod
    def prepare(cls, embedder: Any, native: Sequence[str] | None = None,
                towers: dict[str, Tower] | None = None) -> PrecisionTrial | PrecisionChoice:
        """The trial for this model, or, where none can run, the choice already made (float32,
        with the reason). Builds the candidate towers (about 5 s for int8 on a 2-core CPU),
        so it runs on the model's loading thread. `towers` replaces them (tests)."""
        from clapdesk.core.embed.fast_tower import build_fast_tower
        from clapdesk.core.index.precision_choice import native_precisions

        if embedder.device != "cpu" or embedder.precision != "float32":
            return PrecisionChoice("float32", True, "the reduced precisions are chosen on a CPU only")
        if embedder.fast_tower is None:
            return PrecisionChoice("float32", True, "this model's audio tower runs only as "
                                   "transformers ships it, in float32")
        native = native_precisions() if native is None else list(native)
        if not native:
            return PrecisionChoice("float32", True,
                                   "this CPU runs neither bfloat16 nor int8 natively")
        candidates = dict(towers) if towers is not None else {}
        if towers is None:
            for precision in native:
                tower = build_fast_tower(embedder.model.audio_model, precision)
                if tower is not None:
                    candidates[precision] = tower
        if not candidates:
            return PrecisionChoice("float32", True, "no reduced-precision tower could be built "
                                   "for this model here")
        return cls(candidates, embedder.embed_text(list(QUERIES)))

    @property
    def open(self) -> bool:
        """Still comparing: some sample file is neither embedded nor lost."""
        return self.decided is None and bool(self.sample)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.candidates)

    def embed(self, embedder: Any, windows: Sequence[np.ndarray]) -> TrialCall:
        """One model call: float32 as the indexer runs it, then each candidate on the same
        log-mel inputs. Only the towers are timed for the comparison."""
        import torch

        mel_began = time.perf_counter()
        inputs = embedder.mel_inputs(windows)
        began = time.perf_counter()
        features = embedder.encode_mel(inputs).cpu().numpy().astype(np.float32)
        ended = time.perf_counter()
        timed = self._calls >= UNTIMED_CALLS
        if timed:
            self.seconds["float32"] = self.seconds.get("float32", 0.0) + ended - began
        mel = inputs["input_features"]
        longer = torch.zeros((len(mel), 1), dtype=torch.bool)
        by_name = {}
        for name, tower in self.candidates.items():
            began = time.perf_counter()
            by_name[name] = tower(mel, longer).pooler_output.float().numpy()
            if timed:
                self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began
        self._calls += 1
        self.windows_timed += len(windows) if timed else 0
        rows = [{name: out[i] for name, out in by_name.items()} for i in range(len(windows))]
        return TrialCall(features, rows, ended - mel_began)

    def embedded(self, path: str, feature: np.ndarray,
                 candidate_rows: Sequence[dict[str, np.ndarray] | None]) -> None:
        """A sample file is in: its float32 feature (the mean over its windows, as stored) and
        each of its windows' candidate features (None for a window the trial did not see)."""
        if path not in self.sample:
            return
        if not candidate_rows or any(row is None for row in candidate_rows):
            self._lost.add(path)
            return
        self._reference[path] = np.asarray(feature, np.float32)
        self.windows += len(candidate_rows)
        self._trial[path] = {name: np.mean([row[name] for row in candidate_rows  # type: ignore[index]
                                            ], axis=0) for name in self.candidates}

    def lost(self, path: str) -> None:
        """A sample file that will not be embedded here (it failed, moved or has a twin)."""
        if path in self.sample:
            self._lost.add(path)

    @property
    def complete(self) -> bool:
        return self.open and self.sample <= (self._lost | set(self._reference))

    def decide(self, embedder: Any) -> PrecisionChoice | None:
        """The choice from the files compared so far; None when too few (float32 stays and a
        later run decides)."""
        paths = sorted(self._reference)
        if len(paths) < MIN_FILES or self.windows_timed == 0:
            self.sample = set()  # closed: the run goes on in float32
            return None
        reference = np.stack([self._reference[p] for p in paths])
        candidates = {name: np.stack([self._trial[p][name] for p in paths])
                      for name in self.candidates}
        choice = judge(embedder, reference, candidates, self.seconds, self.text,
                       self.windows_timed, files=len(paths), windows=self.windows)
        if choice.precision != "float32":
            choice.tower = self.candidates[choice.precision]  # type: ignore[attr-defined]
        self.decided = choice
        return choice

    def seconds_per_window(self, precision: str) -> float | None:
        """The trial's measured time per window in `precision`, for the time left."""
        if not self.windows_timed or precision not in self.seconds:
            return None
        return self.seconds[precision] / self.windows_timed

