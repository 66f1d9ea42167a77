"""Quick fine-tuning: teach the search a library's own vocabulary in about a minute on a CPU.

The encoders stay frozen. Two light heads, starting as copies of the model's own projections,
are trained on the pre-projection audio features indexing already stored (so no audio is
decoded again) and on text features computed once for the generated texts. The loss is a
symmetric contrastive loss in which every sample carrying the tags a text names counts as a
match (multi-positive InfoNCE). What the base model knows is kept with a small learning rate,
few steps, a pull back toward the start weights and an early stop on the held-out score.

Files are held out by pack (the first folder under a library root), not at random: a random
split leaks a pack's sound into training and flatters the figures. Before and after figures
are text-to-audio Recall@1/5/10 and precision@10 on the held-out files, one query per tag.
"""

from __future__ import annotations

import copy
import logging
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from clapdesk.core.finetune import versions
from clapdesk.core.finetune.data import (
    TEXT_BATCH,
    Dataset,
    FineTuneCancelled,
    FineTuneOptions,
    FineTuneProgress,
    FineTuneResult,
    ProgressCallback,
    evaluate,
    overall_score,
    prepare,
)
from clapdesk.core.finetune.prompts import query_text
from clapdesk.core.store.catalog import Catalog

if TYPE_CHECKING:  # the library is the face above this package; only its type is named here
    from clapdesk.core.library import Library

log = logging.getLogger(__name__)


# -- training ----------------------------------------------------------------------------------
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
class TrainedHeads:
    audio_head: Any
    text_head: Any
    before: dict[str, float]
    after: dict[str, float]
    per_tag_before: dict[str, float]
    per_tag_after: dict[str, float]
    steps: int


def train_heads(embedder: Any, data: Dataset, options: FineTuneOptions,
                progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None) -> TrainedHeads:
    """Train copies of the model's projections on the dataset; returns the best heads seen."""
    import torch
    import torch.nn.functional as F

    notify = progress or (lambda p: None)
    cancel = cancel or threading.Event()
    torch.manual_seed(options.seed)
    rng = np.random.default_rng(options.seed)
    queries = [query_text(t) for t in data.eval_tags]
    texts = sorted({p.text for p in data.pairs} | set(queries))  # each encoded once
    text_feats = _text_features(embedder, texts, notify, cancel)
    text_index = {t: i for i, t in enumerate(texts)}
    device = "cpu"  # heads are small; features are already on the CPU
    audio_head = copy.deepcopy(embedder.model.audio_projection).float().to(device).train()
    text_head = copy.deepcopy(embedder.model.text_projection).float().to(device).train()
    for head in (audio_head, text_head):
        head.requires_grad_(True)
    batches = _Batches(data, text_index, text_feats)
    query_feats = batches.text_all[torch.tensor([text_index[q] for q in queries])]
    held = torch.as_tensor(data.heldout)
    held_tag_sets = [set(data.samples[i].tags) for i in data.heldout]
    relevant = np.array([[tag in tags for tags in held_tag_sets] for tag in data.eval_tags], bool)

    def measure() -> tuple[dict[str, float], np.ndarray]:
        with torch.no_grad():
            a = F.normalize(audio_head(batches.audio_all[held]), dim=-1).numpy()
            t = F.normalize(text_head(query_feats), dim=-1).numpy()
        return evaluate(a, t, relevant)

    threads = torch.get_num_threads()
    # The heads are small: one thread beats several, which spend more time waiting on each
    # other than multiplying, and a busy machine makes that a hundredfold worse.
    torch.set_num_threads(1)
    try:
        before, p10_before = measure()
        after, p10_after, best_step = _train_loop(options, audio_head, text_head, batches,
                                                  measure, rng, notify, cancel)
    finally:
        torch.set_num_threads(threads)
    audio_head.eval()
    text_head.eval()
    per_before = {t: round(float(v), 4) for t, v in zip(data.eval_tags, p10_before)}
    per_after = {t: round(float(v), 4) for t, v in zip(data.eval_tags, p10_after)}
    return TrainedHeads(audio_head, text_head, before, after, per_before, per_after, best_step)


class _Batches:
    """Training batches: sample rows, one of each sample's texts, and which texts match which."""

    def __init__(self, data: Dataset, text_index: dict[str, int], text_feats: np.ndarray) -> None:
        import torch

        # Tags as 0/1 matrices: a text matches a sample when the sample carries every tag
        # the text names.
        vocab = data.vocabulary.index()
        self.sample_tags = torch.zeros(len(data.samples), len(vocab))
        for i, s in enumerate(data.samples):
            for t in s.tags:
                if t in vocab:
                    self.sample_tags[i, vocab[t]] = 1.0
        self.pair_tags = torch.zeros(len(data.pairs), len(vocab))
        for j, p in enumerate(data.pairs):
            for t in p.tags:
                self.pair_tags[j, vocab[t]] = 1.0
        row_of = {s.file_id: i for i, s in enumerate(data.samples)}
        self.pairs_of: dict[int, list[int]] = {}
        for j, p in enumerate(data.pairs):
            self.pairs_of.setdefault(row_of[p.file_id], []).append(j)
        self.train = np.array([i for i in data.train if i in self.pairs_of])
        self.pair_text = torch.tensor([text_index[p.text] for p in data.pairs])
        self.audio_all = torch.from_numpy(np.ascontiguousarray(data.features, np.float32))
        self.text_all = torch.from_numpy(text_feats)

    def draw(self, rng: np.random.Generator, size: int) -> tuple[Any, Any, Any]:
        """(audio features, text features, match[i, j]: sample i carries text j's tags)."""
        import torch

        rows = rng.choice(self.train, size=min(size, len(self.train)), replace=False)
        picks = torch.tensor([self.pairs_of[r][rng.integers(len(self.pairs_of[r]))] for r in rows])
        missing = self.pair_tags[picks] @ (1.0 - self.sample_tags[rows]).T  # texts x samples
        match = (missing.T == 0).float()
        return self.audio_all[rows], self.text_all[self.pair_text[picks]], match


