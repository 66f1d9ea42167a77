"""A loaded CLAP model: audio windows and text turned into vectors.

Vectors are made in two steps so fine-tuning stays cheap: the audio encoder gives a pooled
"feature" per file (stored in the catalog), and a light projection head turns features into the
normalised search vectors. A fine-tuned version swaps the heads, never the encoder. Weights load
from safetensors only and never with remote code.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from clapdesk.core.embed import health, torch_threads
from clapdesk.core.embed.health import ModelHealth
from clapdesk.core.embed.hub import DEFAULT_MODEL, ModelError, ModelIdentity, resolve_model
from clapdesk.core.store.known_facts import KnownArrays

log = logging.getLogger(__name__)


def pick_device(requested: str | None = None) -> str:
    import torch

    if requested and requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device '{requested}' was asked for, but no CUDA GPU is available")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


class ClapEmbedder:
    """A loaded CLAP model: audio windows to features, features and text to vectors."""

    def __init__(self, identity: ModelIdentity, device: str | None = None,
                 precision: str = "float32") -> None:
        import torch
        from transformers import ClapProcessor

        from clapdesk.core.embed.weights import load_clap_model

        self.identity = identity
        self.device = pick_device(device)
        self.precision = precision
        if precision == "float16" and self.device == "cpu":
            # Half precision on a CPU is emulated: slower than float32, and less exact. Said
            # before the weights load, now that precision is a setting anyone can pick.
            raise ModelError("float16 precision is for a GPU, and this computer runs the model "
                             "on its CPU: use float32, int8 or bfloat16")
        folder = identity.folder
        # transformers draws a "Loading weights" bar on stderr; a plain error line must stay the
        # only thing a producer reads there (the GUI shows its own progress).
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()
        try:
            model = load_clap_model(folder, torch.float32)  # refuses missing weights
            processor = ClapProcessor.from_pretrained(folder)
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(f"the model in '{folder}' could not be loaded: {_first_line(exc)}") from exc
        text_dim = model.text_projection.linear2.out_features
        audio_dim = model.audio_projection.linear2.out_features
        if text_dim != audio_dim:
            raise ModelError(
                f"the model's audio vectors ({audio_dim}) and text vectors ({text_dim}) differ in "
                "size, so text cannot search audio"
            )
        model.eval()
        if precision == "int8" and self.device != "cpu":
            raise ModelError("int8 precision is for the CPU; use float16 on a GPU")
        # On a CPU the audio tower runs as fast_tower re-runs it (same weights, same numbers,
        # about 2x faster than transformers' code in float32 here), built before int8 swaps the
        # float weights away; None keeps the stock tower (checked against it when built).
        self.fast_tower = None
        if self.device == "cpu" and precision in ("float32", "bfloat16", "int8"):
            from clapdesk.core.embed.fast_tower import build_fast_tower

            self.fast_tower = build_fast_tower(model.audio_model, precision,
                                               identity.encoder_key)
        if precision == "int8":
            # Per-channel weight scales: half the error of one scale per matrix (embedding
            # cosine to float32 0.9998 against 0.9996, measured) at the same speed. The stock
            # tower is quantised too: it is the fallback for inputs the fast tower does not take.
            from clapdesk.core.embed.cpu_linear import quantise_linears

            try:
                quantise_linears(model.audio_model)
            except RuntimeError as exc:
                raise ModelError(f"int8 precision is not available on this CPU "
                                 f"({_first_line(exc)}); use float32") from exc
        model.to(self.device)
        # The text tower (and the stock float32 audio tower, the fallback) run their linear
        # layers on oneDNN (about 2x here; see cpu_linear). The text tower is float32 always.
        self.onednn_linears = 0
        if self.device == "cpu":
            from clapdesk.core.embed.cpu_linear import use_onednn_linears

            towers = [model.text_model] + ([model.audio_model] if precision == "float32" else [])
            self.onednn_linears = sum(use_onednn_linears(tower) for tower in towers)
        if precision == "float16":
            model.audio_model.half()
        self.model = model
        self.processor = processor
        self.feature_extractor = processor.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.window_samples = int(self.feature_extractor.nb_max_samples)
        self.dim = audio_dim
        self.feature_dim = int(model.audio_projection.linear1.in_features)
        # Heads map pooled encoder features to the shared space; fine-tuned versions replace them.
        self.audio_head: torch.nn.Module = model.audio_projection
        self.text_head: torch.nn.Module = model.text_projection
        self.model_key = identity.encoder_key
        self._fast_mel = _make_fast_mel(self.feature_extractor, self.device)
        self.max_text_tokens = _max_text_tokens(model.config.text_config, processor.tokenizer)
        self._prompt_vectors: dict[tuple[str, tuple[str, ...]], np.ndarray] = {}
        # Checked on every load and every change of heads, before text search trusts them
        # (cached per model key, so a later start pays nothing).
        self.text_health: ModelHealth = self._check_text()

    @property
    def encoder_key(self) -> str:
        return self.identity.encoder_key

    def use_audio_tower(self, precision: str, tower: Any) -> None:
        """Run the audio tower in another precision from now on (the automatic choice, made
        after the model loaded in float32): `tower` is a fast_tower built for it."""
        self.precision = precision
        self.fast_tower = tower

    def use_heads(self, audio_head: Any, text_head: Any, model_key: str) -> None:
        """Switch to a fine-tuned version's heads (the encoder and its features are unchanged)."""
        self.audio_head = audio_head.to(self.device).eval()
        self.text_head = text_head.to(self.device).eval()
        self.model_key = model_key
        self._prompt_vectors.clear()  # they came through the old text head
        self.text_health = self._check_text()

    def _check_text(self) -> ModelHealth:
        return health.check(self.embed_text, self.model_key)

    @property
    def text_search_ok(self) -> bool:
        return self.text_health.text_ok

    def refuse_text_search(self) -> None:
        """Raise TextSearchOff, with the model and the fix named, when the health check failed."""
        if not self.text_health.text_ok:
            ref = self.identity.ref
            name = ref if not os.path.isdir(ref) else os.path.basename(os.path.normpath(ref))
            fine_tuned = self.model_key != self.identity.encoder_key
            raise health.TextSearchOff(health.refusal(name, self.text_health, fine_tuned))

    def features_for(self, windows: Sequence[np.ndarray]) -> np.ndarray:
        """Pre-projection audio features, one row per window (float32)."""

        if not windows:
            return np.zeros((0, self.feature_dim), np.float32)
        return self.encode_mel(self.mel_inputs(windows)).cpu().numpy().astype(np.float32)

    def mel_inputs(self, windows: Sequence[np.ndarray]) -> Any:
        """The audio tower's log-mel inputs for these windows (one model call's worth)."""
        clips = [w[: self.window_samples] if w.size else np.zeros(1, np.float32) for w in windows]
        if self._fast_mel is not None:
            return self._fast_mel(clips)
        return self.feature_extractor(clips, sampling_rate=self.sampling_rate,
                                      return_tensors="pt")

    def encode_mel(self, inputs: Any) -> Any:
        """The audio tower on ready log-mel inputs, in this embedder's precision (float32 out)."""
        import torch

        mel = inputs["input_features"].to(self.device)
        if self.precision == "float16":
            mel = mel.half()
        # bfloat16: the matrix products run in bf16 where the CPU has native bf16 (AVX512-BF16,
        # AMX): 2.7x faster per window than float32 on this project's CPU, cosine 0.99998.
        autocast = (torch.autocast(self.device.split(":")[0], dtype=torch.bfloat16)
                    if self.precision == "bfloat16" else contextlib.nullcontext())
        # Every window clapdesk embeds is at most the model's window, so none is "longer",
        # whatever the extractor said: the reference marks a random clip of a fusion batch as
        # longer, which would make a fused model's vectors change with the batch (log_mel.py).
        is_longer = torch.zeros((mel.shape[0], 1), dtype=torch.bool, device=self.device)
        if self.fast_tower is not None:
            return self.fast_tower(mel, is_longer).pooler_output.float()
        with torch.inference_mode(), autocast:
            out = self.model.audio_model(input_features=mel, is_longer=is_longer)
        return out.pooler_output.float()

    def pooled_features(self, files: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
        """One feature per file: the mean over its windows, all windows in one batch."""
        flat = [w for windows in files for w in windows]
        feats = self.features_for(flat)
        pooled, at = [], 0
        for windows in files:
            pooled.append(feats[at: at + len(windows)].mean(axis=0))
            at += len(windows)
        return np.stack(pooled).astype(np.float32) if pooled else feats

    def project_audio(self, features: np.ndarray) -> np.ndarray:
        """Features to L2-normalised search vectors through the active head."""
        import torch

        if len(features) == 0:
            return np.zeros((0, self.dim), np.float32)
        # In blocks of exactly PROJECT_ROWS rows (the last one padded with zeros): the matrix
        # products take another path for another row count (measured on the full model: one
        # row, or 16 and more, gave other last bits than 2 to 13), so a file's vector would
        # depend on how many files were projected with it. With fixed blocks it is the same
        # whether it was indexed here, in a group of any size, or on a cluster worker.
        rows = np.ascontiguousarray(features, np.float32)
        count = len(rows)
        padded = -count % PROJECT_ROWS
        if padded:
            rows = np.concatenate([rows, np.zeros((padded, rows.shape[1]), np.float32)])
        with torch.inference_mode():
            x = torch.from_numpy(rows).to(self.device)
            vectors = torch.cat([
                torch.nn.functional.normalize(self.audio_head(block).float(), dim=-1)
                for block in x.split(PROJECT_ROWS)])
        return vectors[:count].cpu().numpy().astype(np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Texts to L2-normalised search vectors through the active text head."""
        import torch

        if not texts:
            return np.zeros((0, self.dim), np.float32)
        with torch.inference_mode():
            pooled = self._text_pooled(texts)
            vectors = torch.nn.functional.normalize(self.text_head(pooled).float(), dim=-1)
        return vectors.cpu().numpy().astype(np.float32)

    def embed_prompts(self, texts: Sequence[str]) -> np.ndarray:
        """`embed_text` for a fixed list of prompts (the auto-tag vocabulary), kept per head:
        every index run needs them, and a watched folder's run for one new file should not pay
        for 50 prompts each time. Kept in the cache folder too: the 45 auto-tag prompts took
        0.62 s of every new process's first index run on the full-size text tower (2-core EPYC,
        quiet); read back, 2.9 ms."""
        key = (self.model_key, tuple(texts))
        vectors = self._prompt_vectors.get(key)
        if vectors is None:
            on_disk = self._prompts_on_disk_key(texts)
            known = KnownArrays("prompt-vectors")
            vectors = known.get(on_disk, (len(texts), self.dim))
            if vectors is None:
                vectors = self.embed_text(texts)
                known.put(on_disk, vectors)
            vectors.setflags(write=False)
            self._prompt_vectors[key] = vectors
        return vectors

    def _prompts_on_disk_key(self, texts: Sequence[str]) -> str:
        """Everything the prompts' vectors depend on: the weights (model key), the text head's
        own numbers (a fine-tuned version's name alone could be reused), the tokens' limit,
        and what runs the products (torch's version, the device, oneDNN or not)."""
        import hashlib

        import torch

        head = hashlib.sha256()
        for name, tensor in sorted(self.text_head.state_dict().items()):
            head.update(name.encode())
            head.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
        return "\n".join([self.model_key, head.hexdigest(), str(self.max_text_tokens),
                          torch.__version__, self.device, str(self.onednn_linears > 0),
                          *texts])

    def text_features(self, texts: Sequence[str]) -> np.ndarray:
        """Pre-projection text features (for fine-tuning the text head)."""
        import torch

        with torch.inference_mode():
            pooled = self._text_pooled(texts)
        return pooled.float().cpu().numpy().astype(np.float32)

    def _text_pooled(self, texts: Sequence[str]) -> Any:
        """The text encoder's pooled output (call inside inference mode)."""
        tokens = self.processor.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.max_text_tokens,
            return_tensors="pt"
        ).to(self.device)

        def tower() -> Any:
            import torch

            with torch.inference_mode():
                return self.model.text_model(
                    input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"]
                ).pooler_output

        # A few words run on torch_threads' one-thread lane (see there for why, with figures).
        few = self.device == "cpu" and len(texts) <= FEW_TEXTS
        return torch_threads.on_one_thread(tower) if few else tower()


PROJECT_ROWS = 8  # features per call of the audio head (see project_audio)
FEW_TEXTS = 4  # texts that count as a query rather than a batch of prompts


def _max_text_tokens(text_config: Any, tokenizer: Any) -> int:
    """The longest token sequence the text tower can take, and the tokenizer is told about.

    A tokenizer saved without model_max_length reports a huge number, and truncating there
    lets a pasted 100k-character query run past the position table (an index error deep in
    torch). RoBERTa-style positions start after the padding id, so a table of 514 holds 512
    tokens, which is what the real checkpoints' tokenizers say too."""
    positions = int(getattr(text_config, "max_position_embeddings", 514))
    pad = getattr(text_config, "pad_token_id", None)
    usable = positions - (int(pad) + 1 if pad is not None else 0)
    told = getattr(tokenizer, "model_max_length", None)
    limit = usable if not isinstance(told, int) else min(usable, told)
    return max(2, limit)


def _make_fast_mel(feature_extractor: Any, device: str) -> Any:
    """The batched torch log-mel when it covers this extractor, else None (the reference)."""
    from clapdesk.core.embed.log_mel import BatchedLogMel

    try:
        return BatchedLogMel(feature_extractor, device=device)
    except Exception as exc:  # an extractor the fast path does not cover: use the reference
        log.info("batched log-mel unavailable (%s); using the reference extractor", exc)
        return None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def load_embedder(ref: str | None = None, device: str | None = None, precision: str = "float32",
                  allow_download: bool = True) -> ClapEmbedder:
    identity = resolve_model(ref or DEFAULT_MODEL, allow_download=allow_download)
    return ClapEmbedder(identity, device=device, precision=precision)
