"""The model's life in the app: find it, download it once (with real progress), load it.

All of it runs on the one-thread model pool, so the window is up and the library browsable
before torch is even imported. States: checking -> (downloading) -> loading -> ready, or
unavailable with a plain message; browsing, playing and dragging work in every state.
"""

from __future__ import annotations

import os
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from clapdesk.core.embed.download import DownloadStatus, format_duration
from clapdesk.core.embed.hub import (
    DownloadCancelled,
    ModelError,
    ModelUnavailable,
    check_model_folder,
    resolve_model,
)
from clapdesk.core.library import Library
from clapdesk.core.model_switch import SwitchPlan, plan_switch
from clapdesk.gui.jobs import open_index
from clapdesk.gui.workers import TaskRunner

# What the first run downloads for the default model: laion/larger_clap_music's
# model.safetensors (float32, ~776 MB) plus its small tokenizer and config files. Shown before
# the download starts; the progress bar uses the server's real sizes once they are known.
LARGER_CLAP_MUSIC_BYTES = 776 * 1000 * 1000
KNOWN_MODEL_BYTES = {"laion/larger_clap_music": LARGER_CLAP_MUSIC_BYTES}

CHECKING, DOWNLOADING, LOADING, READY, UNAVAILABLE = (
    "checking", "downloading", "loading", "ready", "unavailable")


def is_hub_id(ref: str) -> bool:
    return ref.count("/") == 1 and not ref.startswith((".", "/", "~")) and not Path(ref).is_dir()


