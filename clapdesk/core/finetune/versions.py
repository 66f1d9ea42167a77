"""Fine-tuned model versions: saved, listed, loaded, activated, reverted and deleted.

A version is a folder under the library's `models/` holding the two heads as safetensors and a
`version.json` (base encoder, date, figures, tag sources). The base model is never touched. A
version is written to a hidden temporary folder and renamed into place in one step, so a cancel,
a crash or a full disk never leaves a half-written version that could be activated.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from clapdesk.core.store.model_key import SEPARATOR, ModelKey

if TYPE_CHECKING:
    from clapdesk.core.embed.embedder import ClapEmbedder
    from clapdesk.core.library import Library
    from clapdesk.core.store.catalog import Catalog

log = logging.getLogger(__name__)

AUDIO_HEAD_FILE = "audio_head.safetensors"
TEXT_HEAD_FILE = "text_head.safetensors"
INFO_FILE = "version.json"
FORMAT = 1


class VersionError(Exception):
    """A version that does not exist, does not fit this model, or is damaged."""


@dataclass
class VersionInfo:
    name: str
    base: str  # the encoder key the heads were trained on
    created: float
    info: dict[str, Any]
    active: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.base, "active": self.active,
                "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.created)),
                "before": self.info.get("before"), "after": self.info.get("after"),
                "train": self.info.get("train"), "heldout": self.info.get("heldout"),
                "tag_sources": self.info.get("tag_sources")}


def new_version_name(models_dir: Path) -> str:
    """`ft-YYYYMMDD-HHMMSS`, with a suffix if two runs finish within a second."""
    stem = time.strftime("ft-%Y%m%d-%H%M%S")
    name, n = stem, 2
    while (models_dir / name).exists():
        name, n = f"{stem}-{n}", n + 1
    return name


def valid_name(name: str) -> bool:
    return bool(name) and not name.startswith(".") and os.sep not in name and "/" not in name \
        and SEPARATOR not in name and name not in ("..", "base")


def save_version(models_dir: Path, name: str, audio_head: Any, text_head: Any,
                 info: dict[str, Any]) -> Path:
    """Write a version atomically: temp folder first, renamed into place when complete."""
    from safetensors.torch import save_file

    if not valid_name(name):
        raise VersionError(f"'{name}' cannot be used as a version name")
    target = models_dir / name
    if target.exists():
        raise VersionError(f"a version named '{name}' already exists")
    models_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=models_dir))
    try:
        save_file(_state(audio_head), str(scratch / AUDIO_HEAD_FILE))
        save_file(_state(text_head), str(scratch / TEXT_HEAD_FILE))
        payload = {"format": FORMAT, "name": name, "created": time.time(), **info}
        (scratch / INFO_FILE).write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        os.replace(scratch, target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def _state(module: Any) -> dict[str, Any]:
    return {k: v.detach().to("cpu").contiguous().clone() for k, v in module.state_dict().items()}


def read_info(models_dir: Path, name: str) -> dict[str, Any]:
    path = models_dir / name / INFO_FILE
    try:
        return dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise VersionError(f"there is no fine-tuned version named '{name}'") from None
    except (OSError, ValueError) as exc:
        raise VersionError(f"the version '{name}' is damaged ({exc})") from exc


def list_versions(models_dir: Path, encoder_key: str | None = None,
                  active: str | None = None) -> list[VersionInfo]:
    """Complete versions, oldest first; only those of `encoder_key` when given."""
    if not models_dir.is_dir():
        return []
    out: list[VersionInfo] = []
    for folder in models_dir.iterdir():
        if not folder.is_dir() or folder.name.startswith("."):
            continue  # temporary folders of runs in progress or interrupted
        try:
            info = read_info(models_dir, folder.name)
        except VersionError as exc:
            log.info("skipping %s: %s", folder, exc)
            continue
        base = str(info.get("base", ""))
        if encoder_key is not None and base != encoder_key:
            continue
        out.append(VersionInfo(folder.name, base, float(info.get("created", 0.0)), info,
                               folder.name == active))
    return sorted(out, key=lambda v: (v.created, v.name))


def load_heads(models_dir: Path, version: str, embedder: ClapEmbedder) -> tuple[Any, Any]:
    """The version's heads, shaped like the embedder's own projections; raises VersionError."""
    from safetensors.torch import load_file

    info = read_info(models_dir, version)
    if info.get("base") != embedder.encoder_key:
        raise VersionError(f"the version '{version}' was trained on another model "
                           f"({info.get('base')}), not {embedder.encoder_key}")
    heads = []
    for file_name, own in ((AUDIO_HEAD_FILE, embedder.model.audio_projection),
                           (TEXT_HEAD_FILE, embedder.model.text_projection)):
        head = copy.deepcopy(own).float()
        try:
            head.load_state_dict(load_file(str(models_dir / version / file_name)), strict=True)
        except Exception as exc:
            raise VersionError(f"the version '{version}' is damaged ({exc})") from exc
        if not all(bool(p.isfinite().all()) for p in head.state_dict().values()):
            # NaN or Inf weights would make every vector NaN: search would return noise.
            raise VersionError(f"the version '{version}' is damaged (its {file_name} holds "
                               "NaN or infinite weights)")
        heads.append(head.eval())
    return heads[0], heads[1]


def write_vectors(catalog: Catalog, model_key: str, audio_head: Any,
                  only: list[int] | None = None) -> int:
    """Project stored features (all, or `only` these files) through a head into vectors under
    `model_key`: seconds for a whole library, no decoding."""
    import numpy as np
    import torch

    ids, feats = catalog.features(ModelKey(model_key).encoder, only)
    if not len(ids):
        return 0
    device = next(audio_head.parameters()).device
    with torch.inference_mode():
        x = torch.from_numpy(np.ascontiguousarray(feats, np.float32)).to(device)
        vectors = torch.nn.functional.normalize(audio_head(x).float(), dim=-1).cpu().numpy()
    with catalog.transaction():
        for file_id, vector in zip(ids, vectors):
            catalog.put_vector(int(file_id), model_key, vector)
    return len(ids)


def delete_vectors(library: Library, model_key: str) -> None:
    """Forget a version's vectors and its index cache file."""
    from clapdesk.core.store.vector_index import model_slug

    library.catalog.delete_vectors(model_key)
    index_file = library.paths.index_file(model_slug(model_key))
    for path in (index_file, index_file.with_suffix(".json")):
        path.unlink(missing_ok=True)


