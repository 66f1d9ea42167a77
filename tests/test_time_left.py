"""The time left in an indexing run, replayed on made-up schedules of a run's real shape: files
of known and unknown length, decoding as the slow phase, a precision switch mid-run, and the
range said while the precision is chosen (clapdesk/core/index/eta.py)."""

from __future__ import annotations

import numpy as np
import pytest

from clapdesk.core.index.eta import TimeLeft, estimate_errors, windows_for


def _schedule(seed: int = 0) -> tuple[list[tuple[str, float, int]], float, float]:
    """A made-up library in the order a scan finds it: 500 one-shots, then 300 loops, then 150
    long stems; each file's length is in its header. Returns (name, seconds, size) rows, the
    model's seconds per window and the rest's seconds per file."""
    rng = np.random.default_rng(seed)
    rows = []
    def row(name: str, low: float, high: float, bytes_per_second: int) -> tuple[str, float, int]:
        seconds = float(rng.uniform(low, high))
        return name, seconds, int(seconds * bytes_per_second)

    rows += [row(f"hits/{i}.wav", 0.2, 3.0, 176_400) for i in range(500)]
    rows += [row(f"loops/{i}.wav", 8.0, 24.0, 176_400) for i in range(300)]
    # Stems as MP3 at 320 kbit/s: no length in the header, only the size.
    rows += [row(f"stems/{i}.mp3", 60.0, 240.0, 40_000) for i in range(150)]
    return rows, 0.12, 0.02


def _replay(rows: list[tuple[str, float, int]], per_window: float, per_file: float,
            estimator: TimeLeft, known_lengths: bool, seed: int = 1
            ) -> tuple[list[tuple[float, float | None]], float, float]:
    """Runs the pipeline's schedule on a virtual clock: a model load, then model calls of four
    windows each (their time jittered by a busy machine, +-25 %), files finishing when their last
    window is embedded, and per-file work (decoder waits, commits) between them."""
    rng = np.random.default_rng(seed)
    now = 0.0
    for name, seconds, size in rows:
        estimator.expect(name, seconds if known_lengths or not name.endswith(".mp3") else None,
                         size, name)
    now += 15.0  # the model loads
    start = now
    estimator.start(now)
    history: list[tuple[float, float | None]] = []
    lengths = {name: seconds for name, seconds, _size in rows}
    queued: list[tuple[str, int]] = []  # files whose windows wait for a model call
    waiting = 0
    for name, seconds, _size in rows:
        windows = windows_for(seconds) or 1
        queued.append((name, windows))
        waiting += windows
        now += per_file * float(rng.uniform(0.5, 1.5))
        while waiting >= 4:
            cost = 4 * per_window * float(rng.uniform(0.75, 1.25))
            now += cost
            estimator.model_call(4, cost, now)
            waiting -= 4
        # Files whose every window is embedded are done, in order.
        embedded_windows = sum(w for _, w in queued) - waiting
        while queued and queued[0][1] <= embedded_windows:
            done_name, done_windows = queued.pop(0)
            embedded_windows -= done_windows
            estimator.file_done(done_name, done_windows, now, lengths[done_name])
            history.append((now, estimator.eta()))
    for done_name, done_windows in queued:
        now += per_window * done_windows
        estimator.file_done(done_name, done_windows, now)
        history.append((now, estimator.eta()))
    return history, start, now


def _replay_decode_bound(estimator: TimeLeft, files: int = 1500, seed: int = 2
                         ) -> tuple[list[tuple[float, float | None]], float, float]:
    """A small model on a busy machine: decoding (0.2 s a file, jittered) is the slow phase.
    The decoders start while the model loads (15 s) and run 32 files ahead, so the first 32
    files reach the model decoded and go through at once; after that, the decoders' pace rules."""
    rng = np.random.default_rng(seed)
    ready, ahead, model_cost = 15.0, 32, 0.002
    decoded, consumed = [0.0] * files, [0.0] * files
    for i in range(files):
        allowed = consumed[i - ahead] if i >= ahead else 0.0  # the read-ahead is full until then
        start = max(decoded[i - 1] if i else 0.0, allowed)
        decoded[i] = start + 0.2 * float(rng.uniform(0.6, 1.4))
        consumed[i] = max(decoded[i], ready, consumed[i - 1] if i else 0.0) + model_cost
    for i in range(files):
        estimator.expect(i, 1.0, 44_100, f"{i}.wav")
    events = sorted([(t, 0, i) for i, t in enumerate(decoded)]
                    + [(t, 1, i) for i, t in enumerate(consumed)] + [(ready, -1, -1)])
    history: list[tuple[float, float | None]] = []
    for at, kind, index in events:
        if kind == -1:
            estimator.start(at)
        elif kind == 0:
            estimator.file_decoded(at)
        else:
            estimator.model_call(1, model_cost, at)
            estimator.file_done(index, 1, at, 1.0)
            history.append((at, estimator.eta()))
    return history, 0.0, consumed[-1]


