"""The one worker pattern: results, progress, cancel, and every error routed to one place."""

from __future__ import annotations

import threading

import pytest

from clapdesk.gui.workers import TaskRunner


@pytest.fixture
def runner(qtbot):  # noqa: ANN001
    runner = TaskRunner()
    yield runner
    assert runner.shutdown(10000), "a worker was still running"


def test_result_progress_and_finish_arrive_on_the_gui_thread(qtbot, runner: TaskRunner) -> None:  # noqa: ANN001
    seen: list[object] = []
    threads: set[object] = set()
    go = threading.Event()

    def job(n: int, progress) -> int:  # noqa: ANN001
        # Held until the test listens for `finished`: a job this short could otherwise finish,
        # and emit, before waitSignal connects (it did once, on a busy 2-core CI machine).
        assert go.wait(5)
        for i in range(n):
            progress(i)
        return n * 2

    def record(value: object) -> None:
        seen.append(value)
        threads.add(threading.current_thread())

    worker = runner.submit(job, 3, on_progress=record, on_result=record)
    with qtbot.waitSignal(worker.signals.finished, timeout=5000):
        go.set()
    qtbot.waitUntil(lambda: 6 in seen, timeout=2000)
    assert seen == [0, 1, 2, 6]
    assert threads == {threading.main_thread()}


def test_cancel_reaches_the_job_and_errors_go_to_failed(qtbot, runner: TaskRunner) -> None:  # noqa: ANN001
    started = threading.Event()

    def waits(cancel: threading.Event) -> str:
        started.set()
        return "cancelled" if cancel.wait(5) else "timed out"

    results: list[str] = []
    worker = runner.submit(waits, wants_cancel=True, on_result=results.append)
    assert started.wait(5)
    worker.cancel.set()
    qtbot.waitUntil(lambda: results == ["cancelled"], timeout=5000)

    def breaks() -> None:
        raise ValueError("the file is not a sound")

    with qtbot.waitSignal(runner.failed, timeout=5000) as failed:
        runner.submit(breaks, name="decode", pool="model")
    name, exc = failed.args
    assert name == "decode" and isinstance(exc, ValueError) and "not a sound" in str(exc)
