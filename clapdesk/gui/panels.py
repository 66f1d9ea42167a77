"""The side panel (library folders, favourites, recent, query history) and the failures panel."""

from __future__ import annotations

from PySide6.QtCore import QPoint, Qt, Signal
from PySide6.QtWidgets import (
    QHeaderView,
    QMenu,
    QTreeWidget,
    QTreeWidgetItem,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.store.catalog import display_path
from clapdesk.gui.jobs import ALL, DUPLICATES, FAVOURITES, FOLDER, RECENT
from clapdesk.gui.theme import icon

PLACE_ROLE = Qt.ItemDataRole.UserRole + 1
QUERY = "query"  # a search history entry (the rest are the places jobs.load_place knows)
HISTORY_SHOWN = 30


class SidePanel(QWidget):
    """Places to browse. `place_selected(kind, value)`: kind is one of ALL/FOLDER/... above."""

    place_selected = Signal(str, str)
    add_folder_requested = Signal()
    remove_folder_requested = Signal(str)
    rescan_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderHidden(True)
        self.tree.setRootIsDecorated(True)
        self.tree.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.tree.customContextMenuRequested.connect(self._menu)
        self.tree.itemClicked.connect(self._clicked)
        self.tree.itemActivated.connect(self._clicked)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self.library = self._section("All sounds", "library", (ALL, ""))
        self.folders = self._section("Library folders", "folder", None)
        self.favourites = self._section("Favourites", "star", (FAVOURITES, ""))
        self.recent = self._section("Recently auditioned", "recent", (RECENT, ""))
        self.duplicates = self._section("Duplicates", "copy", (DUPLICATES, ""))
        self.history = self._section("Search history", "history", None)
        for section in (self.folders, self.history):
            section.setExpanded(True)
        self._folders_shown: tuple[list[str], set[str]] | None = None
        self._history_shown: list[str] | None = None

    def _section(self, title: str, icon_name: str, place: tuple[str, str] | None) -> QTreeWidgetItem:
        item = QTreeWidgetItem(self.tree, [title])
        item.setIcon(0, icon(icon_name))
        item.setData(0, PLACE_ROLE, place)
        font = item.font(0)
        font.setBold(True)
        item.setFont(0, font)
        return item

    # -- filling ------------------------------------------------------------------------------
    def set_counts(self, total: int, favourites: int, recent: int, duplicates: int = 0) -> None:
        self.library.setText(0, f"All sounds ({total})")
        self.favourites.setText(0, f"Favourites ({favourites})")
        self.recent.setText(0, f"Recently auditioned ({recent})")
        self.duplicates.setText(0, f"Duplicates ({duplicates})")

    def set_folders(self, folders: list[str], offline: set[str] | None = None) -> None:
        # The overview is read again every few seconds while indexing: rebuilt only on a
        # change, so a selected folder stays selected.
        shown = (list(folders), set(offline or ()))
        if self._folders_shown == shown:
            return
        self._folders_shown = shown
        self.folders.takeChildren()
        labels = distinguishing_names(folders)
        for folder in folders:
            label = display_path(labels[folder])
            child = QTreeWidgetItem(self.folders, [label])
            child.setToolTip(0, display_path(folder))
            child.setIcon(0, icon("warning" if offline and folder in offline else "folder"))
            child.setData(0, PLACE_ROLE, (FOLDER, folder))
        if not folders:
            hint = QTreeWidgetItem(self.folders, ["Add a folder… (Ctrl+L)"])
            hint.setData(0, PLACE_ROLE, ("add", ""))
        self.folders.setExpanded(True)

    def set_history(self, queries: list[str]) -> None:
        if self._history_shown == queries[:HISTORY_SHOWN]:
            return
        self._history_shown = list(queries[:HISTORY_SHOWN])
        self.history.takeChildren()
        for query in queries[:HISTORY_SHOWN]:
            child = QTreeWidgetItem(self.history, [query])
            child.setData(0, PLACE_ROLE, (QUERY, query))

    def folder_paths(self) -> list[str]:
        out = []
        for i in range(self.folders.childCount()):
            place = self.folders.child(i).data(0, PLACE_ROLE)
            if place and place[0] == FOLDER:
                out.append(place[1])
        return out

    # -- interaction --------------------------------------------------------------------------
    def _clicked(self, item: QTreeWidgetItem, _column: int = 0) -> None:
        place = item.data(0, PLACE_ROLE)
        if not place:
            return
        kind, value = place
        if kind == "add":
            self.add_folder_requested.emit()
        else:
            self.place_selected.emit(kind, value)

    def _menu(self, at: QPoint) -> None:
        item = self.tree.itemAt(at)
        menu = QMenu(self)
        menu.addAction(icon("folder-add"), "Add library folder…", self.add_folder_requested.emit)
        place = item.data(0, PLACE_ROLE) if item else None
        if place and place[0] == FOLDER:
            folder = place[1]
            menu.addAction(icon("folder-remove"), "Remove from library",
                           lambda: self.remove_folder_requested.emit(folder))
        menu.addAction(icon("refresh"), "Update library now", self.rescan_requested.emit)
        menu.popup(self.tree.viewport().mapToGlobal(at))


class FailuresPanel(QWidget):
    """Files that could not be indexed: the path and the plain reason."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.tree = QTreeWidget(self)
        self.tree.setHeaderLabels(["File", "Reason"])
        self.tree.setRootIsDecorated(False)
        self.tree.setAlternatingRowColors(True)
        self.tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.tree.header().setStretchLastSection(True)
        self.tree.setColumnWidth(0, 420)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.tree)
        self._shown: list[tuple[str, str]] | None = None

    def set_failures(self, failures: list[tuple[str, str]]) -> None:
        if self._shown == failures:
            return  # unchanged: the producer's scroll and selection stay
        self._shown = list(failures)
        self.tree.clear()
        for path, reason in failures:
            item = QTreeWidgetItem(self.tree, [display_path(path), reason])
            item.setToolTip(0, display_path(path))
            item.setToolTip(1, reason)
            item.setIcon(0, icon("warning"))

    def count(self) -> int:
        return self.tree.topLevelItemCount()

    def rows(self) -> list[tuple[str, str]]:
        return [(self.tree.topLevelItem(i).text(0), self.tree.topLevelItem(i).text(1))
                for i in range(self.count())]


def distinguishing_names(folders: list[str]) -> dict[str, str]:
    """Each folder's shortest trailing path that no other folder shares: two "samples" folders
    show as "Drums/samples" and "Keys/samples", a folder with a unique name as its name."""
    parts = {f: [p for p in f.replace("\\", "/").rstrip("/").split("/") if p] or [f]
             for f in folders}
    depth = {f: 1 for f in folders}
    while True:
        shown = {f: "/".join(parts[f][-depth[f]:]) for f in folders}
        clashing = [f for f in folders if list(shown.values()).count(shown[f]) > 1
                    and depth[f] < len(parts[f])]
        if not clashing:
            return shown
        for folder in clashing:
            depth[folder] += 1
