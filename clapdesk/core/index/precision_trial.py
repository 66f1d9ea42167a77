"""The automatic precision choice, made on the first files of a first indexing as they go by.

Before, the choice came before the first file: 40 of the producer's files were decoded and
embedded in float32 and in the candidate, and only then did indexing start. On a 2-core AVX2
CPU that kept the first sound-ranked answer back by almost a minute (72 s against 17 s).

Now the indexing run takes the sample files first, in float32, so they are searchable at once.
Each candidate then runs on the same log-mel batches as float32, once the files of a model call
are committed (catch_up), so both are timed on the same windows and the candidates never hold a
file back from the search: their towers are built at the first catch-up, after the first files
are in (building them while the model loaded, and running them before the commit, kept the
first sound-ranked answer back by 5-10 s on 2 cores). When the last sample file is in, the
candidates' vectors of those files are compared with float32's (precision_choice judges: top 10
kept, clearly faster), and the rest of the run goes on in the winner. The sample stays in the
catalog as float32 embedded it: a precision is taken only where its search results agree with
float32's, so the two can live in one library.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from clapdesk.core.index.device_plan import CPU_BATCH_WINDOWS
from clapdesk.core.index.eta import TimeLeft
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

    prepare: Callable[[Any], PrecisionTrial | PrecisionChoice | None]  # None: not on this device
    chosen: Callable[[PrecisionChoice], None]


@dataclass
class TrialCall:
    """One model call of the trial: float32's features, and each candidate's of the same
    windows (one dict per window, filled by PrecisionTrial.catch_up), with float32's own
    seconds."""

    features: np.ndarray
    candidates: list[dict[str, np.ndarray]]
    float32_seconds: float  # the log-mel inputs and the float32 tower, as an indexing call
    mel: Any = None  # the log-mel batch the candidates run on, until they have
    timed: bool = False
    tower_seconds: float = 0.0  # float32's tower alone, counted once the candidates ran too


@dataclass
class PrecisionTrial:
    """Compares the candidate towers with float32 on the sample, one model call at a time."""

    planned: tuple[str, ...]  # the candidate precisions, in the order they are tried
    candidates: dict[str, Tower] = field(default_factory=dict)  # built at the first catch-up
    text: np.ndarray | None = None  # precision_choice.QUERIES as vectors, with the towers
    sample: set[str] = field(default_factory=set)
    seconds: dict[str, float] = field(default_factory=dict)
    windows_timed: int = 0  # windows each tower was timed on (all of the trial's calls but the first)
    windows: int = 0  # the compared files' windows
    _calls: int = 0
    _reference: dict[str, np.ndarray] = field(default_factory=dict)
    _trial: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    _lost: set[str] = field(default_factory=set)
    _waiting: list[TrialCall] = field(default_factory=list)  # calls the candidates owe
    _no_tower: PrecisionChoice | None = None  # the choice when no candidate could be built
    decided: PrecisionChoice | None = None  # once judged (AutoPrecision.chosen then hears it)

    @classmethod
    def prepare(cls, embedder: Any, native: Sequence[str] | None = None,
                towers: dict[str, Tower] | None = None) -> PrecisionTrial | PrecisionChoice:
        """The trial for this model, or, where none can run, the choice already made (float32,
        with the reason). Cheap: the candidate towers are built at the first catch-up (about
        5 s for int8 on a 2-core CPU). `towers` replaces them (tests)."""
        from clapdesk.core.index.precision_choice import native_precisions

        if embedder.device != "cpu" or embedder.precision != "float32":
            return PrecisionChoice("float32", True, "the reduced precisions are chosen on a CPU only")
        if embedder.fast_tower is None:
            return PrecisionChoice("float32", True, "this model's audio tower runs only as "
                                   "transformers ships it, in float32")
        if towers is not None:
            return cls(tuple(towers), dict(towers))
        native = native_precisions() if native is None else list(native)
        if not native:
            return PrecisionChoice("float32", True,
                                   "this CPU runs neither bfloat16 nor int8 natively")
        return cls(tuple(native))

    def _build(self, embedder: Any) -> None:
        """The candidate towers and the comparison's text vectors, once."""
        from clapdesk.core.embed.fast_tower import build_fast_tower

        if not self.candidates:
            for precision in self.planned:
                tower = build_fast_tower(embedder.model.audio_model, precision,
                                         embedder.encoder_key)
                if tower is not None:
                    self.candidates[precision] = tower
        if not self.candidates:  # nothing to compare: float32, with the reason
            self._no_tower = PrecisionChoice("float32", True, "no reduced-precision tower "
                                             "could be built for this model here")
            return
        self.text = embedder.embed_text(list(QUERIES))

    @property
    def open(self) -> bool:
        """Still comparing: some sample file is neither embedded nor lost."""
        return self.decided is None and bool(self.sample)

    @property
    def names(self) -> tuple[str, ...]:
        """What is being compared: those planned until the towers are built, then those
        that could be."""
        return tuple(self.candidates) or self.planned

    def embed(self, embedder: Any, windows: Sequence[np.ndarray]) -> TrialCall:
        """One model call in float32, as the indexer runs it; the candidates run on the same
        log-mel inputs at the next catch_up. Only the towers are timed for the comparison."""
        mel_began = time.perf_counter()
        inputs = embedder.mel_inputs(windows)
        began = time.perf_counter()
        features = embedder.encode_mel(inputs).cpu().numpy().astype(np.float32)
        ended = time.perf_counter()
        call = TrialCall(features, [{} for _ in windows], ended - mel_began,
                         inputs["input_features"], self._calls >= UNTIMED_CALLS, ended - began)
        self._calls += 1
        self._waiting.append(call)
        return call

    def catch_up(self, embedder: Any) -> None:
        """Each candidate on the calls float32 has made since the last catch-up (their files
        are searchable by now): fills those calls' per-window dicts."""
        import torch

        if self.text is None and self._no_tower is None:  # the first catch-up
            self._build(embedder)
        waiting, self._waiting = self._waiting, []
        if self._no_tower is not None:
            return
        for call in waiting:
            # Counted here, not when float32 ran: a call the candidates never caught up on
            # (a run that ends mid-trial) is then in no tower's time, not in float32's alone.
            if call.timed:
                self.seconds["float32"] = self.seconds.get("float32", 0.0) + call.tower_seconds
                self.windows_timed += len(call.candidates)
            longer = torch.zeros((len(call.mel), 1), dtype=torch.bool)
            for name, tower in self.candidates.items():
                began = time.perf_counter()
                out = tower(call.mel, longer).pooler_output.float().numpy()
                if call.timed:
                    self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - began
                for row, vector in zip(call.candidates, out):
                    row[name] = vector
            call.mel = None

    def embedded(self, path: str, feature: np.ndarray,
                 candidate_rows: Sequence[dict[str, np.ndarray] | None]) -> None:
        """A sample file is in: its float32 feature (the mean over its windows, as stored) and
        each of its windows' candidate features (None for a window the trial did not see)."""
        if path not in self.sample:
            return
        # None: a window the trial did not see; {}: one the candidates have not caught up on.
        if not candidate_rows or not all(candidate_rows):
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
        """Every sample file is in or lost, or the towers could not be built: decide now."""
        return self.open and (self._no_tower is not None
                              or self.sample <= (self._lost | set(self._reference)))

    def decide(self, embedder: Any) -> PrecisionChoice | None:
        """The choice from the files compared so far; None when too few (float32 stays and a
        later run decides)."""
        if self._no_tower is not None:
            self.sample = set()
            self.decided = self._no_tower
            return self.decided
        paths = sorted(self._reference)
        if len(paths) < MIN_FILES or self.windows_timed == 0 or self.text is None:
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

    def time_left(self, timer: TimeLeft) -> tuple[float | None, float | None]:
        """While comparing: (the time left if the run goes on in the fastest candidate, if it
        stays in float32), each with what the candidates still cost on the sample; (None, None)
        until the candidates have been timed. The run's own pace (`timer`) is float32's: the
        candidates' time is set aside from it (TimeLeft.aside). The decoders' bound is left
        out: while the trial holds the model back, the read-ahead is full and the decoders
        finish a file each time the model takes one, so their pace is the trial's (it put
        every range of a 1,000-file run above the real time left, AVX2 EPYC; without it the
        ranges closed in on it within 10 s of the first, and held it from then on)."""
        float32 = timer.eta(decoders=False)
        paces = [p for p in map(self.seconds_per_window, self.candidates) if p]
        if float32 is None or not paces:
            return None, None
        # The sample files still to come, at the run's windows per file, through every candidate.
        sample_left = len(self.sample - self._lost - set(self._reference))
        windows_per_file = timer.windows_left() / max(1, timer.files_left)
        owed = sample_left * windows_per_file * sum(paces)
        fastest = timer.eta(min(paces), decoders=False)
        return (None if fastest is None else fastest + owed), float32 + owed

    def seconds_per_window(self, precision: str) -> float | None:
        """The trial's measured time per window in `precision`, for the time left."""
        if not self.windows_timed or precision not in self.seconds:
            return None
        return self.seconds[precision] / self.windows_timed