def _contrastive_loss(a: Any, t: Any, match: Any, scale: float) -> Any:
    """Symmetric InfoNCE with several positives: the target spreads over every match."""
    import torch.nn.functional as F

    logits = scale * a @ t.T
    a2t = -(match / match.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    t2a = -(match.T / match.T.sum(1, keepdim=True) * F.log_softmax(logits.T, 1)).sum(1).mean()
    return (a2t + t2a) / 2


def _train_loop(options: FineTuneOptions, audio_head: Any, text_head: Any, batches: _Batches,
                measure: Callable[[], tuple[dict[str, float], np.ndarray]],
                rng: np.random.Generator, notify: ProgressCallback, cancel: threading.Event
                ) -> tuple[dict[str, float], np.ndarray, int]:
    """Adam steps with a pull back to the start weights; keeps the best held-out state."""
    import torch
    import torch.nn.functional as F

    params = [p for head in (audio_head, text_head) for p in head.parameters()]
    start = [p.detach().clone() for p in params]
    figures, p10 = measure()
    best_score, best_state, best_step = overall_score(figures), [p.detach().clone() for p in params], 0
    optimiser = torch.optim.Adam(params, lr=options.learning_rate)
    pull = options.learning_rate * options.anchor_decay
    stale = 0
    notify(FineTuneProgress("training", 0, options.steps, best_score))
    for step in range(1, options.steps + 1):
        if cancel.is_set():
            raise FineTuneCancelled()
        audio, text, match = batches.draw(rng, options.batch_size)
        a = F.normalize(audio_head(audio), dim=-1)
        t = F.normalize(text_head(text), dim=-1)
        loss = _contrastive_loss(a, t, match, 1.0 / options.temperature)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        with torch.no_grad():  # decoupled decay toward the start weights, not toward zero
            for p, p0 in zip(params, start):
                p.sub_(pull * (p - p0))
        if step % options.eval_every == 0 or step == options.steps:
            now, now_p10 = measure()
            if overall_score(now) > best_score + 1e-6:
                best_score, figures, p10, best_step = overall_score(now), now, now_p10, step
                best_state = [p.detach().clone() for p in params]
                stale = 0
            else:
                stale += 1
            notify(FineTuneProgress("training", step, options.steps, best_score))
            if stale >= options.patience and step >= options.steps // 3:
                break  # never before a third of the budget: early plateaus are common
    with torch.no_grad():
        for p, kept in zip(params, best_state):
            p.copy_(kept)
    return figures, p10, best_step


# -- one run -----------------------------------------------------------------------------------
def run_finetune(library: Library, options: FineTuneOptions | None = None,
                 progress: ProgressCallback | None = None,
                 cancel: threading.Event | None = None) -> FineTuneResult:
    """Prepare, train, save a new version, re-project the library and (optionally) activate.

    Safe to call from a worker thread: it reads and writes through its own catalog connection.
    Activation touches the library's own connection, so a GUI passes activate=False and
    activates from its own thread once the user accepts.
    """
    options = options or FineTuneOptions()
    notify = progress or (lambda p: None)
    cancel = cancel or threading.Event()
    started = time.monotonic()
    catalog = Catalog(library.paths.catalog)
    try:
        notify(FineTuneProgress("reading tags"))
        data = prepare(library, options, catalog)
        embedder = library.embedder()
        heads = train_heads(embedder, data, options, notify, cancel)
        if cancel.is_set():
            raise FineTuneCancelled()
        notify(FineTuneProgress("saving"))
        # Indexing in this process may hold the lock already: then it is not ours to release.
        ours = not library.holds_writer
        if ours:
            library.acquire_writer()
        try:
            name = versions.new_version_name(library.paths.models)
            info = {"base": data.encoder_key, "mode": options.mode,
                    "tag_sources": list(options.sources), "holdout_by": data.holdout_by,
                    "train": len(data.train), "heldout": len(data.heldout),
                    "before": heads.before, "after": heads.after, "steps": heads.steps,
                    "tags": data.vocabulary.tags, "include_splice": options.include_splice,
                    "best_step_chosen_on": "held-out files"}
            versions.save_version(library.paths.models, name, heads.audio_head, heads.text_head,
                                  info)
            model_key = f"{data.encoder_key}+{name}"
            try:
                versions.write_vectors(catalog, model_key, heads.audio_head)
            except BaseException:  # one transaction: no vectors were kept, so no version either
                shutil.rmtree(library.paths.models / name, ignore_errors=True)
                raise
        finally:
            if ours:
                library.release_writer()
    finally:
        catalog.close()
    if options.activate:
        library.set_active_version(name)
    notify(FineTuneProgress("done", 1, 1, overall_score(heads.after)))
    return FineTuneResult(name, model_key, len(data.train), len(data.heldout), heads.before,
                          heads.after, heads.per_tag_before, heads.per_tag_after,
                          time.monotonic() - started, options.activate, data.holdout_by,
                          heads.steps, data.splice_excluded, data.notes, data.heldout_packs())
