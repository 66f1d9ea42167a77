"""Who owns threads and connections: each thread has its own catalog connection, and a query's
one-thread torch setting stays on the thread that runs queries."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from clapdesk.core.library import Library


def test_one_threads_write_never_commits_another_threads_half_done_edit(tmp_path: Path) -> None:
    """The window, the model pool and the general pool all hold the same Library. A favourite
    toggled on one thread while another is halfway through a tag edit must not commit the
    half edit, which then can no longer be rolled back."""
    library = Library(tmp_path / "library", model=str(tmp_path / "no-model"), allow_download=False)
    try:
        with library.catalog.transaction():
            edited = library.catalog.upsert_file(str(tmp_path / "a.wav"), None, 1, 1, None)
            liked = library.catalog.upsert_file(str(tmp_path / "b.wav"), None, 1, 1, None)
        halfway, favourite_done = threading.Event(), threading.Event()

        def toggle_favourite() -> None:
            halfway.wait(10)
            library.catalog.add_favourite(liked)  # commits at once
            favourite_done.set()

        other = threading.Thread(target=toggle_favourite)
        other.start()
        with pytest.raises(RuntimeError, match="halfway"):
            with library.catalog.transaction():
                library.catalog.set_tags(edited, [("half-written", 1.0)], "user")
                halfway.set()
                # With its own connection the other thread waits for this write to end; with a
                # shared one it commits the tag above right away.
                favourite_done.wait(2)
                raise RuntimeError("the edit fails halfway")
        other.join(30)
        assert library.catalog.tags_of([edited])[edited] == []  # rolled back, as it should be
        assert library.catalog.favourites() == [liked]  # and the other thread's write landed
    finally:
        library.close()


def count_on_a_new_thread() -> int:
    """The torch thread count a thread gets when it starts torch."""
    import torch

    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_a_query_leaves_other_threads_on_torchs_thread_count(tiny_model: Path) -> None:
    """Queries run torch on one thread. Setting that around each query on a shared thread also
    set the count of any thread that first ran torch meanwhile (an indexing run started while a
    query ran stayed single-threaded for good)."""
    import torch

    from clapdesk.core.embed.embedder import load_embedder

    embedder = load_embedder(str(tiny_model), device="cpu")
    chosen = count_on_a_new_thread()  # what torch gives a thread that starts it
    during: dict[str, int] = {}

    def while_the_query_runs(_module: object, _inputs: object) -> None:
        during["query"] = torch.get_num_threads()
        during["new thread"] = count_on_a_new_thread()

    hook = embedder.model.text_model.register_forward_pre_hook(while_the_query_runs)
    try:
        caller_before = torch.get_num_threads()
        embedder.embed_text(["dusty kick"])
    finally:
        hook.remove()
    assert during["query"] == 1  # the query itself still runs on one thread
    assert during["new thread"] == chosen, "a thread started during a query lost its cores"
    assert torch.get_num_threads() == caller_before
    assert count_on_a_new_thread() == chosen


def test_fine_tuning_runs_on_its_own_one_thread_lane_and_leaves_other_threads_alone() -> None:
    """Fine-tuning's small heads train on one torch thread. Setting and restoring the count
    around training (as it used to) changed it for every thread that started torch meanwhile;
    the training lane is pinned once, and the caller and new threads keep torch's count."""
    import torch

    from clapdesk.core.embed import torch_threads

    chosen = count_on_a_new_thread()
    caller_before = torch.get_num_threads()

    def training() -> tuple[int, int, str]:
        return (torch.get_num_threads(), count_on_a_new_thread(),
                threading.current_thread().name)

    inside, new_thread, name = torch_threads.on_one_thread(training, torch_threads.TRAINING)
    assert inside == 1 and new_thread == chosen
    assert name.startswith("clapdesk-training")  # not the query lane: searches never wait on it
    assert torch.get_num_threads() == caller_before
    torch_threads.shutdown()
