"""The first minutes of a first indexing run: searching files the model has not heard yet, and the
model loading while the first files decode and while a new folder is scanned (the time left on
a run's real schedule is in test_time_left.py)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from conftest import tone, write_sound

from clapdesk.core.index.report import Progress


def _folder(root: Path) -> Path:
    """Names that say what the sounds are: a kick, a loop at 90 BPM in A minor, a long kick."""
    folder = root / "Pack"
    write_sound(folder / "Dusty Loop 90bpm Am.wav", tone(3.0, freq=110.0))
    write_sound(folder / "Drums" / "Kick_808_Punchy.wav", tone(0.6, freq=55.0, seed=1))
    write_sound(folder / "Drums" / "Kick Long Tail.wav", tone(5.0, freq=50.0, seed=2))
    for i in range(6):
        write_sound(folder / "Pads" / f"Warm Pad {i + 1} C.wav", tone(2.0, freq=262.0 + i, seed=3 + i))
    return folder


def _names(hits: list) -> list[str]:  # noqa: ANN001
    return [Path(h.file.path).name for h in hits]


class _Gate:
    """Holds the indexing thread at a chosen moment so the test can search there."""

    def __init__(self) -> None:
        self.reached = threading.Event()
        self.release = threading.Event()

    def hold(self) -> None:
        self.reached.set()
        assert self.release.wait(120), "the test never let indexing go on"


def _index_in_thread(library, folder: Path, progress) -> tuple[threading.Thread, list]:  # noqa: ANN001
    errors: list[BaseException] = []

    def run() -> None:
        try:
            library.index_folders([str(folder)], progress=progress)
        except BaseException as exc:  # re-raised by the test
            errors.append(exc)

    thread = threading.Thread(target=run, name="test-index")
    thread.start()
    return thread, errors


def test_search_while_the_model_loads_finds_new_files_by_name_and_constraints(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import search_text

    folder = _folder(tmp_path)
    library = Library(model=str(tiny_model))
    load = _Gate()
    real_embedder = library.embedder

    def slow_model():  # noqa: ANN202 - the model's load, held until the test has searched
        load.hold()
        return real_embedder()

    monkeypatch.setattr(library, "embedder", slow_model)
    catalogued = threading.Event()

    def progress(p: Progress) -> None:
        if p.phase == "loading model" and p.not_heard >= 9:
            catalogued.set()

    thread, errors = _index_in_thread(library, folder, progress)
    try:
        assert load.reached.wait(60) and catalogued.wait(60), errors
        assert library.model_loading and not library.model_loaded
        kicks = search_text(library, "kick")
        assert kicks.model_loading and kicks.not_heard == 9
        assert set(_names(kicks.hits)) == {"Kick_808_Punchy.wav", "Kick Long Tail.wav"}
        assert all(not h.heard and h.cosine is None and h.match is None for h in kicks.hits)
        # The header's length answers a length constraint before any decoding.
        short = search_text(library, "kick under 2 s")
        assert _names(short.hits) == ["Kick_808_Punchy.wav"]
        # Kind, tempo and key from the name: the loop, not the pads (in C) nor the kicks.
        loop = search_text(library, "dusty loop at 90 bpm in A minor")
        assert _names(loop.hits) == ["Dusty Loop 90bpm Am.wav"]
        assert search_text(library, "pad in A minor").hits == []
        # A folder word counts as a name word.
        assert len(search_text(library, "drums").hits) == 2
    finally:
        load.release.set()
        thread.join(120)
    assert not errors, errors
    done = search_text(library, "kick")
    assert done.not_heard == 0 and not done.model_loading
    heard = {Path(h.file.path).name: h for h in done.hits}
    assert heard["Kick_808_Punchy.wav"].heard and heard["Kick_808_Punchy.wav"].cosine is not None
    library.close()


def test_files_not_heard_yet_join_the_sound_ranking_after_it(tiny_model: Path,
                                                             tmp_path: Path) -> None:
    """The model is ready, no vector has landed: a text query lists the named files, marked."""
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import search_text

    folder = _folder(tmp_path)
    library = Library(model=str(tiny_model))
    first_file = _Gate()

    def progress(p: Progress) -> None:
        if p.phase == "embedding" and not first_file.reached.is_set():
            first_file.hold()  # one file received, its single window not embedded yet

    thread, errors = _index_in_thread(library, folder, progress)
    try:
        assert first_file.reached.wait(120), errors
        assert library.model_loaded and len(library.vector_index()) == 0
        response = search_text(library, "kick drums")
        assert not response.model_loading and response.not_heard == 9
        assert {"Kick_808_Punchy.wav", "Kick Long Tail.wav"} <= set(_names(response.hits))
        assert not any(h.heard for h in response.hits)
        # Every word named ranks first: "kick drums" is both kicks (in Drums/), the rest none.
        assert set(_names(response.hits)[:2]) == {"Kick_808_Punchy.wav", "Kick Long Tail.wav"}
    finally:
        first_file.release.set()
        thread.join(120)
    assert not errors, errors
    library.close()


def test_what_the_model_has_heard_shows_from_the_first_file_of_a_large_run(
        tiny_model: Path, tmp_path: Path) -> None:
    """240 kicks, the first model call's four heard: a search for "kick" still shows them,
    ranked by their sound, above the named files. The named files' share of 50 places, rounded
    up (236 of 240 waiting), used to take all 50."""
    from clapdesk.core.library import Library
    from clapdesk.core.search.ranking import search_text

    folder = tmp_path / "Kicks"
    for i in range(240):
        write_sound(folder / f"Kick {i:03d}.wav", tone(0.3, freq=50.0 + i / 4, seed=i))
    library = Library(model=str(tiny_model))
    first_heard = _Gate()

    def progress(p: Progress) -> None:
        if (p.phase == "embedding" and not first_heard.reached.is_set()
                and len(library.vector_index()) > 0):
            first_heard.hold()

    thread, errors = _index_in_thread(library, folder, progress)
    try:
        assert first_heard.reached.wait(120), errors
        response = search_text(library, "kick", k=50)
        heard = [h for h in response.hits if h.heard]
        assert response.not_heard > 200 and len(response.hits) == 50
        assert heard and all(h.cosine is not None for h in heard), response.not_heard
        assert response.hits[0].heard  # the sound ranking first, the named files after it
    finally:
        first_heard.release.set()
        thread.join(120)
    assert not errors, errors
    library.close()


def test_the_model_loads_while_the_first_files_decode(tiny_model: Path, tmp_path: Path) -> None:
    """The model's load cannot finish until three files have decoded: a pipeline that loaded
    first and decoded after would never get there (the load would time out and the run fail)."""
    from clapdesk.core.index import decoding
    from clapdesk.core.index.indexer import Indexer
    from clapdesk.core.index.model_loader import model_rate
    from clapdesk.core.library import Library
    from clapdesk.core.store.catalog import Catalog

    folder = _folder(tmp_path)
    library = Library(model=str(tiny_model))
    # Decoding threads at normal priority: the idle-priority decoder processes can wait minutes
    # for a core on a loaded machine, and the overlap is the pipeline's, whatever decodes.
    pool = decoding.DecodePool(2, processes=False)
    finished = threading.Semaphore(0)
    submit = pool.submit

    def counted_submit(fn, *args):  # noqa: ANN001, ANN202
        future = submit(fn, *args)
        if fn is decoding.decode_file:  # not the warm-up calls that start the processes
            future.add_done_callback(lambda _f: finished.release())
        return future

    pool.submit = counted_submit  # type: ignore[method-assign]

    def model_after_three_decodes():  # noqa: ANN202
        for _ in range(3):
            assert finished.acquire(timeout=120), "no file decoded while the model loaded"
        return library.embedder()

    catalog = Catalog(library.paths.catalog)
    try:
        indexer = Indexer(catalog, library.vector_index(), model_after_three_decodes,
                          decoders=pool, model_rate=lambda: model_rate(library.identity.folder))
        report = indexer.run([str(folder)])
    finally:
        catalog.close()
        pool.close()
    assert report.indexed == 9 and not report.failed
    line = indexer.timeline
    began, ready = line.first("model loading"), line.first("model ready")
    decoded = sorted(line.times("decoded"))
    assert began is not None and ready is not None and len(decoded) == 9
    # The decoders' own clock: at least three files were finished before the model was.
    assert sum(began < t < ready for t in decoded) >= 3, (began, ready, line.events)
    assert line.first("catalogued") is not None and line.first("catalogued") < ready
    library.close()


def test_a_folder_new_to_the_library_loads_the_model_while_it_is_scanned(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scan of a new folder cannot finish until the model has begun to load: a run that
    loaded after scanning would never get there (the scan would time out and the run fail).
    A run over the same folder, unchanged, loads no model at all."""
    from clapdesk.core.index import plan
    from clapdesk.core.index.indexer import Indexer
    from clapdesk.core.index.model_loader import model_rate
    from clapdesk.core.library import Library
    from clapdesk.core.store.catalog import Catalog

    folder = _folder(tmp_path)
    library = Library(model=str(tiny_model))
    loading = threading.Event()
    loads: list[int] = []

    def model():  # noqa: ANN202
        loads.append(1)
        loading.set()
        return library.embedder()

    walk = plan.walk_audio

    def walk_once_the_model_loads(folder_path):  # noqa: ANN001, ANN202
        assert loading.wait(120), "the scan finished before the model began to load"
        return walk(folder_path)

    catalog = Catalog(library.paths.catalog)
    try:
        with monkeypatch.context() as patched:
            patched.setattr(plan, "walk_audio", walk_once_the_model_loads)
            first = Indexer(catalog, library.vector_index(), model,
                            model_rate=lambda: model_rate(library.identity.folder))
            report = first.run([str(folder)])
        assert report.indexed == 9 and loads == [1]
        assert first.timeline.first("model loading") < first.timeline.first("scanned")
        again = Indexer(catalog, library.vector_index(), model,
                        model_rate=lambda: model_rate(library.identity.folder))
        report = again.run([str(folder)])
        assert report.indexed == 0 and report.unchanged == 9
        assert loads == [1] and again.timeline.first("model loading") is None
    finally:
        catalog.close()
    library.close()
