"""The window and the text tower's health: said under the search box, offered once, never noise."""

from __future__ import annotations

from pathlib import Path

from conftest import family_sound, write_sound

from clapdesk.core.embed.known_models import RECOMMENDED
from clapdesk.core.library import Library
from clapdesk.core.model_switch import TOLD_KEY
from clapdesk.gui.model_control import READY, UNAVAILABLE
from clapdesk.gui.results_model import MATCH


def index_families(folder: Path, model: Path) -> None:
    for i, family in enumerate(["kick", "hihat", "pad", "bass"] * 2):
        write_sound(folder / f"{family}_{i}.wav", family_sound(family, i))
    library = Library(model=str(model))
    try:
        library.index_folders([str(folder)])
    finally:
        library.close()


def wait_ready(qtbot, window) -> None:  # noqa: ANN001
    qtbot.waitUntil(lambda: window.model_ctl.state in (READY, UNAVAILABLE), timeout=60000)
    assert window.model_ctl.state == READY, window.model_ctl.message


def test_an_untrained_text_tower_is_said_where_the_search_box_is(
        qtbot, make_window, untrained_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_families(tmp_path / "samples", untrained_model)
    window = make_window(model=str(untrained_model))
    wait_ready(qtbot, window)
    qtbot.waitUntil(lambda: window.search.notice.isVisible(), timeout=5000)
    assert window.search.notice.text().startswith("Text search is off for ")
    assert RECOMMENDED in window.search.notice.text()
    window.model.set_hits([], scored=False)
    window.search.set_text("kick")
    qtbot.waitUntil(lambda: "Text search is off" in window.title.text(), timeout=10000)
    assert window.model.rowCount() == 0, "no noise listed as results"
    assert window.search.notice.isVisible()


def test_a_trained_model_shows_no_notice_and_readable_matches(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_families(tmp_path / "samples", tiny_model)
    window = make_window()
    wait_ready(qtbot, window)
    assert not window.search.notice.isVisible()
    window.search.set_text("kick")
    qtbot.waitUntil(lambda: window.model.rowCount() > 0 and window.model.scored, timeout=10000)
    first = window.proxy.index(0, MATCH)
    assert first.data().endswith(" %") and 0 < int(first.data().split()[0]) < 100
    names = [window.model.hit(r).file.name for r in range(2)]
    assert all(n.startswith("kick_") for n in names), names
    assert not hasattr(window, "switch_offer")


def test_a_larger_clap_music_library_is_offered_the_switch_once(
        qtbot, make_window, tiny_model: Path, tmp_path: Path) -> None:  # noqa: ANN001
    index_families(tmp_path / "samples", tiny_model)
    library = Library(model=str(tiny_model))
    library.catalog.set_meta("model", "laion/larger_clap_music")  # built by an older clapdesk
    library.close()
    window = make_window()
    wait_ready(qtbot, window)
    qtbot.waitUntil(lambda: hasattr(window, "switch_offer"), timeout=5000)
    box = window.switch_offer
    assert "laion/larger_clap_music" in box.text() and "re-embeds 8 files" in box.text()
    switch = next(b for b in box.buttons() if RECOMMENDED in b.text())
    switch.click()
    assert window.settings.get("model") == RECOMMENDED
    assert window.library.catalog.get_meta(TOLD_KEY) == "laion/larger_clap_music"
    second = make_window()
    wait_ready(qtbot, second)
    assert not hasattr(second, "switch_offer"), "told once"


def test_settings_say_what_the_chosen_model_is(qtbot) -> None:  # noqa: ANN001
    from clapdesk.gui.settings import Settings
    from clapdesk.gui.settings_dialog import SettingsDialog

    dialog = SettingsDialog(Settings(), [])
    qtbot.addWidget(dialog)
    info = dialog.model_info
    assert "HTSAT-base" in info.text() and "776 MB" in info.text()  # the default
    dialog.editors["model"].setText("laion/larger_clap_music")
    assert "untrained" in info.text()
    dialog.editors["model"].setText("laion/clap-htsat-fused")
    assert "HTSAT-tiny" in info.text() and "longer" in info.text()
    dialog.editors["model"].setText("/some/folder")
    assert "checked when it loads" in info.text()
