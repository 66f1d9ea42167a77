"""Model versions in the window: the list with each version's figures, activate, back to the
base model, delete."""

from __future__ import annotations

from pathlib import Path

from conftest import family_sound, write_sound

from clapdesk.core.finetune import versions
from clapdesk.core.library import Library
from clapdesk.core.store.model_key import ModelKey
from clapdesk.gui.versions_dialog import VersionsDialog


def library_with_versions(tmp_path: Path, tiny_model: Path) -> tuple[Library, list[str]]:
    samples = tmp_path / "samples"
    for i in range(6):
        family = ("kick", "pad")[i % 2]
        write_sound(samples / family / f"{family}_{i}.wav", family_sound(family, i, seconds=0.5))
    library = Library(tmp_path / "library", model=str(tiny_model))
    library.index_folders([str(samples)])
    embedder = library.embedder()
    names = []
    for n, p10 in enumerate((0.45, 0.7)):
        name = f"ft-test-{n}"
        info = {"base": embedder.encoder_key, "before": {"P@10": 0.3}, "after": {"P@10": p10},
                "counts": {"test": 40},
                "summary": [f"of the 10 best matches for 'kick' in packs it never saw, "
                            f"{int(p10 * 10)} are tagged 'kick', was 3"]}
        versions.save_version(library.paths.models, name, embedder.model.audio_projection,
                              embedder.model.text_projection, info)
        versions.write_vectors(library.catalog, ModelKey.of(embedder.encoder_key, name),
                               embedder.model.audio_projection)
        names.append(name)
    return library, names


def test_versions_are_listed_with_figures_and_can_be_used_reverted_and_deleted(
        qtbot, tmp_path: Path, tiny_model: Path) -> None:  # noqa: ANN001
    library, (older, newer) = library_with_versions(tmp_path, tiny_model)
    dialog = VersionsDialog(library)
    qtbot.addWidget(dialog)
    dialog.show()
    assert dialog.names == [None, newer, older]  # the base first, then the newest
    assert dialog.table.item(0, 4).text() == "in use"
    assert dialog.table.item(1, 2).text() == "0.30 → 0.70 (40 test files)"
    assert "7 are tagged 'kick', was 3" in dialog.table.item(1, 3).text()
    assert not dialog.revert_button.isEnabled()  # the base is in use already

    dialog.select(older)
    assert dialog.activate_button.isEnabled() and dialog.delete_button.isEnabled()
    with qtbot.waitSignal(dialog.modelChanged, timeout=30000) as signal:
        dialog.activate_button.click()
    assert signal.args == [ModelKey.of(library.identity.encoder_key, older)]
    assert library.active_version == older
    assert dialog.table.item(dialog.names.index(older), 4).text() == "in use"
    dialog.select(older)
    assert not dialog.delete_button.isEnabled()  # the version in use cannot be deleted

    dialog.select(newer)
    dialog.delete_selected(confirm=False)
    assert dialog.names == [None, older]
    assert [v.name for v in versions.list_versions(library.paths.models)] == [older]

    assert dialog.revert_button.isEnabled()
    with qtbot.waitSignal(dialog.modelChanged, timeout=30000) as signal:
        dialog.revert_button.click()
    assert signal.args == [library.identity.encoder_key]
    assert library.active_version is None
    assert dialog.table.item(0, 4).text() == "in use"
    assert dialog.wait()
    library.close()
