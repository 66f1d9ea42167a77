"""Finding a CLAP model's files: a folder, or a hub id resolved in the Hugging Face cache.

A hub id is first resolved locally, without the network: its snapshot in the normal Hugging
Face cache when that holds whole safetensors, else the folder clapdesk prepared for that commit
(download_model.py). Only when neither is usable is anything downloaded, so a model fetched once
works offline, and a cached snapshot without usable weights is repaired rather than a permanent
failure. The folder's files are checked before torch is involved: a CLAP config, safetensors
weights that are whole.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

# Its text tower is trained (larger_clap_music's is not; see known_models), and it has the same
# HTSAT-base audio tower, so every speed figure measured with larger_clap_music holds.
DEFAULT_MODEL = "laion/larger_clap_general"


class ModelError(Exception):
    """A model that cannot be used, with a message that says what to do."""


class ModelUnavailable(ModelError):
    """The model is neither cached nor downloadable right now."""


class NoConnection(ModelUnavailable):
    """The hub could not be reached, or the connection kept dropping."""


class ServerFailed(ModelUnavailable):
    """The hub answered with an error, again after a few retries."""


class DiskFull(ModelUnavailable):
    """Not enough free space for the download (checked before it starts)."""


class DownloadCancelled(ModelUnavailable):
    """The person stopped the download; the bytes fetched so far are kept."""


class NoUsableWeights(ModelError):
    """The repository has no weights clapdesk can load safely."""


@dataclass(frozen=True)
class ModelIdentity:
    """What a library stores beside its vectors, so vectors of two models never mix."""

    ref: str  # what the user named: a hub id or a folder
    folder: str  # where the files were loaded from
    revision: str  # hub commit, or a hash of the weights for a plain folder

    @property
    def encoder_key(self) -> str:
        name = self.ref if not os.path.isdir(self.ref) else Path(self.ref).name
        return f"{name}@{self.revision[:16]}"


def _weights_digest(folder: Path) -> str:
    """A hash of a plain folder's weights, cached by size and mtime so it is paid once."""
    weights = sorted(folder.glob("*.safetensors"))
    # Lists, as JSON gives them back: tuples never compared equal, so every start of a folder
    # model hashed all its weights again (0.8 s for 776 MB from a warm page cache here).
    stamp = [[w.name, w.stat().st_size, w.stat().st_mtime_ns] for w in weights]
    from clapdesk.core.store.known_facts import KnownFacts

    facts = KnownFacts("weight-digests")
    key = str(folder.resolve())
    known = facts.get(key)
    if isinstance(known, dict) and known.get("stamp") == stamp:
        return str(known["digest"])
    digest = hashlib.blake2b(digest_size=16)
    for weight in weights:
        with open(weight, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    value = digest.hexdigest()
    facts.put(key, {"stamp": stamp, "digest": value})
    return value


def resolve_model(ref: str, allow_download: bool = True, progress: Any = None,
                  cancel: threading.Event | None = None) -> ModelIdentity:
    """Find the model's files locally, downloading (or repairing) them once if allowed.

    `progress` gets a `download.DownloadStatus` now and then (default: lines on stderr);
    setting `cancel` stops a download, keeping what was fetched for the next attempt.
    """
    path = Path(ref).expanduser()
    # A hub id looks like "owner/name"; anything that exists, or looks like a path, is a folder.
    if path.is_dir() or ref.startswith((".", "/", "~")) or ref.count("/") > 1 or "\\" in ref:
        if not path.is_dir():
            raise ModelError(f"model folder '{ref}' does not exist")
        check_model_folder(path)
        return ModelIdentity(str(path.resolve()), str(path.resolve()), _weights_digest(path))
    from clapdesk.core.embed import download_model

    snapshot = download_model.cached_snapshot(ref)
    problem = None
    if snapshot is not None:
        # Whole safetensors in the hub cache's snapshot, or a folder clapdesk prepared before.
        for folder in (snapshot, download_model.prepared_folder(ref, snapshot.name)):
            try:
                check_model_folder(folder)
            except ModelError as exc:
                problem = problem or str(exc)
                continue
            return ModelIdentity(ref, str(folder), snapshot.name)
    if not allow_download or hub_offline():
        raise ModelUnavailable(_unavailable_message(ref, problem if snapshot else None))
    if progress is None:
        from clapdesk.core.embed.download import StderrProgress

        progress = StderrProgress()
    try:
        folder, commit = download_model.prepare(ref, progress=progress, cancel=cancel)
    except (NoConnection, ServerFailed) as exc:
        raise type(exc)(f"{exc}. {FOLDER_HINT}") from None
    check_model_folder(folder)
    return ModelIdentity(ref, str(folder), commit)


FOLDER_HINT = ("Or point clapdesk at a folder that holds a CLAP model: --model /path/to/folder "
               "(or CLAPDESK_MODEL=/path/to/folder).")


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as huggingface_hub reads it, but read now (the library reads it once)."""
    value = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE") or ""
    return value.strip().upper() in {"1", "ON", "YES", "TRUE"}


def _unavailable_message(ref: str, problem: str | None = None) -> str:
    if problem:
        return (f"The model '{ref}' is on this computer without usable weights ({problem}). "
                "Connect once so clapdesk can fetch them (an earlier download continues where "
                f"it stopped). {FOLDER_HINT}")
    return (
        f"The model '{ref}' is not on this computer and could not be downloaded "
        "(no connection to the Hugging Face hub?). Connect once to download it. " + FOLDER_HINT
    )


def check_model_folder(folder: Path) -> None:
    """Refuse folders clapdesk cannot or must not load, before torch is involved."""
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise ModelError(f"'{folder}' has no config.json: it is not a model folder")
    try:
        config = json.loads(config_file.read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"the model's config.json in '{folder}' is damaged: {exc}") from exc
    if config.get("model_type") != "clap":
        raise ModelError(
            f"'{folder}' holds a '{config.get('model_type', 'unknown')}' model, not a CLAP model"
        )
    if not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.ckpt")):
            raise ModelError(
                f"'{folder}' only has pickle weights (.bin/.pt); clapdesk loads safetensors only, "
                "because pickle files can run code. Convert the weights to safetensors."
            )
        raise ModelError(f"'{folder}' has no model weights (model.safetensors is missing)")
    problem = _weights_problem(folder)
    if problem:
        raise ModelError(problem)


def _weights_problem(folder: Path) -> str | None:
    """Read the safetensors headers (plain JSON, no torch): a damaged or cut-short file, or
    projections of different sizes, which transformers reports only as a shape mismatch."""
    shapes: dict[str, list[int]] = {}
    for weights in sorted(folder.glob("*.safetensors")):
        try:
            with open(weights, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                header_len = struct.unpack("<Q", handle.read(8))[0]
                if header_len > size - 8:
                    raise ValueError("its header runs past the end of the file")
                header = json.loads(handle.read(header_len))
            tensors = {k: v for k, v in header.items() if k != "__metadata__"}
            end = max((int(v["data_offsets"][1]) for v in tensors.values()), default=0)
        except (OSError, ValueError, KeyError, TypeError, IndexError, struct.error) as exc:
            return f"the model file '{weights}' is damaged ({exc}); download or convert it again"
        if 8 + header_len + end > size:
            return (f"the model file '{weights}' is incomplete: it ends early (an interrupted "
                    "download?); download it again")
        shapes.update({k: list(v.get("shape", [])) for k, v in tensors.items()})
    audio = shapes.get("audio_projection.linear2.weight")
    text = shapes.get("text_projection.linear2.weight")
    if audio and text and audio[0] != text[0]:
        return (f"the model's audio vectors ({audio[0]}) and text vectors ({text[0]}) differ in "
                "size, so text cannot search audio")
    return None
