"""The model download as the hub really serves it, against a stand-in hub on 127.0.0.1.

Each test builds a hub-shaped repository from the tiny test model and runs the real download
path (huggingface_hub for the small files, clapdesk's resumable download for the weights).
"""

from __future__ import annotations

import hashlib
import shutil
import threading
from pathlib import Path

import pytest
from hub_fixtures import (  # noqa: F401 - fixtures
    REPO,
    fresh_hub_cache_fixture,
    padded_weights,
    served_repo,
    standin_fixture,
)
from standin_hub import StandinHub

from clapdesk.core.embed import download
from clapdesk.core.embed.download_model import SOURCE_FILE, models_dir, prepared_folder
from clapdesk.core.embed.hub import (
    DiskFull,
    DownloadCancelled,
    ModelUnavailable,
    NoConnection,
    NoUsableWeights,
    ServerFailed,
    resolve_model,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensors(path: Path) -> dict[str, object]:
    from safetensors.torch import load_file

    return load_file(str(path))


def quiet(_status: object) -> None:
    pass


def test_safetensors_on_main_are_fetched_once_and_checked(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model))
    identity = resolve_model(REPO, progress=quiet)
    weights = Path(identity.folder) / "model.safetensors"
    assert sha256(weights) == standin.file(REPO, "model.safetensors").sha256
    assert standin.served["model.safetensors"] == weights.stat().st_size
    assert identity.revision == standin.repos[REPO].refs["main"]
    # A second start finds it without a single request, online or not.
    before = len(standin.requests)
    assert resolve_model(REPO, allow_download=False) == identity
    assert len(standin.requests) == before


def test_pickle_only_main_is_read_weights_only_and_converted_once(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    import torch

    standin.add_commit(REPO, served_repo(tiny_model, weights="pickle"))
    identity = resolve_model(REPO, progress=quiet)
    folder = Path(identity.folder)
    assert folder.parent.parent == models_dir()  # the app's cache, not the hub library's
    converted, original = tensors(folder / "model.safetensors"), tensors(
        tiny_model / "model.safetensors")
    assert converted.keys() == original.keys()
    assert all(torch.equal(converted[k], original[k]) for k in original)  # type: ignore[arg-type]
    assert not list((models_dir() / "downloads").glob("*.bin"))  # the pickle is not kept
    assert '"weights": "pickle"' in (folder / SOURCE_FILE).read_text()
    before = standin.served["pytorch_model.bin"]
    assert resolve_model(REPO, allow_download=True) == identity  # converted once
    assert standin.served["pytorch_model.bin"] == before


def test_the_hubs_safetensors_conversion_is_preferred_to_the_pickle(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model, weights="pickle"))
    number = standin.add_conversion_pr(
        REPO, {"model.safetensors": tiny_model / "model.safetensors"})
    identity = resolve_model(REPO, progress=quiet)
    weights = Path(identity.folder) / "model.safetensors"
    assert sha256(weights) == sha256(tiny_model / "model.safetensors")
    assert standin.served["pytorch_model.bin"] == 0  # never downloaded, never unpickled
    assert identity.revision == standin.repos[REPO].refs["main"]  # the library's commit is main's
    source = (Path(identity.folder) / SOURCE_FILE).read_text()
    assert '"weights": "conversion"' in source
    assert standin.repos[REPO].refs[f"refs/pr/{number}"] in source


@pytest.mark.parametrize("case", ["another author", "older weights"])
def test_a_conversion_not_of_these_weights_or_not_by_the_bot_is_not_used(
        case: str, standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path,
        tiny_model_b: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model, weights="pickle"))
    if case == "another author":
        standin.add_conversion_pr(REPO, {"model.safetensors": tiny_model_b / "model.safetensors"},
                                  author="someone-else")
    else:  # the bot converted what main held before: main's pickle has changed since
        standin.add_conversion_pr(REPO, {
            "model.safetensors": tiny_model_b / "model.safetensors",
            "pytorch_model.bin": served_repo(tiny_model_b, "pickle")["pytorch_model.bin"]})
    identity = resolve_model(REPO, progress=quiet)
    assert standin.served["pytorch_model.bin"] > 0
    assert sha256(Path(identity.folder) / "model.safetensors") != sha256(
        tiny_model_b / "model.safetensors")