def test_time_left_when_decoding_is_the_slow_phase() -> None:
    history, start, end = _replay_decode_bound(TimeLeft())
    errors = estimate_errors(history, end, start, after=60.0)
    assert end - start > 240 and errors["points"] > 1000
    assert errors["max_error"] is not None and errors["max_error"] <= 0.20, errors
    # Right after the model is ready the 32 files decoded ahead go through at once: counting
    # only the model's side would then promise a fraction of the time really left.
    early = [(t, eta) for t, eta in history if eta is not None][:5]
    assert all(eta >= 0.8 * (end - t) for t, eta in early), early


class _FilesPerSecond:
    """The estimate clapdesk used before: files per second over the last 64 files."""

    def __init__(self, total: int) -> None:
        self.total, self.marks = total, []

    def expect(self, *_args: object) -> None:
        pass

    def start(self, now: float) -> None:
        self.marks = [(now, 0)]

    def model_call(self, *_args: object) -> None:
        pass

    def file_done(self, _name: str, _windows: int, now: float, *_length: float) -> None:
        self.marks = (self.marks + [(now, self.marks[-1][1] + 1)])[-65:]

    def eta(self) -> float | None:
        (t0, d0), (t1, d1) = self.marks[0], self.marks[-1]
        return (self.total - d1) * (t1 - t0) / (d1 - d0) if d1 > d0 else None


@pytest.mark.parametrize("known_lengths", [True, False], ids=["headers", "mp3-by-size"])
def test_time_left_is_within_a_fifth_after_the_first_minute(known_lengths: bool) -> None:
    rows, per_window, per_file = _schedule()
    history, start, end = _replay(rows, per_window, per_file, TimeLeft(), known_lengths)
    errors = estimate_errors(history, end, start, after=60.0)
    assert end - start > 240 and errors["points"] > 300
    assert errors["max_error"] is not None and errors["max_error"] <= 0.20, errors
    # The same schedule defeats a files-per-second estimate: one-shots first, stems last.
    old_history, old_start, old_end = _replay(rows, per_window, per_file,
                                              _FilesPerSecond(len(rows)), known_lengths)  # type: ignore[arg-type]
    old = estimate_errors(old_history, old_end, old_start, after=60.0)
    assert old["max_error"] is not None and old["max_error"] > 0.5, old


def test_time_left_says_nothing_until_the_model_has_run_and_counts_per_window() -> None:
    estimator = TimeLeft()
    estimator.expect("a", 1.0, 1000, "a.wav")
    estimator.expect("b", 55.0, 9000, "b.wav")  # six windows (the most a file gets)
    estimator.expect("c", None, 4000, "c.ogg")  # length unknown: one window until seen
    assert estimator.eta() is None  # the model has not loaded
    estimator.start(0.0)
    estimator.model_call(4, 2.0, 2.0)  # the first call builds kernels: not counted
    assert estimator.eta() is None
    for i in range(3):
        estimator.model_call(4, 0.4, 2.4 + 0.4 * i)
    estimator.file_done("a", 1, 3.2)
    assert windows_for(55.0) == 6 and windows_for(0.0) == 1 and windows_for(None) is None
    # "c" is 4000 bytes of Ogg: one window (the least a file gets) at the format's usual rate.
    assert estimator.windows_left() == 7
    eta = estimator.eta()
    # 0.1 s a window for 7 windows, plus the time not spent in the model per file (3.2 - 3.2)
    assert eta is not None and abs(eta - (0.7 + estimator.seconds_per_file() * 2)) < 1e-9


def test_a_precision_switch_mid_run_restarts_the_model_rate_from_the_trial() -> None:
    # The precision trial runs float32 (0.3 s a window) and int8 on the first files, then the
    # run goes on in int8 (0.2 s a window, as the trial measured). The time left must follow
    # at once, and the trial's own int8 calls must not count as time per file.
    estimator = TimeLeft()
    for i in range(100):
        estimator.expect(i, 9.0, 1000, f"{i}.wav")  # one window each
    estimator.start(0.0)
    now = 0.0
    for i in range(10):  # the trial: float32 then int8 on every call of four files
        estimator.model_call(4, 1.2, now + 1.2)
        estimator.aside(0.8)
        now += 2.0 + 0.04  # 40 ms per call outside the towers: 10 ms a file
        for k in range(4):
            estimator.file_done(4 * i + k, 1, now)
    before = estimator.eta()
    assert before is not None and abs(before - (60 * 0.3 + 60 * 0.01)) < 0.5, before
    assert estimator.seconds_per_file() < 0.02  # int8's 0.8 s a call is not "per file"
    estimator.model_changed(0.2, now)
    after = estimator.eta()
    assert after is not None and abs(after - (60 * 0.2 + 60 * 0.01)) < 0.5, after
    # Unmeasured (None): the old rate is dropped and nothing is said until the new one is.
    estimator.model_changed(None, now)
    assert estimator.seconds_per_window() is None and estimator.eta() is None