class ModelController(QObject):
    state_changed = Signal(str, str)  # state, message for the status bar
    folder_chosen = Signal(str)  # a model folder the user chose instead of a missing model
    switch_needed = Signal(object)  # a model_switch.SwitchPlan: the model named has no vectors here
    download_needed = Signal(str)  # the hub id
    download_progress = Signal(object)  # a download.DownloadStatus: bytes, speed, time left

    def __init__(self, library: Library, runner: TaskRunner, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.library = library
        self.runner = runner
        self.state = CHECKING
        self.message = ""
        self.last_error: BaseException | None = None  # what made the model unavailable
        self.switch_plan: SwitchPlan | None = None  # set when the model named was not used

    def _set(self, state: str, message: str) -> None:
        self.state, self.message = state, message
        self.state_changed.emit(state, message)

    @property
    def ready(self) -> bool:
        return self.state == READY

    # -- steps --------------------------------------------------------------------------------
    def start(self) -> None:
        """Find the model without downloading; then load it, or ask to download it."""
        self._set(CHECKING, f"Model: looking for {self.library.model_ref}…")
        self.runner.submit(self._find, pool="model", name="find model",
                           on_result=self._found, on_error=self._not_found)

    def _find(self) -> SwitchPlan | None:
        """The model named; when this library's sounds have no vectors of it yet, the library's
        own model instead (searching with the other would list nothing), and what a switch
        would take."""
        self.library.identity  # noqa: B018 - raises ModelError when it cannot be found
        plan = plan_switch(self.library)
        if plan is not None:
            self.library.use_model(plan.current)
            try:
                self.library.identity  # noqa: B018
            except ModelError:  # the library's own model is gone: the one named is all there is
                self.library.use_model(plan.target)
                self.library.identity  # noqa: B018
                return None
        return plan

    def _found(self, plan: SwitchPlan | None) -> None:
        self.switch_plan = plan
        if plan is not None:
            self.switch_needed.emit(plan)
        self.load()

    def _not_found(self, exc: BaseException) -> None:
        ref = self.library.model_ref
        offline = os.environ.get("HF_HUB_OFFLINE") == "1"
        if isinstance(exc, ModelUnavailable) and is_hub_id(ref) and not offline:
            self._set(UNAVAILABLE, f"Model {ref} is not downloaded yet")
            self.download_needed.emit(ref)
            return
        self._failed(exc)

    def _failed(self, exc: BaseException) -> None:
        self.last_error = exc
        if isinstance(exc, ModelError):
            message = str(exc)
        else:
            self.runner.report("model", exc)  # unexpected: logged with its traceback
            message = f"The model could not be loaded: {exc}"
        self._set(UNAVAILABLE, message)

    def load(self) -> None:
        self._set(LOADING, f"Model: loading {self.library.model_ref}…")

        def load_all() -> None:
            self.library.embedder()
            open_index(self.library)
            # Tempo and key analysis imports scipy.signal, about half a second of work: done
            # here, while the model loads, it is not added to the first indexing run.
            import clapdesk.core.analysis.sound  # noqa: F401

        self.runner.submit(load_all, pool="model", name="load model",
                           on_result=lambda _r: self._set(READY, self._ready_text()),
                           on_error=self._failed)

    def _ready_text(self) -> str:
        warning = self.library.load_warning
        name = os.path.basename(self.library.model_ref.rstrip("/")) or self.library.model_ref
        plan = self.switch_plan
        if plan is not None and not warning:
            return (f"Model {name} ready: this library's sounds are embedded with it. To search "
                    f"with {plan.target} instead, run clapdesk models switch {plan.target} "
                    f"(re-embeds {plan.files} sound{'s' if plan.files != 1 else ''}, "
                    f"{plan.estimate}).")
        return warning or f"Model {name} ready"

    def download(self) -> None:
        """Fetch the model (resuming any earlier attempt); progress and cancel reach the core."""
        ref = self.library.model_ref
        self._set(DOWNLOADING, f"Model: downloading {ref}…")
        self._download_worker = self.runner.submit(
            resolve_model, ref, True, pool="model", name="download model",
            on_progress=self.download_progress.emit, wants_cancel=True,
            on_result=lambda _id: self.load(), on_error=self._failed,
            on_finished=lambda: setattr(self, "_download_worker", None))

    def cancel_download(self) -> None:
        """Stop the download; what was fetched is kept and the next download continues it."""
        worker = getattr(self, "_download_worker", None)
        if worker is not None:
            worker.cancel.set()

    def use_folder(self, folder: str) -> bool:
        """Point the library at a model folder instead (remembered by the library and, through
        `folder_chosen`, by the settings); a folder that holds no model is refused."""
        try:
            check_model_folder(Path(folder))
        except ModelError as exc:
            self._set(UNAVAILABLE, str(exc))
            return False
        self.library.use_model(folder)
        self.library.catalog.set_meta("model", folder)
        self.folder_chosen.emit(folder)
        self.start()
        return True


class DownloadDialog(QDialog):
    """Says what will be downloaded and how big it is; shows real progress, speed and time left;
    can stop the download (it continues from there next time); offers a folder instead."""

    def __init__(self, ref: str, controller: ModelController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("Download the sound model")
        self.setMinimumWidth(self.fontMetrics().horizontalAdvance("0") * 64)
        size = KNOWN_MODEL_BYTES.get(ref)
        size_text = f"about {size / 1e6:,.0f} MB" if size else "a few hundred MB"
        self.expected = size or 0
        text = QLabel(
            f"clapdesk needs the model <b>{ref}</b> to search by description. It is not on this "
            f"computer yet: the download is {size_text}, once; after that clapdesk works offline."
            "<br><br>Browsing, playing and dragging work while it downloads.", self)
        text.setWordWrap(True)
        text.setTextFormat(Qt.TextFormat.RichText)
        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setValue(0)
        self.bar.setFormat("Not started")
        self.detail = QLabel("", self)  # speed and time left; why it stopped
        self.detail.setWordWrap(True)
        self.buttons = QDialogButtonBox(self)
        self.download_button = QPushButton("Download", self)
        self.download_button.setDefault(True)
        self.folder_button = QPushButton("Use a model folder instead…", self)
        self.later_button = QPushButton("Not now", self)
        self.stop_button = QPushButton("Stop download", self)
        for button, role in ((self.download_button, QDialogButtonBox.ButtonRole.AcceptRole),
                             (self.stop_button, QDialogButtonBox.ButtonRole.ActionRole),
                             (self.folder_button, QDialogButtonBox.ButtonRole.ActionRole),
                             (self.later_button, QDialogButtonBox.ButtonRole.RejectRole)):
            self.buttons.addButton(button, role)
        self.download_button.clicked.connect(self._download)
        self.stop_button.clicked.connect(self._stop)
        self.stop_button.setVisible(False)  # after addButton, which shows it
        self.folder_button.clicked.connect(self._folder)
        self.later_button.clicked.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(text)
        layout.addWidget(self.bar)
        layout.addWidget(self.detail)
        layout.addWidget(self.buttons)
        controller.download_progress.connect(self._progress)
        controller.state_changed.connect(self._state)

    def _download(self) -> None:
        self.download_button.setEnabled(False)
        self.folder_button.setEnabled(False)
        self.later_button.setText("Hide")
        self.stop_button.setVisible(True)
        self.stop_button.setEnabled(True)
        self.bar.setFormat("Starting…")
        self.detail.setText("")
        self.controller.download()

    def _stop(self) -> None:
        self.stop_button.setEnabled(False)
        self.detail.setText("Stopping…")
        self.controller.cancel_download()

    def _folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Choose a folder holding a CLAP model")
        if folder:
            self.accept()
            self.controller.use_folder(folder)

    def _progress(self, status: DownloadStatus) -> None:
        done, total = status.done, status.total or self.expected
        if total > 0:
            self.bar.setValue(int(1000 * min(1.0, done / total)))
            self.bar.setFormat(f"{done / 1e6:,.0f} of {total / 1e6:,.0f} MB")
        else:
            self.bar.setFormat(f"{done / 1e6:,.0f} MB")
        if self.stop_button.isEnabled():
            bits = [f"{status.rate / 1e6:.1f} MB/s" if status.rate > 0 else "measuring speed…"]
            if status.seconds_left is not None:
                bits.append(f"about {format_duration(status.seconds_left)} left")
            self.detail.setText(" · ".join(bits))

    def _state(self, state: str, message: str) -> None:
        if state in (LOADING, READY):
            self.accept()
        elif state == UNAVAILABLE and not self.download_button.isEnabled():
            stopped = isinstance(self.controller.last_error, DownloadCancelled)
            self.bar.setFormat("Stopped" if stopped else "Download failed")
            self.detail.setText(message[:1].upper() + message[1:])  # the one plain line, shown
            self.download_button.setText("Resume download")
            self.download_button.setEnabled(True)
            self.folder_button.setEnabled(True)
            self.stop_button.setVisible(False)
            self.setToolTip(message)
