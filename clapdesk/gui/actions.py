"""Every command of the window, declared once: text, icon, shortcut, menu, and the slot it calls.

Tooltips repeat the shortcut so it can be learnt by hovering; the Help > Keyboard shortcuts
dialog is generated from this same table.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QMainWindow

from clapdesk.gui.theme import icon


@dataclass(frozen=True)
class Command:
    name: str  # also the window's slot: `on_<name>`
    text: str
    menu: str
    shortcut: str = ""
    icon: str = ""
    tip: str = ""
    checkable: bool = False


COMMANDS: tuple[Command, ...] = (
    Command("add_folder", "&Add library folder…", "&Library", "Ctrl+L", "folder-add",
            "Add a folder of samples to the library"),
    Command("remove_folder", "&Remove library folder…", "&Library", "Ctrl+Shift+L",
            "folder-remove", "Forget a folder and its sounds (the files stay on disk)"),
    Command("update_library", "&Update library", "&Library", "F5", "refresh",
            "Pick up new, changed and removed files in every library folder"),
    Command("cancel_indexing", "&Cancel indexing", "&Library", "Ctrl+.", "cancel",
            "Stop indexing; everything indexed so far is kept"),
    Command("show_failures", "Show &failures", "&Library", "Ctrl+Shift+E", "warning",
            "Files that could not be indexed, and why"),
    Command("fine_tune", "Fine-&tune…", "&Library", "Ctrl+Shift+T", "tune",
            "Teach the search your own tags"),
    Command("use_version", "Model &versions…", "&Library", "",
            "tune", "Your fine-tuned versions with their figures: search with one, go back to "
            "the base model, or delete one"),
    Command("revert_model", "&Revert to the base model", "&Library", "", "refresh",
            "Search with the model as it was before any fine-tuning (your versions are kept)"),
    Command("settings", "&Settings…", "&Library", "Ctrl+,", "settings"),
    Command("quit", "&Quit", "&Library", "Ctrl+Q"),
    Command("find", "&Find", "&Sound", "Ctrl+F", "search", "Go to the search field"),
    Command("play_stop", "&Play / stop", "&Sound", "Space", "play"),
    Command("stop", "S&top", "&Sound", "Esc", "stop"),
    Command("loop", "&Loop", "&Sound", "Ctrl+R", "loop", "Loop audition", checkable=True),
    Command("volume_up", "Volume &up", "&Sound", "Ctrl+Up", "volume"),
    Command("volume_down", "Volume &down", "&Sound", "Ctrl+Down"),
    Command("tap_tempo", "Ta&p tempo", "&Sound", "Ctrl+Shift+B", "", "Tap the project tempo"),
    Command("similar", "Find &similar sounds", "&Sound", "Ctrl+M", "similar",
            "Sounds like the selected one"),
    Command("similar_timbre", "Similar in t&imbre", "&Sound", "Ctrl+Alt+1", "similar",
            "Like the selected sound, and as bright and as loud"),
    Command("similar_pitch", "Similar in &pitch", "&Sound", "Ctrl+Alt+2", "similar",
            "Like the selected sound, and in the same or a related key"),
    Command("similar_rhythm", "Similar in &rhythm", "&Sound", "Ctrl+Alt+3", "similar",
            "Like the selected sound, and at the same tempo (or half or double)"),
    Command("record_query", "R&ecord a sound to search with", "&Sound", "Ctrl+Shift+R",
            "record", "Record from the input chosen in Settings (up to 10 s) and search with it"),
    Command("favourite", "Add to / remove from fa&vourites", "&Sound", "Ctrl+D", "star"),
    Command("edit_tags", "Edit &tags…", "&Sound", "Ctrl+T", "tag",
            "Your own tags for the selected sounds; hide automatic tags that are wrong"),
    Command("edit_tempo", "Edit tempo and &key…", "&Sound", "Ctrl+K", "tag",
            "Correct the tempo and key of the selected sounds, or go back to the analysis"),
    Command("reveal", "&Reveal in file manager", "&Sound", "Ctrl+E", "reveal"),
    Command("copy_path", "&Copy path", "&Sound", "Ctrl+Shift+C", "copy"),
    Command("toggle_side", "Side &panel", "&View", "Ctrl+B", checkable=True),
    Command("shortcuts", "&Keyboard shortcuts", "&Help", "F1"),
    Command("about", "&About clapdesk", "&Help"),
)


# The rows' context menu, in this order.
ROW_MENU = ("play_stop", "similar", "similar_timbre", "similar_pitch", "similar_rhythm",
            "reveal", "copy_path", "favourite", "edit_tags", "edit_tempo")


def build_actions(window: QMainWindow) -> dict[str, QAction]:
    """Create the actions, put them in menus, connect them to `window.on_<name>`."""
    actions: dict[str, QAction] = {}
    menus: dict[str, object] = {}
    bar = window.menuBar()
    for command in COMMANDS:
        action = QAction(command.text, window)
        if command.icon:
            action.setIcon(icon(command.icon))
        if command.shortcut:
            action.setShortcut(QKeySequence(command.shortcut))
        plain = command.text.replace("&", "").rstrip("…")
        tip = command.tip or plain
        shortcut_text = QKeySequence(command.shortcut).toString(
            QKeySequence.SequenceFormat.NativeText) if command.shortcut else ""
        action.setToolTip(f"{tip} ({shortcut_text})" if shortcut_text else tip)
        action.setStatusTip(tip)
        action.setCheckable(command.checkable)
        slot = getattr(window, f"on_{command.name}")
        if command.checkable:
            action.toggled.connect(slot)
        else:
            action.triggered.connect(lambda _=False, s=slot: s())
        if command.menu not in menus:
            menus[command.menu] = bar.addMenu(command.menu)
        menus[command.menu].addAction(action)  # type: ignore[attr-defined]
        window.addAction(action)  # shortcuts work even with the menu bar hidden
        actions[command.name] = action
    return actions


def shortcut_table() -> list[tuple[str, str]]:
    return [(QKeySequence(c.shortcut).toString(QKeySequence.SequenceFormat.NativeText),
             c.text.replace("&", "").rstrip("…"))
            for c in COMMANDS if c.shortcut]
