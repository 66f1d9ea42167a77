"""Quick fine-tuning: teach the search a library's own vocabulary in about a minute on a CPU.

The encoders stay frozen. Light heads, starting as copies of the model's own projections, are
trained on the pre-projection audio features indexing already stored (so no audio is decoded
again) and on text features computed once for the generated texts. The loss is a symmetric
contrastive loss in which every sample carrying the tags a text names counts as a match
(multi-positive InfoNCE).

No single strength suits every library: where the base model already knows the tags, small
pulled-back steps keep what it knows; where it knows little, only bold steps get anywhere. So a
run tries a few settings (SETTINGS: learning rate, steps, the pull back toward the start
weights, the whole heads or a small residual adapter after them) and keeps the setting and step
that do best on the validation packs. The figures reported are those of the test packs, which
chose nothing (see protocol.py). A run whose best does not beat the start on validation saves
nothing and says why.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clapdesk.core.embed import torch_threads
from clapdesk.core.finetune import versions
from clapdesk.core.finetune.data import (
    TEXT_BATCH,
    Dataset,
    FineTuneCancelled,
    FineTuneOptions,
    FineTuneProgress,
    FineTuneResult,
    ProgressCallback,
    prepare,
)
from clapdesk.core.finetune.heads import Batches, HeadModel, Judge, contrastive_loss
from clapdesk.core.finetune.prompts import query_text
from clapdesk.core.finetune.protocol import (
    Fold,
    QueryFigures,
    changes_in_words,
    evaluate_scores,
    gain_low_bound,
    overall_score,
)
from clapdesk.core.store.catalog import Catalog
from clapdesk.core.store.model_key import ModelKey

if TYPE_CHECKING:  # the library is the face above this package; only its type is named here
    from clapdesk.core.library import Library

log = logging.getLogger(__name__)

# A gain on validation smaller than this (in the mean of R@1/5/10 and P@10) is taken for noise:
# picking the best of a few settings and many steps always finds a little by luck.
MIN_GAIN = 0.03
FEW_FILES = 20  # a tag on fewer files is hard to learn; a run without gain says which


@dataclass(frozen=True)
class Setting:
    """One strength to try. `pull` is the decay toward the start weights per step, times the
    learning rate; `part` is "heads" (every weight of both projections) or "adapter" (a rank-
    ADAPTER_RANK correction after each projection, folded into its last layer when saved)."""

    name: str
    part: str
    learning_rate: float
    pull: float
    steps: int

    def to_json(self) -> dict[str, Any]:
        return {"setting": self.name, "part": self.part, "learning_rate": self.learning_rate,
                "pull": self.pull, "max_steps": self.steps}


# Cheapest first: on a tie the earlier (gentler) setting is kept. Step counts are fixed, not
# timed, so that a busy machine cannot change what a run chooses; together they fit the
# budget of 1,000 samples in under a minute on 2 cores (benchmarks/bench_finetune.py).
SETTINGS = (
    Setting("gentle", "heads", 1e-3, 0.5, 120),
    Setting("adapter", "adapter", 1e-2, 0.05, 160),
    Setting("bold", "heads", 5e-3, 0.02, 160),
)


# -- inputs ------------------------------------------------------------------------------------
def _text_features(embedder: Any, texts: list[str], notify: ProgressCallback,
                   cancel: threading.Event) -> np.ndarray:
    out = []
    for at in range(0, len(texts), TEXT_BATCH):
        if cancel.is_set():
            raise FineTuneCancelled()
        out.append(embedder.text_features(texts[at: at + TEXT_BATCH]))
        notify(FineTuneProgress("reading texts", min(len(texts), at + TEXT_BATCH), len(texts)))
    return np.concatenate(out).astype(np.float32)


@dataclass
class _Trial:
    setting: Setting
    fold: int
    start: float  # validation score at step 0
    score: float  # best validation score
    step: int
    state: list[Any]
    model: HeadModel


def _train_loop(setting: Setting, model: HeadModel, batches: Batches, train: np.ndarray,
                judge: Callable[[HeadModel], QueryFigures] | None, steps: int,
                options: FineTuneOptions, rng: np.random.Generator,
                tick: Callable[[], None], cancel: threading.Event
                ) -> tuple[float, float, int, list[Any]]:
    """Adam steps with a pull back to the start weights. With a judge, keeps the best state on
    it and stops after `patience` evaluations without gain; without one runs all `steps`.
    Returns (start score, best score, best step, best state)."""
    import torch
    import torch.nn.functional as F

    start_state = model.state()
    start = overall_score(judge(model).means()) if judge else 0.0
    best, best_step, best_state = start, 0, start_state
    optimiser = torch.optim.Adam(model.params, lr=setting.learning_rate)
    pull = setting.learning_rate * setting.pull
    stale = 0
    for step in range(1, steps + 1):
        if cancel.is_set():
            raise FineTuneCancelled()
        rows, texts, match = batches.draw(rng, train, options.batch_size)
        a = F.normalize(model.audio(rows), dim=-1)
        t = F.normalize(model.text(texts), dim=-1)
        loss = contrastive_loss(a, t, match, 1.0 / options.temperature)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():  # decoupled decay toward the start weights, not toward zero
            for p, p0 in zip(model.params, start_state):
                p.sub_(pull * (p - p0))
        tick()
        if judge is not None and (step % options.eval_every == 0 or step == steps):
            score = overall_score(judge(model).means())
            if score > best + 1e-6:
                best, best_step, best_state, stale = score, step, model.state(), 0
            else:
                stale += 1
                if stale >= options.patience:
                    break
    if judge is None:
        best_step, best_state = steps, model.state()
    return start, best, best_step, best_state


# -- choosing and judging ----------------------------------------------------------------------
@dataclass
class Outcome:
    """What the training found, before anything is saved."""

    audio_head: Any
    text_head: Any
    setting: Setting
    step: int
    gain: float  # on the confirming half of validation, mean over folds
    gain_low: float  # the cautious gain (gain_low_bound)
    validation_before: float  # confirming half
    validation_after: float
    before: QueryFigures  # test parts, pooled over folds
    after: QueryFigures
    tried: list[dict[str, Any]]


def _settings(options: FineTuneOptions) -> list[Setting]:
    if options.steps is None:
        return list(SETTINGS)
    return [Setting(s.name, s.part, s.learning_rate, s.pull, options.steps) for s in SETTINGS]


def train_and_choose(embedder: Any, data: Dataset, options: FineTuneOptions,
                     progress: ProgressCallback | None = None,
                     cancel: threading.Event | None = None) -> Outcome:
    """Try every setting on every fold, keep the best on validation, judge it on test."""
    import torch

    notify = progress or (lambda p: None)
    cancel = cancel or threading.Event()
    tags = data.eval_tags + [t for f in data.folds for t in f.choose_tags + f.confirm_tags]
    queries = {t: query_text(t) for t in tags}
    # Query words are encoded one at a time, apart from the training texts: padding makes a
    # text's features depend a hair on its batch, and test queries must not touch training.
    texts = sorted({p.text for p in data.pairs})
    asked = sorted(set(queries.values()) - set(texts))
    text_feats = np.concatenate([_text_features(embedder, texts, notify, cancel)]
                                + [embedder.text_features([q]).astype(np.float32) for q in asked])
    texts += asked
    text_index = {t: i for i, t in enumerate(texts)}
    batches = Batches(data, text_index, text_feats)
    settings = _settings(options)
    final_steps = max(s.steps for s in settings) if data.rotated else 0
    total = len(data.folds) * sum(s.steps for s in settings) + final_steps
    done = [0]

    def tick() -> None:
        done[0] += 1
        if done[0] % 10 == 0:
            notify(FineTuneProgress("training", done[0], total))

    def judge(fold: Fold, part: str) -> Judge:
        rows, names = {"choose": (fold.choose, fold.choose_tags),
                       "confirm": (fold.confirm, fold.confirm_tags),
                       "test": (fold.test, fold.test_tags)}[part]
        return Judge(batches, rows, names, [text_index[queries[t]] for t in names])

    def trials_then_choice() -> Outcome:
        notify(FineTuneProgress("training", 0, total))
        trials: list[_Trial] = []
        budget_done = 0
        for k, fold in enumerate(data.folds):
            train = batches.rows_with_texts(fold.train)
            for n, setting in enumerate(settings):
                # Every setting and fold draws the same batches: only the setting differs.
                torch.manual_seed(options.seed + n)
                rng = np.random.default_rng(options.seed + 1000 * k)
                model = HeadModel(embedder, batches, setting.part)
                start, score, step, state = _train_loop(
                    setting, model, batches, train, judge(fold, "choose"), setting.steps,
                    options, rng, tick, cancel)
                trials.append(_Trial(setting, k, start, score, step, state, model))
                budget_done += setting.steps  # a setting that stopped early: skip its rest
                done[0] = budget_done
        return _choose(embedder, data, options, settings, trials, judge, batches, tick, cancel)

    # The heads are small: one thread beats several, which spend more time waiting on each
    # other than multiplying, and a busy machine makes that a hundredfold worse. They run on a
    # lane of their own whose torch count is one, never by changing the count of this thread.
    return torch_threads.on_one_thread(trials_then_choice, torch_threads.TRAINING)


def _choose(embedder: Any, data: Dataset, options: FineTuneOptions, settings: list[Setting],
            trials: list[_Trial], judge: Callable[[Fold, str], Judge], batches: Batches,
            tick: Callable[[], None], cancel: threading.Event) -> Outcome:
    tried = []
    by_setting: dict[str, list[_Trial]] = {}
    for trial in trials:
        by_setting.setdefault(trial.setting.name, []).append(trial)
    for setting in settings:
        runs = by_setting[setting.name]
        tried.append({**setting.to_json(),
                      "choosing_before": round(float(np.mean([t.start for t in runs])), 4),
                      "choosing_best": round(float(np.mean([t.score for t in runs])), 4),
                      "best_step": int(np.median([t.step for t in runs]))})
    # The setting kept: the best mean validation score over folds (the first on a tie).
    best = max(settings, key=lambda s: np.mean([t.score for t in by_setting[s.name]]))
    runs = by_setting[best.name]
    start = float(np.mean([t.start for t in runs]))
    score = float(np.mean([t.score for t in runs]))
    step = int(np.median([t.step for t in runs]))
    # Is the gain real? Judged on the other half of validation, which chose nothing.
    checks = []
    for trial in runs:
        check = judge(data.folds[trial.fold], "confirm")
        trial.model.load(trial.state)
        checks.append((check.scores(HeadModel(embedder, batches, "heads")),
                       check.scores(trial.model), check.relevant))
    gain_low = gain_low_bound(checks, options.seed)
    confirm_before = float(np.mean([overall_score(evaluate_scores(b, r).means())
                                    for b, _, r in checks]))
    confirm_after = float(np.mean([overall_score(evaluate_scores(a, r).means())
                                   for _, a, r in checks]))
    # Test figures: in each fold the model chosen on that fold's validation, judged on its test.
    before_parts, after_parts = [], []
    for k, fold in enumerate(data.folds):
        chosen = max((t for t in trials if t.fold == k), key=lambda t: t.score)
        test = judge(fold, "test")
        base = HeadModel(embedder, batches, "heads")
        before_parts.append(test(base))
        chosen.model.load(chosen.state)
        after_parts.append(test(chosen.model) if chosen.step else test(base))
    if data.rotated and step > 0:
        # Every pack judged once: the version kept learns from all of them, for the step
        # count the folds chose, with no file left to stop it early.
        model = HeadModel(embedder, batches, best.part)
        torch_seed(options.seed)
        rows = batches.rows_with_texts(range(len(data.samples)))
        _, _, _, state = _train_loop(best, model, batches, rows, None, step, options,
                                     np.random.default_rng(options.seed), tick, cancel)
        model.load(state)
    else:
        model = runs[0].model
        model.load(runs[0].state)
    audio_head, text_head = model.heads()
    log.info("kept %s at step %d: %.3f -> %.3f choosing, %.3f -> %.3f confirming", best.name,
             step, start, score, confirm_before, confirm_after)
    return Outcome(audio_head, text_head, best, step, confirm_after - confirm_before, gain_low,
                   confirm_before, confirm_after,
                   QueryFigures.pooled(before_parts), QueryFigures.pooled(after_parts), tried)


def torch_seed(seed: int) -> None:
    import torch

    torch.manual_seed(seed)


def no_gain_reason(data: Dataset, outcome: Outcome) -> str:
    """Why nothing was saved, in plain words."""
    rare = sorted((n, t) for t, n in data.vocabulary.counts.items() if n < FEW_FILES)
    if outcome.validation_before >= 0.8:
        named = [f"'{t}'" for t in data.eval_tags[:3]]
        words = ", ".join(named[:-1]) + " and " + named[-1] if len(named) > 1 else named[0]
        return (f"the search already finds {words} sounds about as well as it can: no setting "
                f"tried did better on the validation packs (best {outcome.gain:+.2f})")
    if rare and len(rare) * 2 >= len(data.vocabulary.counts):
        n, tag = rare[0]
        return (f"only {n} samples carry '{tag}'" +
                (f" and {len(rare) - 1} more tags are as rare" if len(rare) > 1 else "") +
                f"; tag at least {FEW_FILES} files per word so there is something to learn")
    return ("no setting tried found anything in these tags that holds in packs it did not "
            f"learn from (best {outcome.gain:+.2f} on validation): the tags may not describe "
            "how the files sound")


def summary_lines(data: Dataset, outcome: Outcome, saved: bool) -> list[str]:
    before, after = outcome.before.per_tag(), outcome.after.per_tag()
    if not saved:
        after = before
    lines = changes_in_words(before, after, data.rotated)
    counts = (f"judged on {len(outcome.after.tags)} queries over "
              f"{sum(len(f.test) for f in data.folds)} test files")
    return lines + [counts]
# -- one run -----------------------------------------------------------------------------------
def run_finetune(library: Library, options: FineTuneOptions | None = None,
                 progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None) -> FineTuneResult:
    """Prepare, train and choose; when validation shows a real gain, save a new version,
    re-project the library and (optionally) activate it. Without one, nothing is written and
    the result says why (`saved` False).

    Safe to call from a worker thread: it reads and writes through its own catalog connection.
    Activation touches the library's own connection, so a GUI passes activate=False and
    activates from its own thread once the user accepts.
    """
    options = options or FineTuneOptions()
    notify = progress or (lambda p: None)
    cancel = cancel or threading.Event()
    started = time.monotonic()
    catalog = Catalog(library.paths.catalog)
    name: str | None = None
    try:
        notify(FineTuneProgress("reading tags"))
        data = prepare(library, options, catalog)
        embedder = library.embedder()
        outcome = train_and_choose(embedder, data, options, notify, cancel)
        if cancel.is_set():
            raise FineTuneCancelled()
        saved = outcome.gain >= MIN_GAIN and outcome.gain_low > 0 and outcome.step > 0
        before, after = outcome.before.means(), outcome.after.means()
        chosen = {**outcome.setting.to_json(), "step": outcome.step,
                  "validation_before": round(outcome.validation_before, 4),
                  "validation_after": round(outcome.validation_after, 4),
                  "validation_gain": round(outcome.gain, 4), "min_gain": MIN_GAIN,
                  "validation_gain_low": round(outcome.gain_low, 4),
                  "chosen_on": "validation packs" if data.holdout_by == "pack"
                  else "validation files"}
        per_before, per_after = outcome.before.per_tag(), outcome.after.per_tag()
        per_tag = {t: {"before": per_before[t], "after": per_after[t]} for t in per_after}
        counts = {"train": len(data.train), "validation": len(data.validation),
                  "test": sum(len(f.test) for f in data.folds),
                  "test_packs_count": len(data.test_packs()),
                  "test_queries": len(outcome.after.tags), "folds": len(data.folds)}
        if saved:
            reason = (f"'{outcome.setting.name}' at step {outcome.step} beat the start by "
                      f"{outcome.gain:+.2f} on validation (at least {MIN_GAIN:+.2f} counts)")
        else:
            reason = no_gain_reason(data, outcome)
            after = dict(before)  # the model searched stays: its figures are the ones that hold
        model_key = library.model_key
        if saved:
            notify(FineTuneProgress("saving"))
            name, model_key = _save(library, catalog, data, options, outcome, {
                "before": before, "after": after, "per_tag": per_tag, "chosen": chosen,
                "tried": outcome.tried, "counts": counts, "reason": reason,
                "summary": summary_lines(data, outcome, True)})
    finally:
        catalog.close()
    if saved and options.activate and name:
        library.set_active_version(name)
        model_key = library.model_key
    notify(FineTuneProgress("done", 1, 1, overall_score(after)))
    return FineTuneResult(
        saved, reason, name, model_key, counts, before, after,
        per_tag if saved else {t: {"before": v["before"], "after": v["before"]}
                               for t, v in per_tag.items()},
        chosen, outcome.tried, summary_lines(data, outcome, saved),
        time.monotonic() - started, bool(saved and options.activate), data.holdout_by,
        data.rotated, data.splice_excluded, data.notes + ([] if data.rotated else [data.describe_split()]),
        data.test_packs(), data.vocabulary.excluded)


def _save(library: Library, catalog: Catalog, data: Dataset, options: FineTuneOptions,
          outcome: Outcome, figures: dict[str, Any]) -> tuple[str, str]:
    # Indexing in this process may hold the lock already: then it is not ours to release.
    ours = not library.holds_writer
    if ours:
        library.acquire_writer()
    try:
        name = versions.new_version_name(library.paths.models)
        info = {"base": data.encoder_key, "mode": options.mode,
                "tag_sources": list(options.sources), "holdout_by": data.holdout_by,
                "rotated": data.rotated, "train": len(data.train),
                "heldout": figures["counts"]["test"], "steps": outcome.step,
                "tags": data.vocabulary.tags, "include_splice": options.include_splice,
                "figures_from": "test packs" if data.holdout_by == "pack" else "test files",
                **figures}
        versions.save_version(library.paths.models, name, outcome.audio_head,
                              outcome.text_head, info)
        model_key = ModelKey.of(data.encoder_key, name)
        try:
            versions.write_vectors(catalog, model_key, outcome.audio_head)
        except BaseException:  # one transaction: no vectors were kept, so no version either
            shutil.rmtree(library.paths.models / name, ignore_errors=True)
            raise
    finally:
        if ours:
            library.release_writer()
    return name, model_key