def test_a_pickle_that_would_run_code_is_refused_and_the_code_never_runs(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    marker = tmp_path / "the-payload-ran"
    payload = hostile_pickle(marker)
    # The payload is live: an ordinary unpickle (in a separate process) runs it.
    probe = tmp_path / "probe.bin"
    probe.write_bytes(payload)
    subprocess.run([sys.executable, "-c", "import sys, torch; torch.load(sys.argv[1], "
                    "weights_only=False)", str(probe)], capture_output=True, timeout=120,
                   check=False)
    assert marker.exists()
    marker.unlink()

    files = served_repo(tiny_model, weights="none")
    files["pytorch_model.bin"] = payload
    standin.add_commit(REPO, files)
    with pytest.raises(Exception) as caught:
        resolve_model(REPO, progress=quiet)
    message = str(caught.value)
    assert "'pytorch_model.bin' was refused: reading it would run code" in message
    assert "\n" not in message and "Traceback" not in message
    assert not marker.exists()
    # Nothing usable was left behind, and the next start refuses it the same way.
    with pytest.raises(Exception, match="was refused"):
        resolve_model(REPO, progress=quiet)
    assert not marker.exists()


def hostile_pickle(marker: Path) -> bytes:
    """A torch.save file whose unpickling would create `marker` (it names pathlib's touch)."""
    import io

    import torch

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[()]]:
            return (Path(marker).touch, ())

    buffer = io.BytesIO()
    torch.save({"text_projection.linear2.weight": torch.zeros(2, 2), "x": Payload()}, buffer)
    return buffer.getvalue()


def test_a_cached_snapshot_without_weights_is_repaired_not_a_permanent_failure(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from modelfactory import fill_hub_cache

    commit = standin.add_commit(REPO, served_repo(tiny_model, weights="pickle"))
    # What today's clapdesk leaves behind: main's small files cached, no weights.
    no_weights = fresh_hub_cache / "model-without-weights"
    no_weights.mkdir()
    for item in tiny_model.iterdir():
        if item.suffix != ".safetensors":
            shutil.copy2(item, no_weights / item.name)
    fill_hub_cache(fresh_hub_cache, REPO, no_weights, commit=commit)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model(REPO, allow_download=True)
    message = str(caught.value)
    assert "is on this computer without usable weights" in message
    assert "Connect once" in message and "--model /path/to/folder" in message

    monkeypatch.delenv("HF_HUB_OFFLINE")
    identity = resolve_model(REPO, progress=quiet)
    assert (Path(identity.folder) / "model.safetensors").is_file()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model(REPO, allow_download=False) == identity  # and offline from now on


def test_a_damaged_prepared_model_is_fetched_again(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model))
    identity = resolve_model(REPO, progress=quiet)
    weights = Path(identity.folder) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # cut short on disk
    with pytest.raises(ModelUnavailable, match="without usable weights"):
        resolve_model(REPO, allow_download=False)
    assert resolve_model(REPO, progress=quiet) == identity
    assert sha256(weights) == sha256(tiny_model / "model.safetensors")


def test_a_dropped_download_resumes_on_the_next_start(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path, tmp_path: Path) -> None:
    files = served_repo(tiny_model)
    files["model.safetensors"] = padded_weights(tiny_model, tmp_path / "big.safetensors")
    standin.add_commit(REPO, files)
    size = standin.file(REPO, "model.safetensors").size
    standin.faults.cut_after = size // 2
    standin.faults.dead_after_cut = True  # the line stays down: this start gives up
    with pytest.raises(NoConnection) as caught:
        resolve_model(REPO, progress=quiet)
    message = str(caught.value)
    assert "failed 4 times in a row" in message and "are kept" in message
    part = next((models_dir() / "downloads").glob("*.part"))
    assert size // 2 - 65536 <= part.stat().st_size <= size // 2  # what arrived is kept

    standin.faults = type(standin.faults)()  # the line is back
    identity = resolve_model(REPO, progress=quiet)
    served = standin.served["model.safetensors"]
    assert sha256(Path(identity.folder) / "model.safetensors") == standin.file(
        REPO, "model.safetensors").sha256
    assert served <= 1.3 * size, (served, size)
    assert not part.exists()
    print(f"\nbytes served for a {size} byte file cut at half: {served} ({served / size:.2f}x)")


