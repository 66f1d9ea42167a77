"""The fine-tuning wizard: preview, background training, figures, accept or discard."""

from __future__ import annotations

from pathlib import Path

from conftest import family_sound, write_sound

from clapdesk.core.finetune import versions
from clapdesk.core.library import Library
from clapdesk.gui.finetune_wizard import FineTuneWizard

TIMEOUT_MS = 60000


def tagged_library(tmp_path: Path, tiny_model: Path) -> Library:
    samples = tmp_path / "samples"
    for p, pack in enumerate(("Alpha Pack", "Beta Pack", "Gamma Pack")):
        for family in ("kick", "pad"):
            for i in range(2):
                write_sound(samples / pack / family / f"{family}_{i + 1}.wav",
                            family_sound(family, 10 * p + i, seconds=0.5))
    library = Library(tmp_path / "library", model=str(tiny_model))
    library.index_folders([str(samples)])
    return library


def test_wizard_trains_in_the_background_and_accept_activates(
        qtbot, tmp_path: Path, tiny_model: Path) -> None:  # noqa: ANN001
    library = tagged_library(tmp_path, tiny_model)
    base_key = library.model_key
    wizard = FineTuneWizard(library)
    qtbot.addWidget(wizard)
    wizard.show()
    assert not wizard.sources.include_splice.isVisible()  # no Splice folder here
    wizard.next()
    assert wizard.currentPage() is wizard.preview and wizard.preview.isComplete()
    assert wizard.preview.table.rowCount() > 0
    texts = [wizard.preview.table.item(r, 1).text() for r in range(wizard.preview.table.rowCount())]
    assert any("kick" in t or "pad" in t for t in texts)

    wizard.next()  # starts training on the wizard's own pool
    qtbot.waitUntil(lambda: wizard.result is not None, timeout=TIMEOUT_MS)
    version = wizard.result.version
    assert library.model_key == base_key  # nothing is active before the user accepts
    wizard.next()
    assert wizard.currentPage() is wizard.results
    assert wizard.results.table.item(2, 1).text() == f"{wizard.result.after['R@10']:.3f}"
    assert wizard.results.chart.after == wizard.result.after
    with qtbot.waitSignal(wizard.modelChanged, timeout=5000) as signal:
        wizard.accept()
    assert signal.args == [f"{base_key}+{version}"]
    assert library.active_version == version
    assert wizard.wait()
    library.close()


def test_wizard_discard_deletes_the_version_and_bad_input_blocks(
        qtbot, tmp_path: Path, tiny_model: Path) -> None:  # noqa: ANN001
    library = tagged_library(tmp_path, tiny_model)
    wizard = FineTuneWizard(library)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    wizard.next()
    qtbot.waitUntil(lambda: wizard.result is not None, timeout=TIMEOUT_MS)
    wizard.reject()
    assert versions.list_versions(library.paths.models) == []
    assert library.active_version is None
    library.close()

    empty = Library(tmp_path / "empty", model=str(tiny_model))
    wizard = FineTuneWizard(empty)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    assert not wizard.preview.isComplete()
    assert "at least 10" in wizard.preview.summary.text()
    wizard.reject()
    empty.close()
