"""Model files that cannot or must not be loaded: each gets a clear message, the library is left
as it was, and a fine-tuned version that fails to load falls back to the base model."""

from __future__ import annotations

import ast
import hashlib
import json
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest
from conftest import family_sound, write_sound

import clapdesk
from clapdesk.cli import main
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import search_text
from clapdesk.core.store.vector_index import model_slug


def catalog_dump(library: Path) -> str:
    db = sqlite3.connect(library / "catalog.sqlite3")
    try:
        return "\n".join(db.iterdump())
    finally:
        db.close()


def index_files(library: Path) -> dict[str, str]:
    return {p.name: hashlib.blake2b(p.read_bytes()).hexdigest()
            for p in sorted((library / "index").iterdir())}


def copy_model(tiny_model: Path, target: Path, skip: tuple[str, ...] = ()) -> Path:
    target.mkdir(parents=True)
    for item in tiny_model.iterdir():
        if item.is_file() and item.name not in skip:
            shutil.copy2(item, target / item.name)
    return target


def pickle_only(tiny_model: Path, target: Path) -> Path:
    folder = copy_model(tiny_model, target, skip=("model.safetensors",))
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04pickled weights that could run code")
    return folder


def no_weights(tiny_model: Path, target: Path) -> Path:
    return copy_model(tiny_model, target, skip=("model.safetensors",))


def cut_short_weights(tiny_model: Path, target: Path) -> Path:
    folder = copy_model(tiny_model, target)
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])  # a download cut short
    return folder


def garbage_weights(tiny_model: Path, target: Path) -> Path:
    folder = copy_model(tiny_model, target)
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * 8)
    return folder


def wrong_type(tiny_model: Path, target: Path) -> Path:
    folder = copy_model(tiny_model, target)
    config = json.loads((folder / "config.json").read_text())
    config["model_type"] = "bert"
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def sizes_differ(tiny_model: Path, target: Path) -> Path:
    """A CLAP whose text vectors have 24 numbers and audio vectors 16."""
    from transformers import ClapConfig, ClapModel

    folder = copy_model(tiny_model, target, skip=("model.safetensors", "config.json"))
    config = ClapConfig.from_pretrained(tiny_model)
    config.text_config.projection_dim = 24
    ClapModel(config).save_pretrained(folder)
    return folder


BAD_MODELS = {
    "pickle_only": (pickle_only, "only has pickle weights (.bin/.pt); clapdesk loads "
                                 "safetensors only, because pickle files can run code"),
    "no_weights": (no_weights, "has no model weights (model.safetensors is missing)"),
    "cut_short_weights": (cut_short_weights, "model.safetensors' is incomplete: it ends early "
                                             "(an interrupted download?); download it again"),
    "garbage_weights": (garbage_weights, "model.safetensors' is damaged (its header runs past "
                                         "the end of the file); download or convert it again"),
    "wrong_type": (wrong_type, "holds a 'bert' model, not a CLAP model"),
    "sizes_differ": (sizes_differ, "the model's audio vectors (16) and text vectors (24) differ "
                                   "in size, so text cannot search audio"),
}


