"""The core engine end to end: model loading, decoding at the true rate, catalog, index, search."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import family_sound, tone, write_sound

from clapdesk.core.embed.embedder import ClapEmbedder
from clapdesk.core.embed.hub import ModelUnavailable, resolve_model
from clapdesk.core.ingest import audio
from clapdesk.core.library import Library
from clapdesk.core.search.ranking import Filters, search_similar, search_text


def make_library_folder(root: Path, count: int = 8) -> Path:
    families = ["kick", "hihat", "pad", "bass"]
    for i in range(count):
        family = families[i % len(families)]
        write_sound(root / f"pack{i % 2}" / f"{family}_{i:02d}.wav", family_sound(family, i))
    return root


def vector_of(library: Library, path: Path) -> np.ndarray:
    record = library.catalog.file_by_path(path)
    assert record is not None, f"{path} is not in the catalog"
    _, matrix = library.catalog.vectors(library.model_key, [record.id])
    assert len(matrix) == 1
    return matrix[0]


# -- the model ------------------------------------------------------------------------------------

def test_hub_id_resolves_from_the_offline_cache(hub_model: str) -> None:
    identity = resolve_model(hub_model, allow_download=False)
    assert identity.revision == "a" * 40
    assert Path(identity.folder).name == "a" * 40
    assert identity.encoder_key.startswith(hub_model + "@")
    embedder = ClapEmbedder(identity)
    assert embedder.sampling_rate == 48000


def test_a_folder_models_weights_are_hashed_once_while_unchanged(tiny_model: Path,
                                                                tmp_path: Path) -> None:
    import shutil

    from clapdesk.core.embed.hub import resolve_model

    folder = tmp_path / "my-clap"
    shutil.copytree(tiny_model, folder)
    first = resolve_model(str(folder)).revision
    # Same size and time stamp, other bytes: only a fresh hash would notice.
    weights = next(folder.glob("*.safetensors"))
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert resolve_model(str(folder)).revision == first  # from the cache: not read again
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert resolve_model(str(folder)).revision != first  # touched: hashed again


def test_tokenizer_and_text_vectors_tell_prompts_apart(tiny_model: Path) -> None:
    embedder = ClapEmbedder(resolve_model(str(tiny_model)))
    prompts = ["warm lo-fi piano", "punchy kick drum", "airy vocal pad"]
    ids = [tuple(embedder.processor.tokenizer(p)["input_ids"]) for p in prompts]
    assert len(set(ids)) == 3, "different prompts must get different token ids"
    unk = embedder.processor.tokenizer.unk_token_id
    assert all(unk not in seq for seq in ids)
    vectors = embedder.embed_text(prompts)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_text_search_ranks_the_named_family_first(tiny_model: Path, tmp_path: Path) -> None:
    folder = make_library_folder(tmp_path / "samples", 16)  # 4 of each family, 2 packs
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])
    try:
        for query, family in (("kick", "kick"), ("a deep kick", "kick"), ("hi-hat", "hihat"),
                              ("warm pad", "pad"), ("sub bass", "bass"), ("hihat", "hihat")):
            hits = search_text(library, query, k=16).hits
            top = [Path(h.file.path).name.split("_")[0] for h in hits[:4]]
            assert top == [family] * 4, (query, top)
            assert family not in {Path(h.file.path).name.split("_")[0] for h in hits[4:]}
    finally:
        library.close()


def test_a_very_long_query_is_truncated_at_the_models_positions(tiny_model: Path,
                                                                 tmp_path: Path) -> None:
    import json

    embedder = ClapEmbedder(resolve_model(str(tiny_model)))
    assert embedder.processor.tokenizer.model_max_length == 512  # as the real checkpoints'
    assert embedder.max_text_tokens == 512
    pasted = "kick " * 20000  # 100k characters
    vector = embedder.embed_text([pasted])[0]
    assert np.isfinite(vector).all() and abs(np.linalg.norm(vector) - 1) < 1e-5

    # A tokenizer saved without model_max_length (it then reports 1e30): the cap comes from the
    # text tower's position table, not from the tokenizer.
    folder = tmp_path / "no-max-length"
    shutil.copytree(tiny_model, folder)
    config_file = folder / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config.pop("model_max_length", None)
    config_file.write_text(json.dumps(config))
    bare = ClapEmbedder(resolve_model(str(folder)))
    assert bare.processor.tokenizer.model_max_length > 10**6
    assert bare.max_text_tokens == 512
    assert np.allclose(bare.embed_text([pasted]), vector[None], atol=1e-6)


def test_missing_model_says_what_to_do() -> None:
    with pytest.raises(ModelUnavailable) as caught:
        resolve_model("nobody/no-such-clap", allow_download=True)
    message = str(caught.value)
    assert "nobody/no-such-clap" in message
    assert "could not be downloaded" in message
    assert "--model /path/to/folder" in message


# -- audio ------------------------------------------------------------------------------------------

def test_same_sound_at_any_rate_gives_the_same_vector(
        tiny_model: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    embedder = ClapEmbedder(resolve_model(str(tiny_model)))
    caplog.set_level(logging.WARNING)
    feats, vectors = [], []
    for rate in (22050, 44100, 48000, 96000):
        path = write_sound(tmp_path / f"tone_{rate}.wav", tone(2.0, rate, seed=1), rate, "FLOAT")
        decoded = audio.decode_for_index(path, embedder.sampling_rate)
        assert abs(decoded.windows[0].size - 2.0 * embedder.sampling_rate) <= 2
        pooled = embedder.pooled_features([decoded.windows])
        feats.append(pooled[0])
        vectors.append(embedder.project_audio(pooled)[0])
    other = audio.decode_for_index(
        write_sound(tmp_path / "other.wav", family_sound("hihat", 3, 44100, 2.0)), 48000)
    other_feat = embedder.pooled_features([other.windows])[0]
    other_vector = embedder.project_audio(other_feat[None])[0]

    def cos(a: np.ndarray, b: np.ndarray) -> float:
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    # The test model's heads are fitted to tell sounds apart, so a 22 kHz file's missing top
    # octave shows a little in its vector; it must still be far nearer the same tone at any
    # rate than a different sound is.
    for v in vectors[1:]:
        assert cos(vectors[0], v) >= 0.95
        assert cos(vectors[0], v) > cos(vectors[0], other_vector) + 0.1
    # The encoder really tells sounds apart: the same tone at four rates is closer to itself
    # than to a different sound, so the check above is not passing by accident.
    same = min(cos(feats[0], f) for f in feats[1:])
    assert same >= 0.99
    assert same > cos(feats[0], other_feat)
    assert not [r for r in caplog.records if "sampling_rate" in r.getMessage()]


def test_long_files_are_embedded_as_fixed_evenly_spaced_windows(tmp_path: Path) -> None:
    path = write_sound(tmp_path / "long.wav", tone(35.0, 44100, seed=2), 44100)
    first = audio.decode_for_index(path, 48000)
    again = audio.decode_for_index(path, 48000)
    assert len(first.windows) == 4
    assert all(w.size == 480000 for w in first.windows)
    for a, b in zip(first.windows, again.windows):
        assert np.array_equal(a, b)
    starts = audio.window_starts(35 * 44100, 10 * 44100)
    assert starts[0] == 0 and starts[-1] == 25 * 44100
    assert audio.window_starts(3600 * 44100, 10 * 44100) == sorted(set(
        audio.window_starts(3600 * 44100, 10 * 44100)))
    assert len(audio.window_starts(3600 * 44100, 10 * 44100)) == audio.MAX_WINDOWS


@pytest.mark.parametrize("fmt,subtype,channels", [
    ("WAV", "PCM_U8", 1), ("WAV", "PCM_16", 2), ("WAV", "PCM_24", 1), ("WAV", "PCM_32", 2),
    ("WAV", "FLOAT", 1), ("WAV", "DOUBLE", 2), ("AIFF", "PCM_16", 2), ("FLAC", "PCM_24", 1),
    ("OGG", "VORBIS", 2), ("MP3", "MPEG_LAYER_III", 1),
])
def test_every_common_format_and_depth_indexes(tiny_model: Path, tmp_path: Path, fmt: str,
                                               subtype: str, channels: int) -> None:
    ext = {"WAV": "wav", "AIFF": "aiff", "FLAC": "flac", "OGG": "ogg", "MP3": "mp3"}[fmt]
    folder = tmp_path / "samples"
    folder.mkdir()
    sf.write(folder / f"sound.{ext}", tone(1.0, 44100, channels=channels), 44100,
             format=fmt, subtype=subtype)
    library = Library(model=str(tiny_model))
    report = library.index_folders([str(folder)])
    assert report.failed == [] and report.indexed == 1
    record = library.catalog.file_by_path(folder / f"sound.{ext}")
    assert record is not None and record.channels == channels and record.format == fmt
    assert abs(record.duration - 1.0) < 0.1
    library.close()


# -- indexing -------------------------------------------------------------------------------------

def test_rescan_rename_delete(tiny_model: Path, tmp_path: Path) -> None:
    folder = make_library_folder(tmp_path / "samples")
    library = Library(model=str(tiny_model))
    first = library.index_folders([str(folder)])
    assert first.indexed == 8 and first.decoded == 8

    again = library.index_folders([str(folder)])
    assert again.unchanged == 8 and again.indexed == 0
    assert again.decoded == 0, "an unchanged folder must not be decoded"

    old = folder / "pack0" / "kick_00.wav"
    before_id = library.catalog.file_by_path(old).id
    before_vector = vector_of(library, old)
    new = folder / "pack1" / "renamed kick.wav"
    os.rename(old, new)
    moved = library.index_folders([str(folder)])
    assert moved.decoded == 0, "a renamed file keeps its vector without decoding"
    assert moved.moved == 1 and moved.removed == 0
    assert library.catalog.file_by_path(old) is None
    assert library.catalog.file_by_path(new).id == before_id
    assert np.array_equal(vector_of(library, new), before_vector)

    victim = folder / "pack1" / "hihat_01.wav"
    victim_id = library.catalog.file_by_path(victim).id
    victim.unlink()
    gone = library.index_folders([str(folder)])
    assert gone.removed == 1
    hits = search_similar(library, str(new), k=50).hits
    assert victim_id not in {h.file.id for h in hits}
    assert len(hits) == 6
    library.close()


def test_same_file_twice_gives_identical_vectors_and_is_embedded_once(
        tiny_model: Path, tmp_path: Path) -> None:
    folder = make_library_folder(tmp_path / "samples", 4)
    shutil.copy(folder / "pack0" / "kick_00.wav", folder / "pack1" / "kick copy.wav")
    library = Library(model=str(tiny_model))
    report = library.index_folders([str(folder)])
    assert report.indexed == 5 and report.duplicates == 1
    assert np.array_equal(vector_of(library, folder / "pack0" / "kick_00.wav"),
                          vector_of(library, folder / "pack1" / "kick copy.wav"))
    library.close()

    other = Library(tmp_path / "second-library", model=str(tiny_model))
    other.index_folders([str(folder)])
    first = Library(model=str(tiny_model))
    assert np.array_equal(vector_of(first, folder / "pack0" / "kick_00.wav"),
                          vector_of(other, folder / "pack0" / "kick_00.wav"))
    first.close()
    other.close()


def test_corrupt_index_is_rebuilt_quietly(tiny_model: Path, tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    folder = make_library_folder(tmp_path / "samples")
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])
    index_file = library.vector_index().path
    expected = [h.file.path for h in search_similar(library, str(folder / "pack0" / "kick_00.wav"), k=5).hits]
    library.close()
    index_file.write_bytes(b"\x00garbage" * 100)

    caplog.set_level(logging.INFO, logger="clapdesk")
    reopened = Library()
    hits = search_similar(reopened, str(folder / "pack0" / "kick_00.wav"), k=5).hits
    assert [h.file.path for h in hits] == expected
    assert any("rebuilding" in r.getMessage() or "rebuilt" in r.getMessage() for r in caplog.records)
    reopened.close()


def test_switching_the_model_re_embeds(tiny_model: Path, tiny_model_b: Path, tmp_path: Path
                                       ) -> None:
    folder = make_library_folder(tmp_path / "samples", 4)
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])
    first_key = library.model_key
    kick = folder / "pack0" / "kick_00.wav"
    first_vector = vector_of(library, kick)
    library.close()

    switched = Library(model=str(tiny_model_b))
    assert switched.model_key != first_key
    report = switched.index_folders([str(folder)])
    assert report.decoded == 4 and report.indexed == 4
    assert not np.allclose(vector_of(switched, kick), first_vector)
    switched.close()
    # The library remembers its (new) model.
    assert Library().model_ref == str(tiny_model_b)


def test_search_filters(tiny_model: Path, tmp_path: Path) -> None:
    folder = make_library_folder(tmp_path / "samples")
    write_sound(folder / "pack0" / "long pad.flac", tone(6.0, 44100), 44100)
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])

    inside = search_text(library, "kick", k=50, filters=Filters(folder=str(folder / "pack1"))).hits
    assert inside and all("/pack1/" in h.file.path for h in inside)
    scores = [h.score for h in inside]
    assert scores == sorted(scores, reverse=True)
    basses = search_text(library, "bass", k=2, filters=Filters(folder=str(folder / "pack1"))).hits
    assert sorted(Path(h.file.path).name for h in basses) == ["bass_03.wav", "bass_07.wav"]

    long_only = search_text(library, "pad", k=50, filters=Filters(min_duration=3.0)).hits
    assert [Path(h.file.path).name for h in long_only] == ["long pad.flac"]
    flac = search_text(library, "pad", k=50, filters=Filters(formats=("FLAC",))).hits
    assert [h.file.format for h in flac] == ["FLAC"]
    short = search_text(library, "pad", k=50, filters=Filters(max_duration=2.0)).hits
    assert len(short) == 8
    library.close()


def test_progress_cancel_and_resume(tiny_model: Path, tmp_path: Path) -> None:
    import threading

    folder = make_library_folder(tmp_path / "samples", 24)
    library = Library(model=str(tiny_model))
    cancel = threading.Event()
    seen = []

    def on_progress(progress) -> None:
        seen.append(progress)
        if progress.phase == "embedding" and progress.done >= 10:
            cancel.set()

    first = library.index_folders([str(folder)], progress=on_progress, cancel=cancel)
    assert first.cancelled and 0 < first.indexed < 24
    embedding = [p for p in seen if p.phase == "embedding"]
    assert embedding[0].total == 24 and embedding[-1].current.endswith(".wav")
    assert any(p.rate > 0 and p.eta is not None for p in embedding)
    assert library.catalog.integrity_ok()
    done_ids = library.catalog.vector_file_ids(library.model_key)
    assert len(done_ids) == first.indexed

    resumed = library.index_folders([str(folder)])
    assert not resumed.cancelled
    assert resumed.unchanged == first.indexed and resumed.indexed == 24 - first.indexed
    assert len(library.catalog.vector_file_ids(library.model_key)) == 24
    assert len(library.vector_index()) == 24
    library.close()


def test_constraints_never_leave_results_empty_while_matches_exist(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.search import ranking as search

    folder = make_library_folder(tmp_path / "samples", 16)
    for i, name in enumerate(["Dusty Loop 92bpm Am.wav", "Keys Loop 90bpm Am.wav",
                              "Keys Loop 180bpm Am.wav", "Keys Loop 120bpm Am.wav"]):
        write_sound(folder / "loops" / name, tone(3.0, 44100, freq=220 + 20 * i, seed=i))
    library = Library(model=str(tiny_model))
    library.index_folders([str(folder)])

    def names(response: search.SearchResponse) -> list[str]:
        return sorted(Path(h.file.path).name for h in response.hits)

    wanted = ["Dusty Loop 92bpm Am.wav", "Keys Loop 180bpm Am.wav", "Keys Loop 90bpm Am.wav"]
    through_ann = search_text(library, "keys loop at 90 BPM in A minor", k=10)
    assert names(through_ann) == wanted
    notes = {Path(h.file.path).name: h.note for h in through_ann.hits}
    assert notes["Keys Loop 180bpm Am.wav"] == "double" and notes["Keys Loop 90bpm Am.wav"] is None
    assert through_ann.query.to_json()["key"] == "A minor"

    # Make the ANN stage give up at once: the exact filtered search must find the same files.
    monkeypatch.setattr(search, "ANN_MIN_CANDIDATES", 1)
    monkeypatch.setattr(search, "ANN_OVERFETCH", 1)
    monkeypatch.setattr(search, "ANN_MAX_CANDIDATES", 1)
    exact = search_text(library, "keys loop at 90 BPM in A minor", k=10)
    assert exact.exact and names(exact) == wanted
    scores = [h.score for h in exact.hits]
    assert scores == sorted(scores, reverse=True)
    assert search_text(library, "loop at 140 BPM", k=10).hits == []
    library.close()


def test_bfloat16_precision_gives_nearly_the_float32_vectors(tiny_model: Path, tmp_path: Path) -> None:
    identity = resolve_model(str(tiny_model))
    full, half = ClapEmbedder(identity), ClapEmbedder(identity, precision="bfloat16")
    windows = [audio.decode_for_index(
        write_sound(tmp_path / f"{family}.wav", family_sound(family, 1)), 48000).windows[0]
        for family in ("kick", "pad", "hihat")]
    a = full.project_audio(full.pooled_features([[w] for w in windows]))
    b = half.project_audio(half.pooled_features([[w] for w in windows]))
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.999
    assert not np.array_equal(a, b), "bfloat16 really ran in reduced precision"


def test_channels_mix_to_their_mean_and_broken_samples_to_silence() -> None:
    from clapdesk.core.ingest.audio import to_mono

    rng = np.random.default_rng(3)
    for channels in (1, 2, 6):
        block = rng.standard_normal((1000, channels)).astype(np.float32)
        mono = to_mono(block)
        assert mono.dtype == np.float32 and mono.shape == (1000,) and mono.flags.c_contiguous
        assert np.allclose(mono, block.mean(axis=1), atol=1e-6)
    stereo = np.array([[1.0, np.nan], [np.inf, 0.5], [0.25, 0.25]], np.float32)
    assert to_mono(stereo).tolist() == [0.0, 0.0, 0.25]
    flat = np.arange(4, dtype=np.float64)
    assert to_mono(flat).dtype == np.float32 and to_mono(flat).tolist() == [0, 1, 2, 3]


def test_float16_on_a_cpu_is_refused_with_what_to_choose_instead(tiny_model: Path) -> None:
    from clapdesk.core.embed.hub import ModelError

    with pytest.raises(ModelError, match="float16 precision is for a GPU.*float32, int8 or bfloat16"):
        ClapEmbedder(resolve_model(str(tiny_model)), device="cpu", precision="float16")
