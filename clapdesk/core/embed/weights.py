"""Model weights clapdesk can trust: pickle weights read without running them, and a model
refused when any of its weights is missing.

A `pytorch_model.bin` is a pickle, and unpickling can run any code the file names. It is read
only with torch's weights-only loader, which rebuilds tensors and plain containers and refuses
everything else, then written once as safetensors so later starts never read the pickle again.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from clapdesk.core.embed.hub import ModelError

log = logging.getLogger(__name__)


def convert_pickle_weights(source: Path, target: Path, name: str | None = None) -> Path:
    """Read `source` with the weights-only loader and write its tensors to `target` (safetensors).

    `name` is what the file is called where it came from (the download is named by its hash).
    """
    import pickle

    import torch
    from safetensors.torch import save_file

    try:
        try:
            state = torch.load(source, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):  # an old, non-zip file cannot be memory-mapped
                raise
            state = torch.load(source, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, AttributeError, TypeError) as exc:
        raise ModelError(_refused(name or source.name, exc)) from None
    except (RuntimeError, EOFError, ValueError, OSError) as exc:
        if "weights_only" in str(exc) or "Unsupported global" in str(exc):
            raise ModelError(_refused(name or source.name, exc)) from None
        raise ModelError(f"'{name or source.name}' is damaged and cannot be read as model "
                         f"weights ({_first_line(exc)}); download it again") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ModelError(f"'{name or source.name}' holds no model weights (a pickle of "
                         "something else); clapdesk cannot use it")
    tensors = _unshared(state)
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(target.name + ".converting")
    save_file(tensors, str(scratch), metadata={"format": "pt"})
    with open(scratch, "rb") as handle:
        os.fsync(handle.fileno())
    os.replace(scratch, target)
    log.info("converted %s to %s (%d tensors)", source, target, len(tensors))
    return target


def _refused(name: str, exc: BaseException) -> str:
    # torch's own text is a page of advice to turn the safety off, with terminal colours; the
    # one useful part is what the file tried to use.
    found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
    what = f" (it names {found.group(1)})" if found else ""
    return (f"'{name}' was refused: reading it would run code or build objects other than "
            f"weights{what}. clapdesk never runs code from a model file; use a model with "
            "safetensors weights")


def _unshared(state: dict[str, Any]) -> dict[str, Any]:
    """safetensors stores each tensor on its own: copy those that share memory with another
    (tied weights) or are views into a larger buffer."""
    seen: set[int] = set()
    out = {}
    for name, tensor in state.items():
        storage = tensor.untyped_storage()
        whole = storage.nbytes() == tensor.numel() * tensor.element_size()
        if storage.data_ptr() in seen or not whole or not tensor.is_contiguous():
            tensor = tensor.detach().clone().contiguous()
        seen.add(tensor.untyped_storage().data_ptr())
        out[name] = tensor
    return out


def load_clap_model(folder: str | Path, dtype: Any) -> Any:
    """ClapModel from a folder's safetensors, refused when any weight is missing or misshapen.

    transformers fills a missing weight with random numbers and only prints a report: such a
    model loads "fine" and gives vectors that mean nothing. The report is kept off stderr and
    replaced by one plain refusal, before the model is used (or remembered by a library).
    """
    from transformers import ClapModel
    from transformers.utils import logging as transformers_logging

    before = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        model, info = ClapModel.from_pretrained(folder, use_safetensors=True, dtype=dtype,
                                                output_loading_info=True)
    finally:
        transformers_logging.set_verbosity(before)
    missing = sorted(info.get("missing_keys") or ())
    mismatched = sorted(str(k[0]) if isinstance(k, tuple) else str(k)
                        for k in info.get("mismatched_keys") or ())
    if missing or mismatched:
        names = missing + mismatched
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        what = (f"{len(missing)} of its weights are missing" if missing
                else f"{len(mismatched)} of its weights have the wrong shape")
        raise ModelError(f"the model in '{folder}' is incomplete: {what} ({shown}); it would "
                         "give meaningless results. Download or convert the model again")
    return model


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
