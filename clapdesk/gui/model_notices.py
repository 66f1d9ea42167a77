"""What the window says about the model's text tower: where the search box is, and once per
library when its model is known to have an untrained one (see core/embed/health.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QMessageBox, QWidget

from clapdesk.core.embed.health import TextSearchOff
from clapdesk.core.embed.hub import ModelError
from clapdesk.core.embed.known_models import RECOMMENDED
from clapdesk.core.model_switch import untrained_text_notice

if TYPE_CHECKING:
    from clapdesk.gui.main_window import MainWindow


def text_search_refused(window: MainWindow, exc: TextSearchOff) -> None:
    """A text search the model cannot answer: say why under the search box, list nothing."""
    window.search.show_notice(str(exc))
    window.title.setText("Text search is off for this model (see under the search box); "
                         "right-click a sound for sound-alikes")


def library_opened(window: MainWindow) -> None:
    """A library built with a model known to lack a trained text tower is told why, once."""
    notice = untrained_text_notice(window.library)
    if notice:
        offer_switch(window, notice)


def model_settled(window: MainWindow, ready: bool) -> None:
    """The model has loaded (or cannot): show its text tower's health where the search box is."""
    if not ready:
        return
    try:
        window.library.embedder().refuse_text_search()
    except TextSearchOff as exc:
        window.search.show_notice(str(exc))
    except ModelError:
        pass
    else:
        window.search.clear_notice()


def offer_switch(window: MainWindow, notice: str) -> QMessageBox:
    """A one-time, non-blocking offer to switch the library to the recommended model."""
    box = QMessageBox(QMessageBox.Icon.Information, "Text search needs another model", notice,
                      QMessageBox.StandardButton.NoButton, window)
    switch = box.addButton(f"Use {RECOMMENDED}", QMessageBox.ButtonRole.AcceptRole)
    box.addButton("Not now", QMessageBox.ButtonRole.RejectRole)

    def chosen() -> None:
        if box.clickedButton() is switch:
            # Takes effect at the next start, as a model chosen in Settings does; the library
            # keeps its current vectors until the new ones are complete.
            window.settings.set("model", RECOMMENDED)
            window.settings.sync()
            window.statusBar().showMessage(
                f"clapdesk will use {RECOMMENDED} from the next start and re-embed the "
                "library then", 0)

    box.finished.connect(lambda _result: chosen())
    box.open()
    window.switch_offer = box  # type: ignore[attr-defined]  # kept alive, and for tests
    return box


def describe_model(ref: str) -> str:
    """Settings' line about a model: the table's facts for a known one."""
    from clapdesk.core.embed.known_models import known

    if not ref.strip():
        return ""
    model = known(ref.strip())
    if model is None:
        return ("Not one of the checkpoints clapdesk knows (clapdesk models available): it is "
                "checked when it loads, and text search is turned off if its text tower looks "
                "untrained.")
    return model.summary()


def add_model_info(dialog: QWidget, form: QFormLayout, editor: QWidget, fallback: str) -> QLabel:
    """A line under the model field saying what the chosen model is good at and its known
    problems; it follows the field as it is edited (empty: the model in use)."""
    label = QLabel(describe_model(fallback), dialog)
    label.setObjectName("model_info")
    label.setWordWrap(True)
    form.addRow("", label)
    if isinstance(editor, QLineEdit):
        def follow(text: str) -> None:
            label.setText(describe_model(text or fallback))

        editor.textChanged.connect(follow)
        follow(editor.text())
    return label
