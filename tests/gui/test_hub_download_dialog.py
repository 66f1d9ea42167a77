"""The window's first start against a stand-in hub: download with speed and time left, stop it,
resume it (fetching only the rest), and a model ready at the end."""

from __future__ import annotations

from pathlib import Path

from hub_fixtures import (  # noqa: F401 - fixtures
    REPO,
    fresh_hub_cache_fixture,
    padded_weights,
    served_repo,
    standin_fixture,
)
from standin_hub import StandinHub

from clapdesk.gui.model_control import READY, UNAVAILABLE


def test_the_download_shows_speed_and_time_left_stops_and_resumes(
        qtbot, make_window, standin: StandinHub, fresh_hub_cache: Path, tiny_model: Path,  # noqa: ANN001
        tmp_path: Path) -> None:
    files = served_repo(tiny_model)
    files["model.safetensors"] = padded_weights(tiny_model, tmp_path / "big.safetensors", 16)
    standin.add_commit(REPO, files)
    size = standin.file(REPO, "model.safetensors").size
    standin.faults.bytes_per_s = 4e6  # a slow line: about four seconds for the file
    window = make_window(model=REPO)
    qtbot.waitUntil(lambda: getattr(window, "download_dialog", None) is not None, timeout=20000)
    dialog = window.download_dialog
    assert not dialog.stop_button.isVisible()
    dialog.download_button.click()
    assert dialog.stop_button.isVisible()
    qtbot.waitUntil(lambda: "MB/s" in dialog.detail.text() and "left" in dialog.detail.text(),
                    timeout=20000)
    assert " of " in dialog.bar.format() and dialog.bar.format().endswith("MB")
    dialog.stop_button.click()
    qtbot.waitUntil(lambda: window.model_ctl.state == UNAVAILABLE, timeout=20000)
    assert dialog.bar.format() == "Stopped"
    assert "are kept" in dialog.detail.text() and "\n" not in dialog.detail.text()
    assert dialog.download_button.text() == "Resume download"
    assert dialog.download_button.isEnabled() and not dialog.stop_button.isVisible()
    fetched_before = standin.served["model.safetensors"]
    assert 0 < fetched_before < size

    standin.faults.bytes_per_s = None
    dialog.download_button.click()
    qtbot.waitUntil(lambda: window.model_ctl.state == READY, timeout=60000)
    assert standin.served["model.safetensors"] <= 1.3 * size
    assert window.library.identity.ref == REPO


def test_a_failed_download_shows_its_one_plain_reason_in_the_dialog(
        qtbot, make_window, standin: StandinHub, fresh_hub_cache: Path,  # noqa: ANN001
        tiny_model: Path) -> None:
    standin.add_commit(REPO, served_repo(tiny_model))
    standin.file(REPO, "model.safetensors").claimed_size = 10**15  # no disk holds it
    window = make_window(model=REPO)
    qtbot.waitUntil(lambda: getattr(window, "download_dialog", None) is not None, timeout=20000)
    dialog = window.download_dialog
    dialog.download_button.click()
    qtbot.waitUntil(lambda: window.model_ctl.state == UNAVAILABLE, timeout=20000)
    assert dialog.bar.format() == "Download failed"
    assert dialog.detail.text().startswith("Not enough free disk space for the model")
    assert standin.served["model.safetensors"] == 0
