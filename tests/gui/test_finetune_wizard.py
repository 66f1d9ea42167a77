"""The fine-tuning wizard: preview and words not taught, background training, what changed in
words, the chart's legend and details, accept, discard, and a run with nothing to gain."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import family_sound, write_sound
from finetune_models import random_audio_head
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from clapdesk.core.finetune import versions
from clapdesk.core.library import Library
from clapdesk.gui.finetune_wizard import FineTuneWizard

TIMEOUT_MS = 120000
PACKS = ("Millo Kit", "Beta Pack", "Gamma Pack", "Delta Pack", "Omega Pack")
FAMILIES = ("kick", "pad", "hihat")


@pytest.fixture(scope="module")
def random_heads(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Path:
    return random_audio_head(tiny_model, tmp_path_factory.mktemp("random-heads"))


def tagged_library(tmp_path: Path, model: Path) -> Library:
    samples = tmp_path / "samples"
    for p, pack in enumerate(PACKS):
        for family in FAMILIES:
            for i in range(3):
                write_sound(samples / pack / family / f"{family}_{i + 1}.wav",
                            family_sound(family, 10 * p + i, seconds=0.5))
    library = Library(tmp_path / "library", model=str(model))
    library.index_folders([str(samples)])
    return library


def train(qtbot, wizard: FineTuneWizard) -> None:  # noqa: ANN001
    wizard.show()
    wizard.next()
    assert wizard.currentPage() is wizard.preview and wizard.preview.isComplete()
    wizard.next()  # starts training on the wizard's own pool
    qtbot.waitUntil(lambda: wizard.result is not None, timeout=TIMEOUT_MS)


def test_wizard_trains_in_the_background_says_what_changed_and_accept_activates(
        qtbot, tmp_path: Path, random_heads: Path) -> None:  # noqa: ANN001
    library = tagged_library(tmp_path, random_heads)
    base_key = library.model_key
    wizard = FineTuneWizard(library)
    qtbot.addWidget(wizard)
    wizard.show()
    assert not wizard.sources.include_splice.isVisible()  # no Splice folder here
    wizard.next()
    preview = wizard.preview
    texts = [preview.table.item(r, 1).text() for r in range(preview.table.rowCount())]
    assert texts and any("kick" in t or "pad" in t for t in texts)
    assert not any("millo" in t for t in texts)
    # Pack names are listed as not taught; ticking one teaches it anyway.
    listed = {preview.excluded.item(r).data(Qt.ItemDataRole.UserRole): preview.excluded.item(r)
              for r in range(preview.excluded.count())}
    assert "millo" in listed and "pack or author name" in listed["millo"].text()
    listed["millo"].setCheckState(Qt.CheckState.Checked)
    wizard.next()
    assert wizard.options().restore_tags == ("millo",)
    qtbot.waitUntil(lambda: wizard.result is not None, timeout=TIMEOUT_MS)
    result = wizard.result
    assert result.saved, result.reason
    assert library.model_key == base_key  # nothing is active before the user accepts
    wizard.next()
    page = wizard.results
    assert wizard.currentPage() is page
    assert "got better in packs it never saw" in page.words.text()
    assert "best matches for '" in page.words.text()
    assert page.chart.after == result.after and page.chart.before == result.before
    assert not page.details.isVisible()
    page.details_button.click()
    assert page.details.isVisible()
    assert page.table.item(2, 1).text() == f"{result.after['R@10']:.3f}"
    assert f"'{result.chosen['setting']}'" in page.explain.text()
    assert wizard.buttonText(QWizard.WizardButton.FinishButton) == "Accept"
    with qtbot.waitSignal(wizard.modelChanged, timeout=5000) as signal:
        wizard.accept()
    assert signal.args == [f"{base_key}+{result.version}"]
    assert library.active_version == result.version
    assert wizard.wait()
    library.close()


def test_a_run_with_nothing_to_gain_saves_nothing_and_says_why(
        qtbot, tmp_path: Path, random_heads: Path) -> None:  # noqa: ANN001
    library = tagged_library(tmp_path, random_heads)
    # Words the sound cannot tell apart: every family of every pack gets each word once.
    table = tmp_path / "nonsense.csv"
    rows = ["path,tags"]
    for folder in sorted({f.parent for f in (tmp_path / "samples").rglob("*.wav")}):
        for f, word in zip(sorted(folder.glob("*.wav")), ("alpha", "beta", "gamma")):
            rows.append(f"{f},{word}")
    table.write_text("\n".join(rows) + "\n")
    wizard = FineTuneWizard(library)
    qtbot.addWidget(wizard)
    for box in (wizard.sources.folder, wizard.sources.filename, wizard.sources.user):
        box.setChecked(False)
    wizard.sources.use_csv.setChecked(True)
    wizard.sources.csv_path.setText(str(table))
    train(qtbot, wizard)
    assert not wizard.result.saved
    assert "No new version" in wizard.training.status.text()
    wizard.next()
    assert "No new version:" in wizard.results.words.text()
    assert wizard.buttonText(QWizard.WizardButton.FinishButton) == "Close"
    with qtbot.assertNotEmitted(wizard.modelChanged):
        wizard.accept()
    assert versions.list_versions(library.paths.models) == []
    assert library.active_version is None
    library.close()


def test_wizard_discard_deletes_the_version_and_bad_input_blocks(
        qtbot, tmp_path: Path, random_heads: Path) -> None:  # noqa: ANN001
    library = tagged_library(tmp_path, random_heads)
    wizard = FineTuneWizard(library)
    qtbot.addWidget(wizard)
    train(qtbot, wizard)
    assert wizard.result.saved and versions.list_versions(library.paths.models)
    wizard.reject()
    assert versions.list_versions(library.paths.models) == []
    assert library.active_version is None
    library.close()

    empty = Library(tmp_path / "empty", model=str(random_heads))
    wizard = FineTuneWizard(empty)
    qtbot.addWidget(wizard)
    wizard.show()
    wizard.next()
    assert not wizard.preview.isComplete()
    assert "at least 10" in wizard.preview.summary.text()
    wizard.reject()
    empty.close()