def test_a_connection_cut_once_resumes_within_the_same_start(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path, tmp_path: Path) -> None:
    files = served_repo(tiny_model)
    files["model.safetensors"] = padded_weights(tiny_model, tmp_path / "big.safetensors")
    standin.add_commit(REPO, files)
    size = standin.file(REPO, "model.safetensors").size
    standin.faults.cut_after = size // 3
    resolve_model(REPO, progress=quiet)
    ranges = [p for m, p in standin.requests if p.startswith("/cdn/")]
    assert len(ranges) == 2
    assert standin.served["model.safetensors"] == size


def test_server_errors_are_retried_with_back_off_then_said_once(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model))
    standin.faults.status = 500
    standin.faults.status_paths = ("/cdn/",)  # the listing works, the weights' server does not
    with pytest.raises(ServerFailed) as caught:
        resolve_model(REPO, progress=quiet)
    message = str(caught.value)
    assert "answered 'HTTP 500 Internal Server Error' 4 times in a row" in message, message
    assert "try again later" in message
    assert len([p for _, p in standin.requests if p.startswith("/cdn/")]) == 4


def test_a_hub_that_errors_on_every_call_is_a_server_error_not_no_connection(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model))
    standin.faults.status = 503
    with pytest.raises(ServerFailed, match="answered 'HTTP 503' 4 times in a row"):
        resolve_model(REPO, progress=quiet)


def test_no_connection_says_so(fresh_hub_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from huggingface_hub import constants

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    monkeypatch.setenv("HF_ENDPOINT", closed)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with pytest.raises(NoConnection) as caught:
        resolve_model(REPO, progress=quiet)
    message = str(caught.value)
    assert "could not reach the Hugging Face hub" in message and "--model /path/to/folder" in message


def test_a_disk_too_small_is_said_before_the_download_starts(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    free = shutil.disk_usage(fresh_hub_cache).free
    standin.add_commit(REPO, served_repo(tiny_model))
    standin.file(REPO, "model.safetensors").claimed_size = free + 10**12
    with pytest.raises(DiskFull) as caught:
        resolve_model(REPO, progress=quiet)
    message = str(caught.value)
    assert message.startswith("not enough free disk space for the model") and "MB are free" in message
    assert standin.served["model.safetensors"] == 0


def test_a_repository_without_usable_weights_says_so(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    files = served_repo(tiny_model, weights="none")
    files["flax_model.msgpack"] = b"\0" * 5000
    standin.add_commit(REPO, files)
    with pytest.raises(NoUsableWeights) as caught:
        resolve_model(REPO, progress=quiet)
    assert "has no weights clapdesk can use" in str(caught.value)
    assert "flax_model.msgpack" in str(caught.value)


def test_a_file_that_does_not_match_the_hubs_checksum_is_never_used(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model))
    hub_file = standin.file(REPO, "model.safetensors")
    # The CDN sends other bytes than the hub lists (a corrupting proxy, a bad disk).
    hub_file.listed_sha256 = hub_file.sha256
    hub_file.data = hub_file.data[:-4] + b"oops"
    with pytest.raises(ServerFailed, match="does not match the hub's checksum"):
        resolve_model(REPO, progress=quiet)
    assert standin.served["model.safetensors"] == 2 * hub_file.size  # tried again once, whole
    commit = standin.repos[REPO].refs["main"]
    assert not (prepared_folder(REPO, commit) / "model.safetensors").exists()
    assert not list((models_dir() / "downloads").glob("*.part"))


def test_cancel_stops_the_download_and_keeps_its_bytes(
        standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path, tmp_path: Path) -> None:
    files = served_repo(tiny_model)
    files["model.safetensors"] = padded_weights(tiny_model, tmp_path / "big.safetensors")
    standin.add_commit(REPO, files)
    size = standin.file(REPO, "model.safetensors").size
    standin.faults.bytes_per_s = 8e6  # about a second for the file
    cancel = threading.Event()
    seen: list[download.DownloadStatus] = []

    def progress(status: download.DownloadStatus) -> None:
        seen.append(status)
        if status.done >= size // 4:
            cancel.set()

    with pytest.raises(DownloadCancelled, match="are kept"):
        resolve_model(REPO, progress=progress, cancel=cancel)
    assert seen and seen[-1].total == size and seen[-1].label == "model.safetensors"
    kept = next((models_dir() / "downloads").glob("*.part")).stat().st_size
    assert size // 4 <= kept < size
    standin.faults.bytes_per_s = None
    resolve_model(REPO, progress=quiet)
    assert standin.served["model.safetensors"] <= size + (1 << 20) + 64 * 1024