def activate(library: Library, version: str) -> str:
    """Make a version the one searched; its vectors are re-projected if any are missing."""
    if not valid_name(version):
        raise VersionError(f"'{version}' is not a version name")
    embedder = library.embedder()
    audio_head, _ = load_heads(library.paths.models, version, embedder)  # validates it first
    model_key = ModelKey.of(embedder.encoder_key, version)
    missing = library.catalog.files_missing_vectors(model_key)  # indexed since it was made
    if missing:
        write_vectors(library.catalog, model_key, audio_head, missing)
    library.set_active_version(version)
    if library.load_warning:
        raise VersionError(library.load_warning)
    return library.model_key


def revert(library: Library) -> str:
    """Back to the base model: its vectors never left the catalog, so nothing is recomputed,
    except for files indexed while a version was active (they only got that version's vectors)."""
    library.set_active_version(None)
    missing = library.catalog.files_missing_vectors(library.model_key)
    if missing:
        embedder = library.embedder()
        write_vectors(library.catalog, library.model_key, embedder.model.audio_projection, missing)
    return library.model_key


def delete(library: Library, version: str) -> None:
    """Remove a version and its vectors; the active version cannot be deleted."""
    if not valid_name(version) or not (library.paths.models / version).is_dir():
        raise VersionError(f"there is no fine-tuned version named '{version}'")
    if library.active_version == version:
        raise VersionError(f"'{version}' is active; revert to the base model first")
    try:
        base = str(read_info(library.paths.models, version).get("base"))
    except VersionError:  # a damaged version is deleted all the same
        base = library.identity.encoder_key
    delete_vectors(library, ModelKey.of(base, version))
    shutil.rmtree(library.paths.models / version)