@pytest.fixture
def indexed_library(tmp_path: Path, tiny_model: Path) -> tuple[Path, Path]:
    samples = tmp_path / "samples"
    for i, family in enumerate(["kick", "pad", "bass"]):
        write_sound(samples / f"{family}_{i}.wav", family_sound(family, i))
    library = tmp_path / "library"
    assert main(["--library", str(library), "--model", str(tiny_model), "index", str(samples)]) == 0
    return library, samples


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_is_refused_and_the_library_is_left_as_it_was(
        case: str, tmp_path: Path, tiny_model: Path, indexed_library: tuple[Path, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    library, samples = indexed_library
    capsys.readouterr()
    make, message = BAD_MODELS[case]
    bad = make(tiny_model, tmp_path / case)
    catalog_before, index_before = catalog_dump(library), index_files(library)

    for verb in (["index", str(samples)], ["search", "kick"]):
        code = main(["--library", str(library), "--model", str(bad), *verb])
        err = capsys.readouterr().err
        assert code == 1, verb
        last = err.strip().splitlines()[-1]
        assert last.startswith("clapdesk: ") and message in last, last
        assert "Traceback" not in err

    assert catalog_dump(library) == catalog_before
    assert index_files(library) == index_before
    # The library still remembers, and searches with, its own model.
    code = main(["--library", str(library), "--json", "search", "kick", "-k", "3"])
    assert code == 0 and len(json.loads(capsys.readouterr().out)["results"]) == 3


@pytest.mark.parametrize("how", ["damaged files", "versions module missing"])
def test_broken_fine_tuned_version_falls_back_to_the_base(
        how: str, tiny_model: Path, indexed_library: tuple[Path, Path],
        monkeypatch: pytest.MonkeyPatch) -> None:
    library_dir, samples = indexed_library
    library = Library(library_dir, model=str(tiny_model))
    base_key = library.identity.encoder_key
    version = library_dir / "models" / "v-broken"
    version.mkdir(parents=True)
    (version / "version.json").write_text(json.dumps({"base": base_key, "name": "v-broken"}))
    (version / "audio_head.safetensors").write_bytes(b"not a tensor file")
    (version / "text_head.safetensors").write_bytes(b"")
    library.catalog.set_meta(f"active_version:{base_key}", "v-broken")
    library.close()
    if how == "versions module missing":
        monkeypatch.setitem(sys.modules, "clapdesk.core.finetune.versions", None)  # import fails

    write_sound(samples / "late.wav", family_sound("hihat", 9))
    library = Library(library_dir, model=str(tiny_model))
    try:
        report = library.index_folders([str(samples)])
        assert report.indexed == 1 and report.unchanged == 3
        assert library.load_warning is not None
        assert "'v-broken' could not be loaded" in library.load_warning
        assert "fell back to the base model" in library.load_warning
        assert library.model_key == base_key
        # Vectors went to the base model's key and index, not the broken version's.
        ids, _ = library.catalog.vectors(base_key)
        assert len(ids) == 4
        assert {p.stem for p in (library_dir / "index").glob("*.hnsw")} == {model_slug(base_key)}
        response = search_text(library, "kick", k=4)
        assert len(response.hits) == 4
    finally:
        library.close()


def test_trust_remote_code_and_pickle_loading_never_appear() -> None:
    """No call in the package passes trust_remote_code, unpickles (torch.load only with
    weights_only=True, which rebuilds tensors and refuses code), or lets transformers read .bin."""
    package = Path(clapdesk.__file__).parent
    offenders = []
    for source in package.rglob("*.py"):
        tree = ast.parse(source.read_text(), filename=str(source))
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                offenders.append(f"{source}:{node.value.lineno} trust_remote_code")
            if isinstance(node, ast.keyword) and node.arg == "use_safetensors" and not (
                    isinstance(node.value, ast.Constant) and node.value.value is True):
                offenders.append(f"{source}:{node.value.lineno} use_safetensors not True")
            weights_only = isinstance(node, ast.Call) and any(
                k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                and k.value.value is True for k in node.keywords)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and (
                    node.func.attr in ("load", "loads") and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("torch", "pickle")) and not (
                    node.func.value.id == "torch" and weights_only):
                offenders.append(f"{source}:{node.lineno} {node.func.value.id}.{node.func.attr}")
    assert offenders == []
    loads = [n for s in package.rglob("*.py") for n in ast.walk(ast.parse(s.read_text()))
             if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)
             and n.func.attr == "from_pretrained"
             and isinstance(n.func.value, ast.Name) and n.func.value.id.endswith("Model")]
    assert loads, "the model loader was not found"
    assert all(any(k.arg == "use_safetensors" for k in call.keywords) for call in loads)