def test_the_decoders_pace_leaves_out_the_wait_for_a_full_read_ahead() -> None:
    # 32 files decoded ahead at 0.2 s each, then a minute's wait while the model is busy (the
    # automatic precision choice) and the read-ahead is full, then the same pace again.
    estimator = TimeLeft()
    for i in range(1000):
        estimator.expect(i, 1.0, 44_100, f"{i}.wav")
    marks = [0.2 * (i + 1) for i in range(32)] + [61.4 + 0.2 * i for i in range(31)]
    for at in marks:
        estimator.file_decoded(at)
    bound = estimator.decode_bound()
    # 937 files still to decode at 5 a second: 187 s. Over the wait it would say 1,000 s.
    assert bound is not None and abs(bound - 937 / 5) < 0.1 * 937 / 5, bound


def _trial_schedule() -> tuple[list[tuple[float, float]], list[float], list[float]]:
    """The trial (float32 and a candidate, 0.3 s a file) keeps the read-ahead full, so the
    decoders finish a file each time the model takes one: 0.3 s apart, though they could do
    one in 0.05 s. Then the run goes on in the candidate at 0.08 s a file. Returns each file's
    (model, aside) seconds, and when it was decoded and when the model was done with it."""
    files, trial, ahead, ready = 1000, 40, 32, 5.0
    cost = [(0.1, 0.2) if i < trial else (0.075, 0.0) for i in range(files)]  # model, aside
    decoded, consumed = [0.0] * files, [0.0] * files
    for i in range(files):
        allowed = consumed[i - ahead] if i >= ahead else 0.0
        decoded[i] = max(decoded[i - 1] if i else 0.0, allowed) + 0.05
        consumed[i] = (max(decoded[i], consumed[i - 1] if i else ready)
                       + sum(cost[i]) + 0.005)
    return cost, decoded, consumed


def _replay_start(decoded: list[float], consumed: list[float]
                  ) -> tuple[TimeLeft, list[tuple[float, int, int]]]:
    """An estimator expecting the schedule's one-second files, started when the model was
    ready (5 s), and the schedule's events in time order: (when, 0, file) as a decoder finished
    it, (when, 1, file) as the model was done with it."""
    estimator = TimeLeft()
    for i in range(len(decoded)):
        estimator.expect(i, 1.0, 44_100, f"{i}.wav")
    estimator.start(5.0)
    events = sorted([(t, 0, i) for i, t in enumerate(decoded)]
                    + [(t, 1, i) for i, t in enumerate(consumed)])
    return estimator, events


def test_while_choosing_the_time_left_range_holds_the_real_one() -> None:
    """The same trial: the range from the candidate's pace to float32's holds the real time
    left once both have been timed. With the decoders' bound in it (their pace is the trial's
    then) its fast end rose to 2.5x the real time left by the end of the trial."""
    from clapdesk.core.index.precision_trial import PrecisionTrial

    cost, decoded, consumed = _trial_schedule()
    trial_files = 40
    trial = PrecisionTrial(("int8",), {"int8": lambda mel, longer: None},
                           sample={str(i) for i in range(trial_files)})
    estimator, events = _replay_start(decoded, consumed)
    held = []
    for at, kind, index in events:
        if kind == 0:
            estimator.file_decoded(at)
            continue
        if index >= trial_files:
            break
        model, _ = cost[index]
        estimator.model_call(1, model, at)
        estimator.aside(0.2)
        estimator.file_done(index, 1, at, 1.0)
        trial.seconds = {"float32": model * (index + 1), "int8": 0.075 * (index + 1)}
        trial.windows_timed = index + 1
        trial._reference[str(index)] = np.zeros(4, np.float32)
        low, high = trial.time_left(estimator)
        if index >= 10:
            real = consumed[-1] - at
            held.append(low is not None and 0.9 * low <= real <= 1.1 * high)
    assert len(held) == 30 and all(held), held


def test_after_a_precision_switch_the_decoders_old_pace_does_not_hold_the_time_left() -> None:
    cost, decoded, consumed = _trial_schedule()
    trial = 40
    estimator, events = _replay_start(decoded, consumed)
    after_switch: list[tuple[float, float]] = []
    for at, kind, index in events:
        if kind == 0:
            estimator.file_decoded(at)
            continue
        model, aside = cost[index]
        estimator.model_call(1, model, at)
        estimator.aside(aside)
        estimator.file_done(index, 1, at, 1.0)
        if index == trial - 1:
            estimator.model_changed(0.075, at)
        elif index >= trial and at < consumed[trial - 1] + 20.0:
            eta = estimator.eta()
            assert eta is not None
            after_switch.append((eta, consumed[-1] - at))
    worst = max(abs(eta - real) / real for eta, real in after_switch)
    # Before the decoders' marks were dropped at the switch: 2.7x the real time left.
    assert len(after_switch) > 200 and worst <= 0.2, worst
