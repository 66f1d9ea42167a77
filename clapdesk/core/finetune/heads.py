"""The trainable parts of quick fine-tuning: training batches, the two ways to learn (the whole
heads, or a small residual adapter after them), the contrastive loss and the judge of a part.

The adapter learns v + B(A v) after each frozen head (rank ADAPTER_RANK); it is folded into the
head's last layer when saved, so a version is always a pair of plain heads.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import numpy as np

from clapdesk.core.finetune.data import Dataset
from clapdesk.core.finetune.protocol import QueryFigures, evaluate_scores

ADAPTER_RANK = 32


class Batches:
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
        self.pair_text = torch.tensor([text_index[p.text] for p in data.pairs])
        self.audio_all = torch.from_numpy(np.ascontiguousarray(data.features, np.float32))
        self.text_all = torch.from_numpy(text_feats)
        self.tags_of = [set(s.tags) for s in data.samples]

    def rows_with_texts(self, rows: Sequence[int]) -> np.ndarray:
        return np.array([i for i in rows if i in self.pairs_of], np.int64)

    def draw(self, rng: np.random.Generator, train: np.ndarray, size: int) -> tuple[Any, Any, Any]:
        """(sample rows, text rows, match[i, j]: sample i carries text j's tags)."""
        import torch

        rows = rng.choice(train, size=min(size, len(train)), replace=False)
        picks = torch.tensor([self.pairs_of[r][rng.integers(len(self.pairs_of[r]))] for r in rows])
        missing = self.pair_tags[picks] @ (1.0 - self.sample_tags[rows]).T  # texts x samples
        match = (missing.T == 0).float()
        return torch.from_numpy(rows), self.pair_text[picks], match


class HeadModel:
    """Audio and text towers from stored features to joint vectors, with trainable weights."""

    def __init__(self, embedder: Any, batches: Batches, part: str) -> None:
        import torch

        self.part = part
        self.batches = batches
        self.audio_head = copy.deepcopy(embedder.model.audio_projection).float().train()
        self.text_head = copy.deepcopy(embedder.model.text_projection).float().train()
        if part == "heads":
            self.params = [p for h in (self.audio_head, self.text_head) for p in h.parameters()]
            for p in self.params:
                p.requires_grad_(True)
            return
        # The adapter learns v + B(A v) after the frozen heads, so their outputs are computed
        # once; B starts at zero, so training starts exactly at the base model.
        with torch.no_grad():
            self.audio_base = self.audio_head(batches.audio_all)
            self.text_base = self.text_head(batches.text_all)
        dim = self.audio_base.shape[1]
        rank = min(ADAPTER_RANK, dim)
        gen = torch.Generator().manual_seed(0)
        self.params = []
        for _ in range(2):  # audio A, B; text A, B
            self.params.append((torch.randn(rank, dim, generator=gen) / dim ** 0.5)
                               .requires_grad_(True))
            self.params.append(torch.zeros(dim, rank).requires_grad_(True))

    def audio(self, rows: Any) -> Any:
        if self.part == "heads":
            return self.audio_head(self.batches.audio_all[rows])
        v = self.audio_base[rows]
        return v + (v @ self.params[0].T) @ self.params[1].T

    def text(self, rows: Any) -> Any:
        if self.part == "heads":
            return self.text_head(self.batches.text_all[rows])
        v = self.text_base[rows]
        return v + (v @ self.params[2].T) @ self.params[3].T

    def state(self) -> list[Any]:
        return [p.detach().clone() for p in self.params]

    def load(self, state: list[Any]) -> None:
        import torch

        with torch.no_grad():
            for p, kept in zip(self.params, state):
                p.copy_(kept)

    def heads(self) -> tuple[Any, Any]:
        """Plain heads shaped like the model's projections: the adapter folded into linear2."""
        import torch

        audio, text = copy.deepcopy(self.audio_head).eval(), copy.deepcopy(self.text_head).eval()
        if self.part == "adapter":
            with torch.no_grad():
                for head, (a, b) in ((audio, self.params[0:2]), (text, self.params[2:4])):
                    lift = torch.eye(a.shape[1]) + b @ a  # v' = (I + BA) v
                    head.linear2.weight.copy_(lift @ head.linear2.weight)
                    head.linear2.bias.copy_(lift @ head.linear2.bias)
        for head in (audio, text):
            head.requires_grad_(False)
        return audio, text


def contrastive_loss(a: Any, t: Any, match: Any, scale: float) -> Any:
    """Symmetric InfoNCE with several positives: the target spreads over every match."""
    import torch.nn.functional as F

    logits = scale * a @ t.T
    a2t = -(match / match.sum(1, keepdim=True) * F.log_softmax(logits, 1)).sum(1).mean()
    t2a = -(match.T / match.T.sum(1, keepdim=True) * F.log_softmax(logits.T, 1)).sum(1).mean()
    return (a2t + t2a) / 2


class Judge:
    """Figures of a model on a part of the samples, one query per tag."""

    def __init__(self, batches: Batches, rows: Sequence[int], tags: Sequence[str],
                 query_rows: Sequence[int]) -> None:
        import torch

        self.rows = torch.as_tensor(list(rows))
        self.tags = list(tags)
        self.query_rows = torch.as_tensor(list(query_rows))
        self.relevant = np.array([[t in batches.tags_of[i] for i in rows] for t in tags], bool)

    def scores(self, model: HeadModel) -> np.ndarray:
        """Similarities, queries x files."""
        import torch
        import torch.nn.functional as F

        with torch.no_grad():
            a = F.normalize(model.audio(self.rows), dim=-1).numpy()
            t = F.normalize(model.text(self.query_rows), dim=-1).numpy()
        return t @ a.T

    def __call__(self, model: HeadModel) -> QueryFigures:
        return evaluate_scores(self.scores(model), self.relevant, self.tags)
