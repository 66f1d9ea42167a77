"""Edit tags…: the producer's own tags of the selected sounds, and which automatic tags show.

The user's tags are a comma-separated field (completed from the tags the library already
has); automatic and file-name tags are a checklist, and unchecking one hides it on that sound
(indexing never brings it back). With several sounds selected, the field holds the tags they
all share: what is removed from it leaves every sound, what is added joins every sound, and
each keeps its other tags.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QStringListModel, Qt
from PySide6.QtWidgets import (
    QCompleter,
    QDialog,
    QDialogButtonBox,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.search.ranking import Hit
from clapdesk.core.store import user_tags
from clapdesk.core.store.catalog import Catalog, display_path


class TagDialog(QDialog):
    def __init__(self, catalog: Catalog, hits: Sequence[Hit], parent: QWidget | None = None
                 ) -> None:
        super().__init__(parent)
        self.catalog = catalog
        self.ids = [h.file.id for h in hits]
        self.setWindowTitle("Edit tags")
        self.own = user_tags.user_tags(catalog, self.ids)
        self.shared = [t for t in self.own[self.ids[0]]
                       if all(t in self.own[i] for i in self.ids)] if self.ids else []
        others = user_tags.other_tags(catalog, self.ids)

        layout = QVBoxLayout(self)
        what = display_path(hits[0].file.name) if len(hits) == 1 else f"{len(hits)} sounds"
        layout.addWidget(QLabel(f"Your tags for <b>{what}</b> (separated by commas):", self))
        self.mine = QLineEdit(", ".join(self.shared), self)
        self.mine.setPlaceholderText("e.g. dusty, lo-fi kick, verse")
        self.mine.setClearButtonEnabled(True)
        layout.addWidget(self.mine)
        self.completer = QCompleter(QStringListModel(user_tags.all_tags(catalog), self), self)
        self.completer.setCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.completer.setWidget(self.mine)
        self.mine.textEdited.connect(self._complete)
        self.completer.activated.connect(self._insert_completion)

        layout.addWidget(QLabel("Tags found by clapdesk (uncheck to hide):", self))
        self.found = QListWidget(self)
        self._initial: dict[str, Qt.CheckState] = {}
        self.holders: dict[str, list[int]] = {}
        hidden_on: dict[str, int] = {}
        for file_id in self.ids:
            for tag, hidden in others[file_id]:
                self.holders.setdefault(tag, []).append(file_id)
                hidden_on[tag] = hidden_on.get(tag, 0) + int(hidden)
        for tag, holders in self.holders.items():
            item = QListWidgetItem(tag, self.found)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            state = (Qt.CheckState.Checked if hidden_on[tag] == 0 else
                     Qt.CheckState.Unchecked if hidden_on[tag] == len(holders) else
                     Qt.CheckState.PartiallyChecked)
            item.setCheckState(state)
            if len(self.ids) > 1:
                item.setToolTip(f"on {len(holders)} of {len(self.ids)} sounds")
            self._initial[tag] = state
        if not self.holders:
            self.found.addItem("(none)")
            self.found.setEnabled(False)
        layout.addWidget(self.found, 1)

        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel, self)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.resize(420, 380)

    # -- completion of the tag under the cursor ----------------------------------------------
    def _current_word(self) -> str:
        before = self.mine.text()[: self.mine.cursorPosition()]
        return before.split(",")[-1].lstrip()

    def _complete(self, _text: str) -> None:
        word = self._current_word()
        if not word:
            self.completer.popup().hide()
            return
        self.completer.setCompletionPrefix(word)
        if self.completer.completionCount():
            self.completer.complete()
        else:
            self.completer.popup().hide()

    def _insert_completion(self, tag: str) -> None:
        text, at = self.mine.text(), self.mine.cursorPosition()
        start = text.rfind(",", 0, at) + 1
        head = text[:start] + (" " if start else "")
        self.mine.setText(f"{head}{tag}, {text[at:].lstrip(', ')}".rstrip())
        self.mine.setCursorPosition(len(head) + len(tag) + 2)

    # -- writing ------------------------------------------------------------------------------
    def apply(self) -> list[int]:
        """Write the changes through the core; returns the ids of the sounds edited."""
        wanted = user_tags.parse_tag_text(self.mine.text())
        removed = [t for t in self.shared if t not in wanted]
        for file_id in self.ids:
            kept = [t for t in self.own[file_id] if t not in removed]
            new = kept + [t for t in wanted if t not in kept]
            if new != self.own[file_id]:
                user_tags.set_user_tags(self.catalog, [file_id], new)
        for row in range(self.found.count() if self.holders else 0):
            item = self.found.item(row)
            tag, state = item.text(), item.checkState()
            if state == self._initial[tag] or state == Qt.CheckState.PartiallyChecked:
                continue
            for file_id in self.holders[tag]:
                user_tags.hide_tag(self.catalog, file_id, tag, state == Qt.CheckState.Unchecked)
        return list(self.ids)
