"""The window's commands: every `on_<name>` slot that actions.py connects to a menu entry.

Kept apart from main_window.py so that each file reads in one sitting; `WindowCommands` is a
mixin of MainWindow and uses its widgets and controllers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QApplication, QFileDialog, QInputDialog, QMessageBox, QToolTip

from clapdesk.core.embed.hub import ModelError
from clapdesk.core.finetune import versions
from clapdesk.core.search.ranking import Hit
from clapdesk.core.store.catalog import display_path
from clapdesk.core.store.model_key import ModelKey
from clapdesk.gui.actions import shortcut_table
from clapdesk.gui.model_control import READY, is_hub_id
from clapdesk.gui.settings_dialog import SettingsDialog
from clapdesk.gui.wording import counted

if TYPE_CHECKING:
    from clapdesk.gui.main_window import MainWindow

    _Base = MainWindow
else:
    _Base = object


class WindowCommands(_Base):
    def on_add_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Add a folder of samples", str(Path.home()))
        if folder:
            self.indexing.index([folder])

    def on_remove_folder(self) -> None:
        roots = [path for _, path in self.library.catalog.roots()]
        if not roots:
            self.statusBar().showMessage("The library has no folders yet (Ctrl+L adds one)", 5000)
            return
        folder, ok = QInputDialog.getItem(self, "Remove library folder", "Folder:",
                                          [display_path(r) for r in roots], 0, False)
        if ok and folder:
            self._remove_folder(roots[[display_path(r) for r in roots].index(folder)])

    def on_update_library(self) -> None:
        roots = [path for _, path in self.library.catalog.roots()]
        if roots:
            self.indexing.index(roots)

    def on_cancel_indexing(self) -> None:
        self.indexing.cancel()

    def on_show_failures(self) -> None:
        self.failures_dock.show()
        self.failures_dock.raise_()

    def on_fine_tune(self) -> None:
        try:
            from clapdesk.gui.finetune_wizard import FineTuneWizard
        except ImportError as exc:
            self.statusBar().showMessage(f"Fine-tuning is not available in this build ({exc})", 8000)
            return
        wizard = FineTuneWizard(self.library, self, self.runner)
        wizard.modelChanged.connect(self._searching_with)
        self.finetune_wizard = wizard
        wizard.open()

    def _searching_with(self, model_key: str) -> None:
        """A fine-tuned version was accepted: what is on screen was ranked by the old one."""
        version = ModelKey(model_key).version
        self.statusBar().showMessage(
            f"Search now uses your fine-tuned version “{version}”" if version
            else "Search now uses the base model", 8000)
        if self.search.text().strip():
            self.search.fire()

    def on_revert_model(self) -> None:
        """One click back to the base model; the fine-tuned versions stay, to be used again."""
        if self.model_ctl.state != READY:
            self.statusBar().showMessage("The model is not ready yet.", 6000)
            return
        if not self.library.active_version:
            self.statusBar().showMessage("Search already uses the base model.", 6000)
            return
        self.runner.submit(versions.revert, self.library, pool="model", name="revert model",
                           on_result=self._searching_with, on_error=self._version_failed)

    def on_use_version(self) -> None:
        """Every version with its figures: use one, go back to the base model, or delete one."""
        if self.model_ctl.state != READY:
            self.statusBar().showMessage("The model is not ready yet.", 6000)
            return
        from clapdesk.gui.versions_dialog import VersionsDialog

        dialog = VersionsDialog(self.library, self.runner, self)
        dialog.modelChanged.connect(self._searching_with)
        self.versions_dialog = dialog
        dialog.open()

    def _version_failed(self, exc: BaseException) -> None:
        if isinstance(exc, (versions.VersionError, ModelError)):
            self.statusBar().showMessage(str(exc), 15000)
        else:
            self.runner.report("model version", exc)

    def on_settings(self) -> None:
        roots = [path for _, path in self.library.catalog.roots()]
        dialog = SettingsDialog(self.settings, roots, self, model_in_use=self.library.model_ref)
        if dialog.exec() != SettingsDialog.DialogCode.Accepted:
            return
        dialog.save()
        self.audition.auto_play = self.settings.get("auto_play")
        self.audition.set_delay(self.settings.get("auto_play_delay_ms"))
        self.player.set_device(self.settings.get("audio_output") or None)
        self.indexing.watching = self.settings.get("watch_folders")
        if self.waveform is not None:
            self.waveform.export_folder = self.settings.get("export_folder")
        added = [f for f in dialog.folders() if f not in roots]
        for gone in (f for f in roots if f not in dialog.folders()):
            self.indexing.remove(gone)
        if added:
            self.indexing.index(added)
        changed = [what for what, differs in (
            ("model", self.settings.get("model") not in ("", self.library.model_ref)),
            ("precision", self.settings.get("precision") != self.library.precision)) if differs]
        if changed:
            self.statusBar().showMessage(
                f"The new {' and '.join(changed)} {'is' if len(changed) == 1 else 'are'} used "
                "from the next start.", 8000)

    def on_model_options(self) -> None:
        """The model is unavailable: download it, or choose a folder that holds one."""
        ref = self.library.model_ref
        if is_hub_id(ref) and os.environ.get("HF_HUB_OFFLINE") != "1":
            self._offer_download(ref)
            return
        box = QMessageBox(QMessageBox.Icon.Warning, "The model is unavailable",
                          self.model_ctl.message or f"The model {ref} cannot be used.",
                          QMessageBox.StandardButton.Close, self)
        folder = box.addButton("Use a model folder instead…", QMessageBox.ButtonRole.ActionRole)
        box.exec()
        if box.clickedButton() is folder:
            chosen = QFileDialog.getExistingDirectory(self, "Choose a folder holding a CLAP model",
                                                      str(Path.home()))
            if chosen:
                self.use_model_folder(chosen)

    def use_model_folder(self, folder: str) -> bool:
        """A model folder chosen to replace an unavailable model: checked, used, and saved in
        the settings, so the old model does not come back at the next start."""
        if not self.model_ctl.use_folder(folder):  # saved through folder_chosen when it is one
            QMessageBox.warning(self, "Not a model folder", self.model_ctl.message)
            return False
        return True

    def on_quit(self) -> None:
        self.close()

    def on_find(self) -> None:
        self.search.field.setFocus()
        self.search.field.selectAll()

    def on_play_stop(self) -> None:
        hit = self.current_hit()
        self.audition.toggle(hit.file.path if hit else None)

    def on_tap_tempo(self) -> None:
        self.project.tap()

    def on_stop(self) -> None:
        self.audition.stop()

    def on_loop(self, on: bool) -> None:
        self.transport.loop.setChecked(on)
        self.settings.set("loop", on)

    def on_volume_up(self) -> None:
        self.transport.volume.setValue(self.transport.volume.value() + 5)

    def on_volume_down(self) -> None:
        self.transport.volume.setValue(self.transport.volume.value() - 5)

    def on_similar(self) -> None:
        self.sound_search.similar_to_current()

    def on_similar_timbre(self) -> None:
        self.sound_search.similar_to_current("timbre")

    def on_similar_pitch(self) -> None:
        self.sound_search.similar_to_current("pitch")

    def on_similar_rhythm(self) -> None:
        self.sound_search.similar_to_current("rhythm")

    def on_record_query(self) -> None:
        self.sound_search.panel.toggle()

    def on_favourite(self) -> None:
        hits = self.selected_hits()
        if not hits:
            return
        on = any(h.file.id not in self.favourite_ids for h in hits)
        for hit in hits:
            self.library.catalog.add_favourite(hit.file.id, on)
            (self.favourite_ids.add if on else self.favourite_ids.discard)(hit.file.id)
        self.statusBar().showMessage(
            f"{counted(len(hits), 'sound')} {'added to' if on else 'removed from'} favourites",
            4000)
        self.refresh_overview()

    def on_edit_tags(self) -> None:
        hits = self.selected_hits()
        if not hits:
            return
        from clapdesk.gui.tag_dialog import TagDialog

        dialog = TagDialog(self.library.catalog, hits, self)
        dialog.accepted.connect(lambda: self.refresh_tags(dialog.apply()))
        self.tag_dialog = dialog
        dialog.open()

    def on_edit_tempo(self) -> None:
        hits = self.selected_hits()
        if not hits:
            return
        from clapdesk.gui.tempo_dialog import TempoDialog

        dialog = TempoDialog(self.library.catalog, hits, self)
        dialog.accepted.connect(lambda: self.refresh_tempo(dialog.apply()))
        self.tempo_dialog = dialog
        dialog.open()

    def edit_tempo_cell(self, hit: Hit, column: int, text: str) -> bool:
        """A tempo or key typed into the results table (empty: back to the analysis)."""
        from clapdesk.core.store import user_tempo
        from clapdesk.gui.results_model import BPM

        field = "bpm" if column == BPM else "key"
        try:
            user_tempo.set_correction(self.library.catalog, [hit.file.id], **{field: text.strip() or None})
        except user_tempo.CorrectionError as exc:
            # Said under the cell, where the producer is looking, and kept in the status bar.
            at = self.proxy.mapFromSource(self.model.index(self.model.row_of(hit.file.path), column))
            corner = self.view.viewport().mapToGlobal(self.view.visualRect(at).bottomLeft())
            QToolTip.showText(corner, str(exc), self.view)
            self.statusBar().showMessage(str(exc), 15000)
            return False
        self.refresh_tempo([hit.file.id])
        return True

    def refresh_tempo(self, file_ids: list[int]) -> None:
        """Tempo or key corrected: the rows show it at once, marked as the producer's."""
        if not file_ids:
            return
        self.model.update_files(self.library.catalog.files(file_ids))
        self.statusBar().showMessage(
            f"Tempo and key saved for {counted(len(file_ids), 'sound')}", 4000)

    def on_reveal(self) -> None:
        hit = self.current_hit()
        if hit is not None and not reveal_in_file_manager(hit.file.path):
            # No file manager to hand it to: the path, on the clipboard, is the next best thing.
            QApplication.clipboard().setText(display_path(hit.file.path))
            self.statusBar().showMessage(
                f"No file manager could be opened; the path was copied: "
                f"{display_path(hit.file.path)}", 15000)

    def on_copy_path(self) -> None:
        paths = self.selected_paths()
        if paths:
            QApplication.clipboard().setText("\n".join(display_path(p) for p in paths))
            self.statusBar().showMessage(f"Copied {counted(len(paths), 'path')}", 3000)

    def on_toggle_side(self, on: bool) -> None:
        self.side.setVisible(on)

    def on_shortcuts(self) -> None:
        rows = "".join(f"<tr><td><b>{keys}</b></td><td>&nbsp;&nbsp;{what}</td></tr>"
                       for keys, what in shortcut_table())
        QMessageBox.information(self, "Keyboard shortcuts", f"<table>{rows}</table>")

    def on_about(self) -> None:
        from clapdesk import __version__

        QMessageBox.about(self, "About clapdesk",
                          f"<b>clapdesk {__version__}</b><br>Find sounds in your own sample "
                          "library by describing them. Local and private: your files never move.")


def reveal_in_file_manager(path: str) -> bool:
    """Show the file selected in the system's file manager (its folder where that is all we
    can); False when there is nothing to open it with."""
    try:
        if sys.platform == "darwin":
            subprocess.Popen(["open", "-R", path])
            return True
        if sys.platform == "win32":
            subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
            return True
    except OSError:
        pass
    if sys.platform.startswith("linux") and not shutil.which("xdg-open") \
            and not os.environ.get("FLATPAK_ID"):
        return False  # Qt would hand the folder to xdg-open, and fail without a word
    return bool(QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path))))
