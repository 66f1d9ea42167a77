"""A hub repository turned into a folder clapdesk can load, with weights as the hub serves them.

Where the weights come from, in order:
1. `model.safetensors` at the main revision;
2. the repository's safetensors conversion: the hub's conversion bot ("SFconvertbot") opens a
   pull request whose branch (`refs/pr/N`) adds `model.safetensors` beside the pickle. It is
   used only when opened by that bot and when its `pytorch_model.bin` is byte for byte the one
   on main (the same SHA-256), so the conversion is of exactly these weights;
3. `pytorch_model.bin`, read with torch's weights-only loader and converted once to safetensors.

The small files (config, tokenizer, processor) come through huggingface_hub into its normal
cache; the weights through clapdesk's resumable download (download.py). The folder clapdesk
loads is `<cache>/models/<owner>--<name>/<main commit>/`: those small files plus the checked
`model.safetensors`. A snapshot in the hub cache that already holds whole safetensors (another
tool fetched them) is used as it is.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from clapdesk.core.embed.download import (
    BACKOFF_S,
    MB,
    Progress,
    RemoteFile,
    check_free_space,
    download_file,
    partial_path,
)
from clapdesk.core.embed.hub import (
    ModelError,
    NoConnection,
    NoUsableWeights,
    ServerFailed,
)

log = logging.getLogger(__name__)

CONVERSION_BOT = "SFconvertbot"
SAFETENSORS = "model.safetensors"
PICKLE = "pytorch_model.bin"
# The small files of a CLAP snapshot; weights are fetched separately, pickles never by the hub
# library (it would keep them in its cache for ever).
SMALL_FILE_PATTERNS = ["*.json", "*.txt", "vocab.*", "merges.txt", "*.model"]
SOURCE_FILE = "clapdesk-weights.json"  # where a prepared folder's weights came from

T = TypeVar("T")


@dataclass(frozen=True)
class WeightsPlan:
    """Which file gives the weights, at which revision, and how it becomes safetensors."""

    kind: str  # "safetensors", "conversion" or "pickle"
    revision: str  # the commit the file is read at
    file: RemoteFile

    def describe(self) -> str:
        return {"safetensors": "model.safetensors",
                "conversion": f"the hub's safetensors conversion ({self.revision[:12]})",
                "pickle": "pytorch_model.bin, converted to safetensors"}[self.kind]


def endpoint() -> str:
    """The hub's address, read when needed (huggingface_hub reads HF_ENDPOINT once, at import)."""
    from huggingface_hub import constants

    return (os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")


def models_dir() -> Path:
    from clapdesk.core.store.paths import cache_dir

    return cache_dir() / "models"


def prepared_folder(ref: str, commit: str) -> Path:
    return models_dir() / ref.replace("/", "--") / commit


def cached_snapshot(ref: str) -> Path | None:
    """The hub cache's snapshot of main, without touching the network (None if not cached)."""
    from huggingface_hub import snapshot_download

    # Asked for the small files only: huggingface_hub refuses a snapshot that lacks a file the
    # patterns name, and the weights are usually not in it (they live in the prepared folder).
    try:
        return Path(snapshot_download(ref, allow_patterns=SMALL_FILE_PATTERNS,
                                      local_files_only=True))
    except Exception:  # not cached (or a broken cache entry): the same for us
        return None


# -- asking the hub -------------------------------------------------------------------------------
def list_revision(api: Any, ref: str, revision: str) -> tuple[str, dict[str, RemoteFile]]:
    """A revision's commit and files, with the sizes and hashes the hub publishes for them."""
    from huggingface_hub import hf_hub_url

    info = with_retries(lambda: api.model_info(ref, revision=revision, files_metadata=True), ref)
    commit = str(info.sha)
    files = {}
    for sibling in info.siblings or []:
        lfs = sibling.lfs
        size = lfs.size if lfs is not None else sibling.size
        files[sibling.rfilename] = RemoteFile(
            name=sibling.rfilename,
            url=hf_hub_url(ref, sibling.rfilename, revision=commit, endpoint=endpoint()),
            size=int(size or 0), sha256=lfs.sha256 if lfs is not None else None,
            blob_id=sibling.blob_id)
    return commit, files


def choose_weights(api: Any, ref: str, commit: str, files: dict[str, RemoteFile]) -> WeightsPlan:
    if SAFETENSORS in files:
        return WeightsPlan("safetensors", commit, files[SAFETENSORS])
    pickle = files.get(PICKLE)
    if pickle is not None:
        conversion = find_conversion(api, ref, pickle)
        if conversion is not None:
            return conversion
        return WeightsPlan("pickle", commit, pickle)
    names = ", ".join(sorted(n for n in files if not n.startswith("."))) or "no files"
    raise NoUsableWeights(
        f"the repository '{ref}' has no weights clapdesk can use (no model.safetensors, no "
        f"safetensors conversion, no pytorch_model.bin; it has {names}). Choose another model")


def find_conversion(api: Any, ref: str, pickle: RemoteFile) -> WeightsPlan | None:
    """The conversion bot's open pull request that adds safetensors to exactly these weights."""
    try:
        discussions = with_retries(lambda: list(api.get_repo_discussions(
            ref, author=CONVERSION_BOT, discussion_type="pull_request",
            discussion_status="open")), ref)
    except ModelError as exc:
        log.info("no conversion looked up for %s: %s", ref, exc)
        return None
    for discussion in sorted(discussions, key=lambda d: -d.num):
        # The author filter is the server's; checked again here because trusting another
        # person's pull request would load weights nobody reviewed.
        if discussion.author != CONVERSION_BOT or not discussion.is_pull_request:
            continue
        if discussion.status != "open":
            continue
        try:
            pr_commit, pr_files = list_revision(api, ref, f"refs/pr/{discussion.num}")
        except ModelError as exc:
            log.info("conversion PR %d of %s unreadable: %s", discussion.num, ref, exc)
            continue
        pr_pickle = pr_files.get(PICKLE)
        converted = pr_files.get(SAFETENSORS)
        if converted is None or converted.sha256 is None or pr_pickle is None:
            continue
        if pr_pickle.sha256 != pickle.sha256:
            continue  # a conversion of older weights
        return WeightsPlan("conversion", pr_commit, converted)
    return None


def with_retries(call: Callable[[], T], ref: str) -> T:
    """One hub API call, retried with back-off on a server error or a dropped connection."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    problem = ""
    for attempt in range(len(BACKOFF_S) + 1):
        if attempt:
            time.sleep(BACKOFF_S[attempt - 1])
        try:
            return call()
        except ModelError:
            raise
        except Exception as failure:  # noqa: BLE001 - sorted by cause below
            # snapshot_download wraps the real cause (a 500, a refused connection) in its own
            # "not in the local cache" error: the chain says what happened.
            chain = _causes(failure)
        if any(isinstance(e, OfflineModeIsEnabled) for e in chain):
            raise NoConnection(
                f"clapdesk is set to work offline (HF_HUB_OFFLINE), so '{ref}' cannot be "
                "downloaded") from None
        if any(isinstance(e, (RepositoryNotFoundError, RevisionNotFoundError)) for e in chain):
            raise ModelError(f"there is no model '{ref}' on the Hugging Face hub (check the "
                             "name; private models are not supported)") from None
        http = next((e for e in chain if isinstance(e, HfHubHTTPError)), None)
        transport = next((e for e in chain
                          if isinstance(e, (httpx2.TransportError, httpx2.StreamError))), None)
        if http is not None:
            status = http.response.status_code if http.response is not None else 0
            if status < 500 and status != 429:
                raise ServerFailed(f"the Hugging Face hub refused to list '{ref}' "
                                   f"(HTTP {status})") from None
            problem = f"server:HTTP {status}"
        elif transport is not None:
            problem = f"connection:{type(transport).__name__}"
        else:
            raise chain[0]
        log.info("hub call for %s failed (%s), attempt %d", ref, problem, attempt + 1)
    kind, _, detail = problem.partition(":")
    tries = len(BACKOFF_S) + 1
    if kind == "server":
        raise ServerFailed(f"the Hugging Face hub answered '{detail}' {tries} times in a row "
                           f"for '{ref}'; try again later")
    raise NoConnection(f"could not reach the Hugging Face hub at {endpoint()} ({detail}, "
                       f"{tries} tries) to download '{ref}'; check the internet connection")


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain and len(chain) < 8:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


# -- fetching -------------------------------------------------------------------------------------
def prepare(ref: str, progress: Progress | None = None,
            cancel: threading.Event | None = None) -> tuple[Path, str]:
    """Download what `ref` needs (resuming earlier attempts) into a folder; (folder, commit)."""
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import build_hf_headers

    # The small files first, at main: the hub cache then records which commit main is, which
    # is how a later start finds this model without the network.
    snapshot = Path(with_retries(lambda: snapshot_download(
        ref, allow_patterns=SMALL_FILE_PATTERNS, endpoint=endpoint(),
        tqdm_class=_silent_tqdm()), ref))
    commit = snapshot.name
    folder = prepared_folder(ref, commit)
    if is_ready(folder):
        return folder, commit
    (folder / SOURCE_FILE).unlink(missing_ok=True)  # whatever is there gets replaced
    api = HfApi(endpoint=endpoint())
    _, files = list_revision(api, ref, commit)
    plan = choose_weights(api, ref, commit, files)
    downloads = models_dir() / "downloads"
    # Space for the rest of the weights, and for the safetensors copy a pickle becomes.
    fetched = downloads / f"{plan.file.key}.bin"  # a pickle, fetched and checked, not converted
    have = max(_size(partial_path(downloads, plan.file)), _size(fetched))
    extra = plan.file.size if plan.kind == "pickle" else 0
    check_free_space(downloads, plan.file.size - have + extra, f"the model '{ref}'")
    folder.mkdir(parents=True, exist_ok=True)
    for item in snapshot.iterdir():
        if item.is_file() and not item.name.endswith((".safetensors", ".bin")):
            shutil.copyfile(item, folder / item.name)  # small, and safe from cache clean-ups
    headers = build_hf_headers()
    if plan.kind == "pickle":
        from clapdesk.core.embed.weights import convert_pickle_weights

        download_file(plan.file, fetched, downloads, headers=headers, progress=progress,
                      cancel=cancel, extra_space=extra)
        try:
            convert_pickle_weights(fetched, folder / SAFETENSORS, name=plan.file.name)
        except ModelError:
            fetched.unlink()  # refused: never kept, never tried again from this copy
            raise
        fetched.unlink()  # the safetensors copy replaces it
    else:
        download_file(plan.file, folder / SAFETENSORS, downloads, headers=headers,
                      progress=progress, cancel=cancel)
    source = {"repo": ref, "commit": commit, "weights": plan.kind, "file": plan.file.name,
              "revision": plan.revision, "sha256": plan.file.sha256, "bytes": plan.file.size}
    (folder / SOURCE_FILE).write_text(json.dumps(source, indent=1))
    log.info("model %s ready in %s (%s, %.0f MB)", ref, folder, plan.describe(),
             plan.file.size / MB)
    return folder, commit


def is_ready(folder: Path) -> bool:
    """A prepared folder whose fetch finished and whose files pass the checks."""
    from clapdesk.core.embed.hub import check_model_folder

    if not (folder / SOURCE_FILE).is_file():
        return False
    try:
        check_model_folder(folder)
    except ModelError as exc:
        log.warning("prepared model folder %s is unusable (%s); fetching again", folder, exc)
        return False
    return True


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _silent_tqdm() -> type:
    """The hub library's bars for the small files are not shown: clapdesk reports the weights."""
    from tqdm.auto import tqdm

    class Silent(tqdm):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.pop("name", None)
            kwargs["disable"] = True
            super().__init__(*args, **kwargs)

    return Silent