def decode_sample(paths: Sequence[str], rate: int) -> list[tuple[str, list[np.ndarray]]]:
    """The sample's windows, decoded as the indexer decodes files: in decoder processes, with
    the per-file time and memory limits, so a hostile file cannot hang or exhaust the app and
    the decoding libraries' notes never reach the terminal. Files that fail are left out."""
    from clapdesk.core.index.decoding import DecodePool, DecodeRequest, decode_file, decode_seconds

    pool = DecodePool(min(2, os.cpu_count() or 1))
    files: list[tuple[str, list[np.ndarray]]] = []
    try:
        for path in paths:
            try:
                st = os.stat(path)
                future = pool.submit(decode_file, DecodeRequest(
                    path, st.st_size, st.st_mtime_ns, rate, idle=False))
                result = future.result(timeout=decode_seconds())
            except Exception as exc:  # a stuck decoder is ended; the indexer reports the file
                log.info("precision sample: %s skipped (%s)", path, exc or type(exc).__name__)
                pool.kill()
                continue
            if result.decoded is not None and result.decoded.windows:
                files.append((path, result.decoded.windows))
    finally:
        pool.close()
    return files


def choose_on_files(embedder: Any, paths: Sequence[str], native: list[str] | None = None,
                    towers: dict[str, Tower] | None = None) -> PrecisionChoice | None:
    """The choice on `paths` outside an indexing run (benchmarks, tests): the same trial the
    indexer runs on its first files, here on files decoded for it. None when there are too
    few files to tell."""
    sample = pick_sample(paths)
    if not sample:
        return None  # too few to tell, whatever they decode to: nothing is read
    trial = PrecisionTrial.prepare(embedder, native, towers)
    if isinstance(trial, PrecisionChoice):
        return trial
    decoded = decode_sample(sample, embedder.sampling_rate)
    trial.sample = {path for path, _ in decoded}
    flat = [w for _, windows in decoded for w in windows]
    features: list[np.ndarray] = []
    rows: list[dict[str, np.ndarray]] = []
    for start in range(0, len(flat), CPU_BATCH_WINDOWS):
        call = trial.embed(embedder, flat[start:start + CPU_BATCH_WINDOWS])
        features.extend(call.features)
        rows.extend(call.candidates)
    trial.catch_up(embedder)
    at = 0
    for path, windows in decoded:
        trial.embedded(path, np.mean(features[at:at + len(windows)], axis=0),
                       rows[at:at + len(windows)])
        at += len(windows)
    return trial.decide(embedder)
